"""Master failure detection, election and promotion bookkeeping (§4.5 steps 2-4).

Every DB other than the failed master is evaluated and gets the full list of reasons that
refuse it; the eligible ones are ranked by reported xLogPos, highest first (quirk 1). A
synchronous election (the failed master's own DBSpec had synchronousReplication) only
accepts members of the known-in-sync set (quirk 4, as Go). Quirk 2 adds two conditions:
a healthy report in this very cycle, and, in an asynchronous election, recent replication
progress. See DECISIONS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from stolon.model.cluster import (
    DB,
    FOLLOW_EXTERNAL,
    ROLE_MASTER,
    ROLE_STANDBY,
    ClusterData,
    FollowConfig,
)
from stolon.model.spec import ROLE_STANDBY as CLUSTER_ROLE_STANDBY
from stolon.model.spec import ClusterSpec
from stolon.sentinel.cycle import Cycle, dbs, keepers, proxy, seconds, spec, status
from stolon.sentinel.predicates import (
    CONVERGED,
    CONVERGENCE_FAILED,
    FORKED_TIMELINE,
    INVALID_SYSTEM_ID,
    UNKNOWN,
    convergence_state,
    convergence_timeout,
    db_type,
    db_validity,
    is_lag_below_max,
)
from stolon.sentinel.reasons import (
    MASTER_CONVERGENCE_FAILED,
    MASTER_UNHEALTHY,
    REFUSED_CANNOT_BE_MASTER,
    REFUSED_DIFFERENT_TIMELINE,
    REFUSED_FORKED_TIMELINE,
    REFUSED_INVALID_SYSTEM_ID,
    REFUSED_KEEPER_UNHEALTHY,
    REFUSED_LAG_TOO_HIGH,
    REFUSED_NO_FRESH_REPORT,
    REFUSED_NOT_CONVERGED,
    REFUSED_NOT_IN_SYNC_SET,
    REFUSED_NOT_STREAMING,
    REFUSED_OUTRANKED,
    REFUSED_UNHEALTHY,
    REFUSED_UNKNOWN_STATE,
    SYNC_FAILOVER,
    Candidate,
    MasterElected,
    MasterFailed,
    NoEligibleMaster,
    ProxiesFenced,
    SyncStandbysChanged,
)

FAKE_STANDBY_NAME = "stolonfakestandby"


def sync_repl(cluster_spec: ClusterSpec) -> bool:
    """Synchronous replication is used only by a cluster whose role is master (§4.9)."""
    return bool(cluster_spec.synchronous_replication) and cluster_spec.role != CLUSTER_ROLE_STANDBY


def master_failures(master: DB, cyc: Cycle) -> tuple[str, ...]:
    """Why the current master is not OK (empty when it is)."""
    causes: list[str] = []
    if not master.status.healthy:
        causes.append(MASTER_UNHEALTHY)
    if convergence_state(master, seconds(cyc.d.convergence_timeout), cyc) == CONVERGENCE_FAILED:
        causes.append(MASTER_CONVERGENCE_FAILED)
    return tuple(causes)


def known_in_sync(master: DB) -> list[str]:
    """The old master's reported ∩ defined synchronous standbys (order of the reported list)."""
    defined = spec(master).synchronous_standbys or []
    return [uid for uid in master.status.synchronous_standbys or [] if uid in defined]


def streaming_recently(db: DB, master: DB, cyc: Cycle) -> bool | None:
    """Quirk 2: was ``db`` replicating around the time the master was last seen alive?

    True when it is at or past the master's last reported xLogPos, or showed progress within
    failInterval before the master's last healthy report. False when this sentinel watched it
    for at least that window and saw no progress. None (undecidable: the lag rule alone
    applies, as in Go) when the master never reported to this sentinel or the DB was watched
    for less than the window.
    """
    if db.status.xlog_pos >= master.status.xlog_pos:
        return True
    anchor = cyc.db_reports.get(master.uid)
    if anchor is None:
        return None
    window = seconds(cyc.d.fail_interval)
    report = cyc.db_reports.get(db.uid)
    if (
        report is not None
        and report.progress_at is not None
        and anchor.healthy_at - report.progress_at <= window
    ):
        return True
    if report is None or report.observed_since > anchor.healthy_at - window:
        return None
    return False


@dataclass
class _Eval:
    db: DB
    refusals: list[str]
    converged: bool
    streaming: bool | None
    in_sync_set: bool | None


def _evaluate(cd: ClusterData, old: DB, synchronous: bool, in_sync: list[str], cyc: Cycle) -> list[_Eval]:
    async_lag_filter = not sync_repl(cyc.spec)  # Go: the cluster spec decides the lag filter
    evals: list[_Eval] = []
    for uid in sorted(dbs(cd)):
        if uid == old.uid:
            continue
        db = dbs(cd)[uid]
        refusals: list[str] = []
        keeper = keepers(cd).get(spec(db).keeper_uid)
        if keeper is None or not keeper.status.healthy:
            refusals.append(REFUSED_KEEPER_UNHEALTHY)
        validity = db_validity(cd, db)
        if validity == UNKNOWN:
            refusals.append(REFUSED_UNKNOWN_STATE)
        elif validity == INVALID_SYSTEM_ID:
            refusals.append(REFUSED_INVALID_SYSTEM_ID)
        elif validity == FORKED_TIMELINE:
            refusals.append(REFUSED_FORKED_TIMELINE)
        converged = convergence_state(db, convergence_timeout(db, cyc), cyc) == CONVERGED
        if not converged:
            refusals.append(REFUSED_NOT_CONVERGED)
        if not db.status.healthy:
            refusals.append(REFUSED_UNHEALTHY)
        if db.status.timeline_id != old.status.timeline_id:
            refusals.append(REFUSED_DIFFERENT_TIMELINE)
        if async_lag_filter and not is_lag_below_max(old, db, cyc):
            refusals.append(REFUSED_LAG_TOO_HIGH)
        if keeper is not None and keeper.status.can_be_master is False:
            refusals.append(REFUSED_CANNOT_BE_MASTER)
        if uid not in cyc.refreshed:
            refusals.append(REFUSED_NO_FRESH_REPORT)
        streaming: bool | None = None
        if not synchronous:
            streaming = streaming_recently(db, old, cyc)
            if streaming is False:
                refusals.append(REFUSED_NOT_STREAMING)
        member: bool | None = None
        if synchronous:
            member = uid in in_sync
            if not member:
                refusals.append(REFUSED_NOT_IN_SYNC_SET)
        evals.append(_Eval(db, refusals, converged, streaming, member))
    # Best first (quirk 1: highest reported xLogPos), eligible before refused, ties by UID.
    evals.sort(key=lambda e: (bool(e.refusals), -e.db.status.xlog_pos, e.db.uid))
    return evals


def elect(cd: ClusterData, old: DB, causes: tuple[str, ...], cyc: Cycle) -> str | None:
    """Choose the DB to replace the failed master ``old``; None when none is eligible."""
    cyc.emit(
        MasterFailed(
            old.uid,
            spec(old).keeper_uid,
            causes,
            old.generation,
            old.status.current_generation,
        )
    )
    synchronous = spec(old).synchronous_replication
    in_sync = known_in_sync(old) if synchronous else []
    evals = _evaluate(cd, old, synchronous, in_sync, cyc)
    chosen = evals[0].db if evals and not evals[0].refusals else None
    candidates: list[Candidate] = []
    for e in evals:
        refusals = list(e.refusals)
        if not refusals and e.db is not chosen:
            refusals.append(REFUSED_OUTRANKED)
        candidates.append(
            Candidate(
                db_uid=e.db.uid,
                keeper_uid=spec(e.db).keeper_uid,
                db_type=db_type(e.db),
                xlog_pos=e.db.status.xlog_pos,
                lag_bytes=old.status.xlog_pos - e.db.status.xlog_pos,
                timeline_id=e.db.status.timeline_id,
                healthy=e.db.status.healthy,
                converged=e.converged,
                fresh_report=e.db.uid in cyc.refreshed,
                streaming=e.streaming,
                in_sync_set=e.in_sync_set,
                chosen=e.db is chosen,
                refusals=tuple(refusals),
            )
        )
    if chosen is None:
        cyc.emit(
            NoEligibleMaster(
                old.uid, spec(old).keeper_uid, causes, synchronous, tuple(sorted(in_sync)), tuple(candidates)
            )
        )
        return None
    cyc.emit(
        MasterElected(
            old_master_db=old.uid,
            old_master_keeper=spec(old).keeper_uid,
            why=causes,
            new_master_db=chosen.uid,
            new_master_keeper=spec(chosen).keeper_uid,
            synchronous=synchronous,
            known_in_sync=tuple(sorted(in_sync)),
            candidates=tuple(candidates),
        )
    )
    return chosen.uid


def master_follow_config(cluster_spec: ClusterSpec) -> FollowConfig | None:
    """A standby cluster's master follows the remote primary; a master cluster's follows none."""
    if cluster_spec.role != CLUSTER_ROLE_STANDBY:
        return None
    sc = cluster_spec.standby_config
    return FollowConfig(
        type=FOLLOW_EXTERNAL,
        standby_settings=sc.standby_settings.copy() if sc and sc.standby_settings else None,
        archive_recovery_settings=(
            sc.archive_recovery_settings.copy() if sc and sc.archive_recovery_settings else None
        ),
    )


def promote(cd: ClusterData, old_uid: str, new_uid: str, cyc: Cycle) -> None:
    """Bookkeeping of an election, in the same cycle (§4.5 step 4).

    The old master keeps its role (so it stays electable should the new one fail to
    converge) but loses its followers; proxies are fenced; the new master inherits the old
    master's synchronous standbys with itself replaced by the old master.
    """
    old, new = dbs(cd)[old_uid], dbs(cd)[new_uid]
    spec(old).followers = []
    status(cd).master = new_uid
    follow = master_follow_config(cyc.spec)
    spec(new).role = ROLE_STANDBY if follow is not None else ROLE_MASTER
    spec(new).follow_config = follow

    p = proxy(cd)
    if p.spec.master_db_uid:
        p.spec.master_db_uid = ""
        p.generation += 1
        cyc.emit(ProxiesFenced(old_uid, new_uid, p.generation))

    ns = spec(new)
    old_defined = tuple(ns.synchronous_standbys or [])
    old_external = tuple(ns.external_synchronous_standbys or [])
    if sync_repl(cyc.spec):
        inherited = [old_uid if uid == new_uid else uid for uid in spec(old).synchronous_standbys or []]
        external = [FAKE_STANDBY_NAME] if not inherited and cyc.d.min_synchronous_standbys > 0 else []
        ns.synchronous_replication = True
        ns.synchronous_standbys = sorted(inherited)
        ns.external_synchronous_standbys = sorted(external)
    else:
        ns.synchronous_replication = False
        ns.synchronous_standbys = None
        ns.external_synchronous_standbys = None
    new_defined = tuple(ns.synchronous_standbys or [])
    new_external = tuple(ns.external_synchronous_standbys or [])
    if (old_defined, old_external) != (new_defined, new_external):
        in_sync = tuple(new.status.synchronous_standbys or [])
        cyc.emit(
            SyncStandbysChanged(
                new_uid, SYNC_FAILOVER, old_defined, new_defined, in_sync, in_sync, old_external, new_external
            )
        )
