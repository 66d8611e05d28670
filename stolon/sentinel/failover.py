"""Failover: master failure detection, the choice of a new master, and the promotion
bookkeeping (shared with the planned switchover). The sentinels' own leader election is
another thing: :class:`stolon.store.base.Election`.

Every DB other than the failed master is judged by the rule of
:mod:`stolon.sentinel.eligibility` (the same one a switchover uses) with the evidence of this
cycle, and gets the full list of refusals; the eligible ones are ranked by reported xLogPos,
highest first (quirk 1). A synchronous election (the failed master's own DBSpec had
synchronousReplication) only accepts members of the known-in-sync set (quirk 4, as Go).
Quirk 2 adds two conditions: a healthy report in this very cycle, and, in an asynchronous
election, recent replication progress. The quirks are described in
docs/sentinel-decisions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from stolon.model.cluster import DB, FOLLOW_EXTERNAL, ROLE_MASTER, ROLE_STANDBY, ClusterData, FollowConfig
from stolon.model.spec import ROLE_STANDBY as CLUSTER_ROLE_STANDBY
from stolon.model.spec import ClusterSpec
from stolon.sentinel.cycle import Cycle, dbs, keepers, proxy, seconds, spec, status
from stolon.sentinel.eligibility import STANDBY_TYPE, Evidence, Refusal, Terms, db_type, refusals, sync_repl
from stolon.sentinel.events import (
    Candidate,
    MasterElected,
    MasterFailed,
    MasterFailure,
    NoEligibleMaster,
    ProxiesFenced,
    SyncChange,
    SyncStandbysChanged,
)
from stolon.sentinel.predicates import CONVERGENCE_FAILED, classify, convergence_state

FAKE_STANDBY_NAME = "stolonfakestandby"


def master_failures(master: DB, cyc: Cycle) -> tuple[MasterFailure, ...]:
    """Why the current master is not OK (empty when it is)."""
    causes: list[MasterFailure] = []
    if not master.status.healthy:
        causes.append(MasterFailure.UNHEALTHY)
    if convergence_state(master, seconds(cyc.d.convergence_timeout), cyc) == CONVERGENCE_FAILED:
        causes.append(MasterFailure.CONVERGENCE_FAILED)
    return tuple(causes)


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


def evidence(db: DB, terms: Terms, cyc: Cycle) -> Evidence:
    """What this cycle knows about ``db`` as a candidate to replace ``terms.old``."""
    streaming = None if terms.synchronous else streaming_recently(db, terms.old, cyc)
    return Evidence(fresh_report=db.uid in cyc.refreshed, streaming=streaming)


@dataclass
class _Eval:
    db: DB
    refusals: list[Refusal]
    evidence: Evidence


def _evaluate(cd: ClusterData, terms: Terms, cyc: Cycle) -> list[_Eval]:
    evals: list[_Eval] = []
    for uid in sorted(dbs(cd)):
        if uid == terms.old.uid:
            continue
        db = dbs(cd)[uid]
        ev = evidence(db, terms, cyc)
        evals.append(_Eval(db, refusals(cd, terms, db, ev), ev))
    # Best first (quirk 1: highest reported xLogPos), eligible before refused, ties by UID.
    evals.sort(key=lambda e: (bool(e.refusals), -e.db.status.xlog_pos, e.db.uid))
    return evals


def elect(cd: ClusterData, old: DB, causes: tuple[MasterFailure, ...], cyc: Cycle) -> str | None:
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
    terms = Terms.of(old, cyc.spec)
    synchronous = terms.synchronous
    in_sync = tuple(sorted(terms.in_sync))
    evals = _evaluate(cd, terms, cyc)
    chosen = evals[0].db if evals and not evals[0].refusals else None
    candidates: list[Candidate] = []
    for e in evals:
        refusals = list(e.refusals)
        if not refusals and e.db is not chosen:
            refusals.append(Refusal.OUTRANKED)
        candidates.append(
            Candidate(
                db_uid=e.db.uid,
                keeper_uid=spec(e.db).keeper_uid,
                db_type=db_type(e.db),
                xlog_pos=e.db.status.xlog_pos,
                lag_bytes=old.status.xlog_pos - e.db.status.xlog_pos,
                timeline_id=e.db.status.timeline_id,
                healthy=e.db.status.healthy,
                converged=e.db.status.current_generation == e.db.generation,
                fresh_report=e.db.uid in cyc.refreshed,
                streaming=e.evidence.streaming,
                in_sync_set=e.db.uid in terms.in_sync if synchronous else None,
                chosen=e.db is chosen,
                refusals=tuple(refusals),
            )
        )
    if chosen is None:
        cyc.emit(
            NoEligibleMaster(old.uid, spec(old).keeper_uid, causes, synchronous, in_sync, tuple(candidates))
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
            known_in_sync=in_sync,
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


def inherited_sync_standbys(cd: ClusterData, old_uid: str, new_uid: str, cyc: Cycle) -> list[str]:
    """The synchronous standbys a new master starts with: the failed master's, with the new
    master itself replaced.

    Go replaces it by the old master, which is gone (or about to be removed as an old
    master): commits on the new master then block until a later cycle chooses a standby
    that follows it, several round trips after the promotion. Ours replaces it by the best
    good standby of the old master outside the set (highest reported xLogPos, then UID; not
    ``--can-be-synchronous-replica=false``), which is re-pointed at the new master right
    after the promotion: commits block only until it streams from the new master, and every
    commit the new master acknowledges is on it. The known-in-sync set does not change:
    the substitute joins it once the new master reports it in sync. Without such a standby,
    the old master takes the place, as in Go (commits block as with the fake standby).
    """
    old = dbs(cd)[old_uid]
    defined = list(spec(old).synchronous_standbys or [])
    if new_uid not in defined:
        return defined
    members = [uid for uid in defined if uid != new_uid]
    good, _failed, _converging = classify(cd, cyc, STANDBY_TYPE)
    substitutes = [
        db
        for db in good
        if db.uid not in (old_uid, new_uid) and db.uid not in members and keeper_can_be_synchronous(cd, db)
    ]
    substitutes.sort(key=lambda db: (-db.status.xlog_pos, db.uid))
    members.append(substitutes[0].uid if substitutes else old_uid)
    return members


def keeper_can_be_synchronous(cd: ClusterData, db: DB) -> bool:
    k = keepers(cd).get(spec(db).keeper_uid)
    return k is None or k.status.can_be_synchronous_replica is not False


def promote(cd: ClusterData, old_uid: str, new_uid: str, cyc: Cycle) -> None:
    """Bookkeeping of an election, in the same cycle.

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
        inherited = inherited_sync_standbys(cd, old_uid, new_uid, cyc)
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
                new_uid,
                SyncChange.FAILOVER,
                old_defined,
                new_defined,
                in_sync,
                in_sync,
                old_external,
                new_external,
            )
        )
