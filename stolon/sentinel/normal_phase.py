"""Phase ``normal``: keep a healthy master with the wanted standbys.

In order: remove dead keepers without a DB; advance a planned switchover (while it runs it
owns the master: :mod:`stolon.sentinel.switchover`); check the master; elect a replacement
if it failed and promote it once fencing allows (:mod:`stolon.sentinel.promotion_fencing`);
otherwise (master settled) run proxy fencing step 2, promote a standby cluster whose role
became master, and, only while the master is healthy and converged, remove old masters,
invalid DBs and DBs that cannot sync, manage synchronous standbys, keep
maxStandbysPerSender standbys and point every standby at the master. Finally the old
master's followers list is recomputed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from stolon.model.cluster import (
    DB,
    DB_INIT_NONE,
    DB_INIT_RESYNC,
    FOLLOW_INTERNAL,
    INITIAL_GENERATION,
    ROLE_MASTER,
    ROLE_STANDBY,
    ClusterData,
    DBSpec,
    FollowConfig,
)
from stolon.model.spec import ROLE_MASTER as CLUSTER_ROLE_MASTER
from stolon.sentinel.cycle import Cycle, UpdateFailed, dbs, fresh_db_uid, keepers, seconds, spec, status
from stolon.sentinel.eligibility import (
    FORKED_TIMELINE,
    INVALID_SYSTEM_ID,
    MASTER_TYPE,
    STANDBY_TYPE,
    db_type,
    db_validity,
    sync_repl,
)
from stolon.sentinel.events import (
    DBAdded,
    DBAddition,
    DBNotConverged,
    DBRemoval,
    DBRemoved,
    KeeperRemoved,
    StandbyClusterPromoted,
)
from stolon.sentinel.failover import elect, master_failures, promote
from stolon.sentinel.predicates import (
    CONVERGED,
    CONVERGENCE_FAILED,
    can_sync,
    classify,
    convergence_state,
    convergence_timeout,
)
from stolon.sentinel.promotion_fencing import allows_promotion
from stolon.sentinel.proxies import point_proxies
from stolon.sentinel.switchover import Step as SwitchoverStep
from stolon.sentinel.switchover import step as switchover_step
from stolon.sentinel.syncrepl import disable as disable_sync_repl
from stolon.sentinel.syncrepl import manage as manage_sync_repl


def normal(cd: ClusterData, cyc: Cycle) -> None:
    _remove_dead_keepers(cd, cyc)
    _report_convergence_failures(cd, cyc)
    cur_uid = status(cd).master
    cur = dbs(cd).get(cur_uid)
    if cur is None:
        raise UpdateFailed(f"master db {cur_uid!r} not available")
    planned = switchover_step(cd, cyc)
    if planned is SwitchoverStep.HOLD:
        return  # a switchover owns the master: no failure detection, no standby changes
    if planned is SwitchoverStep.PROMOTED:
        _update_followers(cd, cur_uid, status(cd).master)
        return
    wanted_uid = cur_uid
    causes = master_failures(cur, cyc)
    if causes:
        chosen = elect(cd, cur, causes, cyc)
        if chosen is not None and allows_promotion(cd, cur, chosen, cyc):
            promote(cd, cur_uid, chosen, cyc)
            wanted_uid = chosen
    if wanted_uid == cur_uid:
        _settled(cd, cur, cyc)
    _update_followers(cd, cur_uid, wanted_uid)


def _remove_dead_keepers(cd: ClusterData, cyc: Cycle) -> None:
    """Keepers owning a DB are never removed automatically. A keeper never seen healthy
    (no lastHealthyTime, possible only on a first run) is kept too (Go would remove it)."""
    interval = timedelta(seconds=seconds(cyc.d.dead_keeper_removal_interval))
    # the keepers cd.db_of_keeper() finds a DB for (one pass, not one per keeper)
    owning = {db.spec.keeper_uid for db in dbs(cd).values() if db.spec is not None}
    for uid in sorted(keepers(cd)):
        if uid in owning:
            continue
        last = keepers(cd)[uid].status.last_healthy_time
        if last is not None and cyc.now.wall > last + interval:
            del keepers(cd)[uid]
            cyc.emit(KeeperRemoved(uid, last))


def _report_convergence_failures(cd: ClusterData, cyc: Cycle) -> None:
    """One DBNotConverged per DB generation that the keeper failed to apply in time (the
    master is judged with convergenceTimeout, as in its health check)."""
    master_uid = status(cd).master
    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        timer = cyc.convergence.get(uid)
        if timer is None or timer.reported or timer.generation != db.generation:
            continue
        timeout = seconds(cyc.d.convergence_timeout) if uid == master_uid else convergence_timeout(db, cyc)
        if convergence_state(db, timeout, cyc) == CONVERGENCE_FAILED:
            cyc.convergence[uid] = replace(timer, reported=True)
            cyc.emit(
                DBNotConverged(
                    uid,
                    spec(db).keeper_uid,
                    db.generation,
                    db.status.current_generation,
                    timer.since,
                    timeout,
                )
            )


def _remove(cd: ClusterData, db: DB, cause: DBRemoval, cyc: Cycle, detail: str = "") -> None:
    del dbs(cd)[db.uid]
    cyc.emit(DBRemoved(db.uid, spec(db).keeper_uid, cause, detail))


def _settled(cd: ClusterData, master: DB, cyc: Cycle) -> None:
    """The master stays: fencing step 2, standby-cluster promotion, then the standbys."""
    point_proxies(cd, master, cyc)

    ms = spec(master)
    if cyc.spec.role == CLUSTER_ROLE_MASTER and (ms.role != ROLE_MASTER or ms.follow_config is not None):
        was_standby = ms.role == ROLE_STANDBY
        ms.role = ROLE_MASTER
        ms.follow_config = None
        if was_standby:
            cyc.emit(StandbyClusterPromoted(master.uid, ms.keeper_uid))

    if not (
        master.status.healthy
        and convergence_state(master, seconds(cyc.d.convergence_timeout), cyc) == CONVERGED
    ):
        return

    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        if uid != master.uid and db_type(db) == MASTER_TYPE:
            _remove(cd, db, DBRemoval.OLD_MASTER, cyc)

    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        validity = db_validity(cd, db)
        if uid != master.uid and validity in (INVALID_SYSTEM_ID, FORKED_TIMELINE):
            cause = (
                DBRemoval.INVALID_SYSTEM_ID if validity == INVALID_SYSTEM_ID else DBRemoval.FORKED_TIMELINE
            )
            _remove(cd, db, cause, cyc)

    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        ok, detail = can_sync(cd, db, cyc)
        if not ok:
            _remove(cd, db, DBRemoval.CANNOT_SYNC, cyc, detail)

    good, _failed, converging = classify(cd, cyc, STANDBY_TYPE)
    for db in good:
        spec(db).init_mode = DB_INIT_NONE

    if sync_repl(cyc.spec):
        manage_sync_repl(cd, master, good, cyc)
    else:
        disable_sync_repl(master, cyc)

    _keep_standby_count(cd, master, good, converging, cyc)

    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        if db_type(db) != STANDBY_TYPE:
            continue
        s = spec(db)
        s.role = ROLE_STANDBY
        s.followers = []
        s.follow_config = FollowConfig(type=FOLLOW_INTERNAL, dbuid=master.uid)
        s.synchronous_replication = False
        s.synchronous_standbys = None
        s.external_synchronous_standbys = None


def _keep_standby_count(
    cd: ClusterData, master: DB, good: list[DB], converging: list[DB], cyc: Cycle
) -> None:
    """maxStandbysPerSender standbys: with enough good ones, drop the others and the excess
    (never a synchronous standby); otherwise add resync standbys on free keepers.

    Failed standbys are kept while there are not enough good ones: they may come back.
    Which good standbys are in excess is deterministic here (lowest xLogPos first, then UID);
    Go takes them in map order.
    """
    per_sender = cyc.d.max_standbys_per_sender
    sync_set = set(spec(master).synchronous_standbys or [])
    good_uids = {db.uid for db in good}
    if len(good) >= per_sender:
        for uid in sorted(dbs(cd)):
            db = dbs(cd)[uid]
            if db_type(db) == STANDBY_TYPE and uid not in sync_set and uid not in good_uids:
                _remove(cd, db, DBRemoval.NOT_GOOD_STANDBY, cyc)
        excess = len(good) - per_sender
        for db in sorted(good, key=lambda d: (d.status.xlog_pos, d.uid)):
            if excess <= 0:
                break
            if db.uid in sync_set:
                continue
            _remove(cd, db, DBRemoval.STANDBY_IN_EXCESS, cyc)
            excess -= 1
        return
    missing = per_sender - (len(good) + len(converging))
    for keeper_uid in free_keepers(cd)[: max(missing, 0)]:
        db = DB(
            uid=fresh_db_uid(cd, cyc),
            generation=INITIAL_GENERATION,
            spec=DBSpec(
                keeper_uid=keeper_uid,
                init_mode=DB_INIT_RESYNC,
                role=ROLE_STANDBY,
                followers=[],
                follow_config=FollowConfig(type=FOLLOW_INTERNAL, dbuid=master.uid),
            ),
        )
        dbs(cd)[db.uid] = db
        cyc.emit(DBAdded(db.uid, keeper_uid, ROLE_STANDBY, DB_INIT_RESYNC, DBAddition.NEW_STANDBY))


def free_keepers(cd: ClusterData) -> list[str]:
    """Healthy keepers without a DB, sorted by UID."""
    used = {spec(db).keeper_uid for db in dbs(cd).values()}
    return [uid for uid in sorted(keepers(cd)) if keepers(cd)[uid].status.healthy and uid not in used]


def _update_followers(cd: ClusterData, cur_uid: str, wanted_uid: str) -> None:
    """The DB that was master at the start of the cycle lists the DBs following the wanted
    master (after an election: none yet, so the old master ends with no followers)."""
    followers = []
    for uid in sorted(dbs(cd)):
        fc = spec(dbs(cd)[uid]).follow_config
        if uid != cur_uid and fc is not None and fc.type == FOLLOW_INTERNAL and fc.dbuid == wanted_uid:
            followers.append(uid)
    spec(dbs(cd)[cur_uid]).followers = followers
