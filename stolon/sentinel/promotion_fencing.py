"""Fencing before an automatic promotion, as decisions (the daemon does the I/O; the
fencing methods themselves are :mod:`stolon.fencing`).

When the cluster spec configures fencing methods, an election that chose a new master does
not promote it at once: the old master may still be alive (a partition, a hung keeper, a
``stolonctl failkeeper``). The cycle instead fences the proxies and emits
:class:`~stolon.sentinel.events.FencingRequested`; the daemon writes the cluster data, runs
the methods (bounded by ``fencing.timeout``) and hands the
:class:`~stolon.fencing.base.FencingOutcome` to the next cycle through
``Observations.fencing``. That cycle elects again (facts may have changed) and promotes when
the outcome allows it under ``fencing.policy``:

- ``required``: only when a method succeeded. A failed attempt is retried every cycle while
  the master stays failed; for a master failed by ``stolonctl failkeeper`` there is no
  retry (the operator's request is dropped and the master, still healthy, stays).
- ``best-effort``: a failure is reported and the new master promoted anyway.

A switchover never needs fencing: the old master reported its own clean shutdown.
"""

from __future__ import annotations

from stolon.model.cluster import DB, ClusterData
from stolon.model.spec import FENCING_BEST_EFFORT, FencingSpec
from stolon.sentinel.cycle import Cycle, dbs, keepers, proxy, spec
from stolon.sentinel.events import (
    FencingChecked,
    FencingRequested,
    ProxiesFenced,
)


def configured(cyc: Cycle) -> FencingSpec | None:
    fs = cyc.spec.fencing
    return fs if fs is not None and fs.enabled else None


def allows_promotion(cd: ClusterData, old: DB, new_uid: str, cyc: Cycle) -> bool:
    """Whether the election's choice ``new_uid`` may replace ``old`` in this cycle."""
    fs = configured(cyc)
    if fs is None:
        return True
    outcome = cyc.fencing.get(old.uid)
    if outcome is None:
        _request(cd, old, new_uid, fs, cyc)
        return False
    policy = fs.effective_policy
    promote = outcome.fenced or policy == FENCING_BEST_EFFORT
    cyc.emit(
        FencingChecked(
            old_master_db=old.uid,
            old_master_keeper=spec(old).keeper_uid,
            new_master_db=new_uid,
            policy=policy,
            fenced=outcome.fenced,
            promote=promote,
            detail=outcome.detail,
        )
    )
    if not promote and spec(old).keeper_uid not in cyc.force_failed:
        _request(cd, old, new_uid, fs, cyc)  # required: try again while the master stays failed
    return promote


def _request(cd: ClusterData, old: DB, new_uid: str, fs: FencingSpec, cyc: Cycle) -> None:
    old_keeper = spec(old).keeper_uid
    if old_keeper in cyc.force_failed:
        # failkeeper fails a keeper for one cycle; keep it failed for the promotion cycle.
        k = keepers(cd).get(old_keeper)
        if k is not None:
            k.status.force_fail = True
    p = proxy(cd)
    if p.spec.master_db_uid:
        p.spec.master_db_uid = ""
        p.generation += 1
        cyc.emit(ProxiesFenced(old.uid, new_uid, p.generation))
    new = dbs(cd)[new_uid]
    cyc.emit(
        FencingRequested(
            old_master_db=old.uid,
            old_master_keeper=old_keeper,
            host=old.status.listen_address,
            port=old.status.port,
            new_master_db=new_uid,
            new_master_keeper=spec(new).keeper_uid,
            methods=tuple(m.name for m in fs.methods or []),
            policy=fs.effective_policy,
            timeout_s=fs.effective_timeout.seconds,
        )
    )
