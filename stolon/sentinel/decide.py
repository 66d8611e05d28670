"""One sentinel cycle as a pure function: ``decide(prev_cd, observations, memory, now)``.

Go Stolon's ``clusterSentinelCheck`` minus the store: (first run) reset the memory and start
convergence timers; health detection; active proxies; the phase's update (initializing or
normal); spec propagation, generation bumps and change times; convergence timers
follow the new generations. Nothing here reads a clock, the store or the environment: time
comes in ``now``, randomness through ``new_uid`` and ``pick_index``, both required: the
daemon passes random ones, tests fixed ones. The inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from stolon.model.cluster import PHASE_INITIALIZING, PHASE_NORMAL, ClusterData, DBSpec
from stolon.model.spec import ClusterSpec
from stolon.model.structural import copy_as_stored, snapshot
from stolon.sentinel.backups import update_backups
from stolon.sentinel.cycle import Cycle, UpdateFailed, dbs, keepers, normalize, spec, status
from stolon.sentinel.events import (
    Event,
    UpdateError,
)
from stolon.sentinel.health import update_health
from stolon.sentinel.init_phase import initializing
from stolon.sentinel.memory import ConvergenceTimer, Memory
from stolon.sentinel.normal_phase import normal
from stolon.sentinel.observations import Now, Observations
from stolon.sentinel.proxies import active_proxies
from stolon.sentinel.specsync import bump_generations, propagate_spec, update_change_times

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Decision:
    """The outcome of a cycle.

    ``cluster_data``: the new cluster data to write with CAS against the revision ``prev_cd``
    was read at; a new object (``prev_cd`` is untouched). None when the cycle failed
    (``error`` says why, and an :class:`UpdateError` event is the last one): write nothing.
    ``memory``: carry it into the next cycle even if the write fails.
    ``events``: what was decided and why, in order (see :mod:`stolon.sentinel.events`).
    ``active_proxies``: UIDs of the proxies considered alive this cycle.
    """

    cluster_data: ClusterData | None
    memory: Memory
    events: tuple[Event, ...]
    error: str | None = None
    active_proxies: tuple[str, ...] = ()

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


def decide(
    prev_cd: ClusterData,
    observations: Observations,
    memory: Memory,
    now: Now,
    *,
    new_uid: Callable[[], str],
    pick_index: Callable[[int], int],
) -> Decision:
    """Compute the next cluster data from the stored one and what the store reported.

    ``prev_cd`` must have a cluster (the daemon checks the format version and validates the
    spec first, as Go does). ``new_uid()`` makes DB UIDs (Go: random); ``pick_index(n)``
    returns an index in ``range(n)`` to pick the initial master among n keepers sorted by
    UID (Go: random).
    """
    if prev_cd.cluster is None:
        raise ValueError("cluster data without a cluster")
    first_run = observations.first_run
    base = Memory.empty() if first_run else memory
    cd = copy_as_stored(prev_cd, go_json=False)  # a deep copy, as stored
    normalize(cd)
    assert cd.cluster is not None
    cyc = Cycle.start(base, now, cd.cluster.spec or ClusterSpec(), new_uid, pick_index)
    cyc.fencing = dict(observations.fencing)
    cyc.silence_since = dict(observations.keeper_silence_since)
    if first_run:
        _follow_generations(cd, cyc)

    update_health(cd, dict(observations.keepers_info), first_run, cyc)
    cyc.active_proxies, cyc.proxy_infos = active_proxies(observations.proxies_info, cyc.proxy_infos, now.mono)
    prev_specs: dict[str, DBSpec] = {uid: snapshot(spec(db)) for uid, db in dbs(cd).items()}

    try:
        phase = status(cd).phase
        if phase == PHASE_INITIALIZING:
            initializing(cd, cyc)
        elif phase == PHASE_NORMAL:
            normal(cd, cyc)
            update_backups(cd, observations.keepers_info, cyc)
        else:
            raise UpdateFailed(f"unknown cluster phase {phase!r}")
    except UpdateFailed as e:
        cyc.emit(UpdateError(str(e)))
        # As Go: timers, counters and proxy histories are kept, the keeper info history and
        # the convergence timers are not advanced.
        cyc.keeper_infos = dict(base.keeper_infos)
        return Decision(None, _memory(cd, observations, cyc), tuple(cyc.events), str(e), _active(cyc))

    propagate_spec(cd, set(prev_specs), cyc)
    bump_generations(cd, prev_specs, cyc)
    update_change_times(prev_cd, cd, now)
    _follow_generations(cd, cyc)
    return Decision(cd, _memory(cd, observations, cyc), tuple(cyc.events), None, _active(cyc))


def _active(cyc: Cycle) -> tuple[str, ...]:
    return tuple(sorted(cyc.active_proxies))


def _follow_generations(cd: ClusterData, cyc: Cycle) -> None:
    """Convergence timers: none for a converged DB; restarted when the generation changes."""
    for uid, db in dbs(cd).items():
        if db.status.current_generation == db.generation:
            cyc.convergence.pop(uid, None)
            continue
        timer = cyc.convergence.get(uid)
        if timer is None or timer.generation != db.generation:
            cyc.convergence[uid] = ConvergenceTimer(db.generation, cyc.now.mono)


def _memory(cd: ClusterData, observations: Observations, cyc: Cycle) -> Memory:
    """Freeze the cycle's memory, forgetting keepers and DBs that no longer exist."""
    k_uids = set(keepers(cd))
    d_uids = set(dbs(cd))
    info_uids = k_uids | set(observations.keepers_info)
    return Memory(
        keeper_errors={u: t for u, t in cyc.keeper_errors.items() if u in k_uids},
        db_errors={u: t for u, t in cyc.db_errors.items() if u in d_uids},
        xlog_stalls={u: n for u, n in cyc.xlog_stalls.items() if u in d_uids},
        keeper_infos={u: h for u, h in cyc.keeper_infos.items() if u in info_uids},
        convergence={u: t for u, t in cyc.convergence.items() if u in d_uids},
        proxy_infos=dict(cyc.proxy_infos),
        db_reports={u: r for u, r in cyc.db_reports.items() if u in d_uids},
        switchover=cyc.switchover if _switchover_active(cd) else None,
    )


def _switchover_active(cd: ClusterData) -> bool:
    sw = status(cd).switchover
    return sw is not None and sw.active
