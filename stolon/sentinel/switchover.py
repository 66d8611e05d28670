"""Planned switchover (ours; Go Stolon has none): a master change without losing a commit.

``stolonctl switchover`` stores a :class:`~stolon.model.cluster.Switchover` request with
phase ``requested`` in ``cluster.status.switchover``. Each cycle, :func:`step` moves it on:

1. ``requested`` → ``stopping_master``: the target is checked (or chosen: the eligible
   standby with the highest reported xLogPos), the proxies are fenced (``masterDbUid``
   cleared) and the old master's DB spec gets ``stopped``: its keeper shuts PostgreSQL down
   cleanly (sessions end, the shutdown checkpoint is written and the connected standbys
   receive the WAL up to it) and reports where the WAL ends.
2. ``stopping_master`` → ``catching_up``: the old master reported that position.
3. ``catching_up`` → ``promoting``: the target passes the failover rule
   (:mod:`stolon.sentinel.eligibility`: converged, healthy, freshly reported, on the old
   master's timeline, in its known-in-sync set with synchronous replication, ...) and
   reports xLogPos ≥ that position: it is made master as in a failover
   (:func:`stolon.sentinel.failover.promote`).

The target is judged by :func:`stolon.sentinel.eligibility.switchover_refusals`: the failover
rule plus being a standby of the master. At step 1 every condition but the fresh report
applies; in steps 2-3 the conditions a target clears by catching up
(:data:`CATCH_UP_REFUSALS`) make the switchover wait, the others cancel it.
4. ``promoting`` → ``completed``: the new master is promoted and healthy. The old master DB
   is then removed like any old master and its keeper resyncs as a standby (pg_rewind when
   ``usePgrewind``, else a base backup).

While a switchover is in steps 1-3 it owns the master: no failure detection and no standby
management run (the synchronous standby set in particular cannot change under it). It is
cancelled, and a stopped old master told to start again, when the request is bad, the
target stops being eligible, the old master or its keeper fails (automatic failover then
takes over in the same cycle), or it has not reached ``promoting`` within its timeout.
"""

from __future__ import annotations

import enum

from stolon.model.cluster import (
    DB,
    SWITCHOVER_CANCELLED,
    SWITCHOVER_CATCHING_UP,
    SWITCHOVER_COMPLETED,
    SWITCHOVER_PROMOTING,
    SWITCHOVER_REQUESTED,
    SWITCHOVER_STOPPING,
    ClusterData,
    Switchover,
)
from stolon.model.spec import ROLE_STANDBY as CLUSTER_ROLE_STANDBY
from stolon.sentinel.cycle import Cycle, dbs, keepers, proxy, spec, status
from stolon.sentinel.eligibility import (
    Evidence,
    Refusal,
    Terms,
    explain,
    explain_by_keeper,
    switchover_candidates,
    switchover_refusals,
)
from stolon.sentinel.events import (
    ProxiesFenced,
    SwitchoverCancel,
    SwitchoverCancelled,
    SwitchoverCompleted,
    SwitchoverMasterStopped,
    SwitchoverPromoted,
    SwitchoverStarted,
    SwitchoverWait,
    SwitchoverWaiting,
)
from stolon.sentinel.failover import evidence, promote
from stolon.sentinel.memory import SwitchoverClock
from stolon.sentinel.proxies import master_promoted

#: Refusals a target can clear by catching up while the old master is stopped: they make
#: the switchover wait, not cancel, once the master is being stopped. Before it promotes,
#: the target must pass the whole rule.
CATCH_UP_REFUSALS = frozenset({Refusal.NO_FRESH_REPORT, Refusal.LAG_TOO_HIGH, Refusal.NOT_STREAMING})


class Step(enum.Enum):
    """What :func:`step` did to the master this cycle."""

    NONE = "none"  # no switchover owns the master: the normal master checks run
    HOLD = "hold"  # the switchover owns the master: skip failure detection and standby work
    PROMOTED = "promoted"  # the target was made master in this cycle


def target_refusals(cd: ClusterData, terms: Terms, db: DB, cyc: Cycle) -> list[Refusal]:
    """Why ``db`` can't replace ``terms.old`` in a switchover, with this cycle's evidence
    (:func:`stolon.sentinel.eligibility.switchover_refusals`)."""
    return switchover_refusals(cd, terms, db, evidence(db, terms, cyc))


def step(cd: ClusterData, cyc: Cycle) -> Step:
    sw = status(cd).switchover
    if sw is None or not sw.active:
        cyc.switchover = None
        return Step.NONE
    if cyc.switchover is None or cyc.switchover.switchover_id != sw.id:
        cyc.switchover = SwitchoverClock(sw.id, cyc.now.mono)
    if sw.phase == SWITCHOVER_PROMOTING:
        _promoting(cd, sw, cyc)
        return Step.NONE

    old = dbs(cd).get(status(cd).master)
    if old is None or old.uid != sw.master_db:
        now = old.uid if old is not None else "none"
        detail = f"the master changed (now db {now})"
        return _cancel(
            sw, dbs(cd).get(sw.master_db), SwitchoverCancel.MASTER_CHANGED, detail, cyc, hold=False
        )
    old_keeper = keepers(cd).get(spec(old).keeper_uid)
    if old_keeper is None or not old_keeper.status.healthy or not old.status.healthy:
        return _cancel(
            sw,
            old,
            SwitchoverCancel.MASTER_FAILED,
            "the old master failed during the switchover: automatic failover takes over",
            cyc,
            hold=False,
        )
    elapsed = cyc.since(cyc.switchover.since)
    if elapsed > sw.timeout_seconds():
        detail = f"timed out after {sw.timeout_seconds():g}s in phase {sw.phase}"
        if sw.message:
            detail += f" ({sw.message})"
        return _cancel(sw, old, SwitchoverCancel.TIMED_OUT, detail, cyc)

    terms = Terms.of(old, cyc.spec)
    if sw.phase == SWITCHOVER_REQUESTED:
        return _start(cd, sw, terms, cyc)
    target = dbs(cd).get(sw.target_db)
    if target is None:
        return _cancel(
            sw, old, SwitchoverCancel.NOT_ELIGIBLE, f"the target db {sw.target_db} was removed", cyc
        )
    why = target_refusals(cd, terms, target, cyc)
    fatal = [x for x in why if x not in CATCH_UP_REFUSALS]
    if fatal:
        detail = f"the target keeper {spec(target).keeper_uid} is no longer eligible: {explain(fatal)}"
        return _cancel(sw, old, SwitchoverCancel.NOT_ELIGIBLE, detail, cyc)

    if sw.phase == SWITCHOVER_STOPPING:
        pos = cyc.stopped.get(old.uid)
        if pos is None:
            return _wait(
                sw, SwitchoverWait.MASTER_STOP, "waiting for the old master to shut down cleanly", cyc
            )
        sw.master_xlog_pos = pos
        sw.phase = SWITCHOVER_CATCHING_UP
        cyc.emit(SwitchoverMasterStopped(sw.id, old.uid, spec(old).keeper_uid, pos))

    # catching_up: the target must pass the whole failover rule and have the old master's WAL
    if Refusal.NO_FRESH_REPORT in why:
        return _wait(sw, SwitchoverWait.TARGET_REPORT, f"waiting for a fresh report of db {target.uid}", cyc)
    if target.status.xlog_pos < sw.master_xlog_pos:
        detail = (
            f"waiting for db {target.uid} to receive the old master's WAL up to {sw.master_xlog_pos}"
            f" (at {target.status.xlog_pos})"
        )
        return _wait(sw, SwitchoverWait.TARGET_BEHIND, detail, cyc)
    if why:
        detail = f"waiting for db {target.uid}: {explain(why)}"
        return _wait(sw, SwitchoverWait.TARGET_NOT_READY, detail, cyc)
    promote(cd, old.uid, target.uid, cyc)
    sw.phase = SWITCHOVER_PROMOTING
    sw.message = f"waiting for db {target.uid} to be promoted"
    cyc.emit(
        SwitchoverPromoted(
            sw.id,
            old.uid,
            spec(old).keeper_uid,
            target.uid,
            spec(target).keeper_uid,
            sw.master_xlog_pos,
            target.status.xlog_pos,
        )
    )
    return Step.PROMOTED


def _start(cd: ClusterData, sw: Switchover, terms: Terms, cyc: Cycle) -> Step:
    """Check (or choose) the target with the whole rule, except a fresh report (waited for
    before the promotion), then fence the proxies and stop the old master."""
    old = terms.old
    if cyc.spec.role == CLUSTER_ROLE_STANDBY:
        return _cancel(sw, old, SwitchoverCancel.UNSUPPORTED, "a standby cluster can't switch over", cyc)
    if sw.target_keeper:
        if sw.target_keeper not in keepers(cd):
            detail = f"keeper {sw.target_keeper!r} is not in the cluster data"
            return _cancel(sw, old, SwitchoverCancel.UNKNOWN_KEEPER, detail, cyc)
        target = cd.db_of_keeper(sw.target_keeper)
        why = [Refusal.NOT_A_STANDBY] if target is None else _start_refusals(cd, terms, target, cyc)
        if target is None or why:
            detail = f"keeper {sw.target_keeper} is not eligible: {explain(why)}"
            return _cancel(sw, old, SwitchoverCancel.NOT_ELIGIBLE, detail, cyc)
        chosen_by = "request"
    else:
        ev = {uid: _start_evidence(db, terms, cyc) for uid, db in dbs(cd).items() if uid != old.uid}
        ok, refused = switchover_candidates(cd, terms, ev)
        if not ok:
            detail = f"no standby is eligible ({explain_by_keeper(refused)})"
            return _cancel(sw, old, SwitchoverCancel.NO_CANDIDATE, detail, cyc)
        target = ok[0]
        chosen_by = "sentinel"
    sw.target_db = target.uid
    sw.target_keeper = spec(target).keeper_uid
    sw.phase = SWITCHOVER_STOPPING
    sw.message = "waiting for the old master to shut down cleanly"
    p = proxy(cd)
    if p.spec.master_db_uid:
        p.spec.master_db_uid = ""
        p.generation += 1
        cyc.emit(ProxiesFenced(old.uid, target.uid, p.generation))
    spec(old).stopped = True
    cyc.emit(
        SwitchoverStarted(
            sw.id,
            old.uid,
            spec(old).keeper_uid,
            target.uid,
            spec(target).keeper_uid,
            spec(old).synchronous_replication,
            chosen_by,
        )
    )
    return Step.HOLD


def _start_evidence(db: DB, terms: Terms, cyc: Cycle) -> Evidence:
    """This cycle's evidence, without the fresh report: a keeper that skipped one publication
    does not cancel a request (the promotion waits for its report)."""
    ev = evidence(db, terms, cyc)
    return Evidence(fresh_report=None, streaming=ev.streaming)


def _start_refusals(cd: ClusterData, terms: Terms, db: DB, cyc: Cycle) -> list[Refusal]:
    return switchover_refusals(cd, terms, db, _start_evidence(db, terms, cyc))


def _promoting(cd: ClusterData, sw: Switchover, cyc: Cycle) -> None:
    master = dbs(cd).get(status(cd).master)
    if master is None or master.uid != sw.target_db:
        now = master.uid if master is not None else "none"
        detail = f"the promoted db {sw.target_db} was replaced by db {now} before it was ready"
        _cancel(sw, None, SwitchoverCancel.NEW_MASTER_REPLACED, detail, cyc, hold=False)
        return
    if master_promoted(master) and master.status.healthy and master.uid in cyc.refreshed:
        sw.phase = SWITCHOVER_COMPLETED
        sw.message = ""
        cyc.switchover = None
        cyc.emit(SwitchoverCompleted(sw.id, master.uid, spec(master).keeper_uid))


def _wait(sw: Switchover, cause: SwitchoverWait, detail: str, cyc: Cycle) -> Step:
    sw.message = detail
    cyc.emit(SwitchoverWaiting(sw.id, sw.phase, cause, detail))
    return Step.HOLD


def _cancel(
    sw: Switchover, old: DB | None, cause: SwitchoverCancel, detail: str, cyc: Cycle, *, hold: bool = True
) -> Step:
    """Abandon the switchover; ``old``, if stopped, is told to start again.

    ``hold``: skip the normal master checks in this cycle (the old master is being told to
    start again, so don't point proxies at it yet); False when the master failed or changed.
    """
    phase = sw.phase
    if old is not None and spec(old).stopped:
        spec(old).stopped = False
    sw.phase = SWITCHOVER_CANCELLED
    sw.message = detail
    cyc.switchover = None
    cyc.emit(SwitchoverCancelled(sw.id, phase, cause, detail))
    return Step.HOLD if hold else Step.NONE
