"""Keeper and DB health detection (Go's ``updateKeepersStatus``).

Freshness: a keeper info counts only if its InfoUID changed within the last
``sleepInterval`` (``failInterval`` if shorter), as first seen by this sentinel. Infos recorded at a first run
(``seen=False``) never count until their InfoUID changes, so that infos published before a
leadership change are not mistaken for live ones.

Error timers are cleared by a good check. A keeper's timer (and its DB's, when the keeper
is silent) starts at the keeper's last info change the daemon saw
(``Observations.keeper_silence_since``; Go: at the first cycle that found the info stale),
any other DB error at the cycle that found it; a keeper or DB is healthy while its error is
at most ``failInterval`` old. :func:`failure_deadline` tells the daemon when the next one
would cross that line, so that it decides then rather than at its next periodic cycle.
``forceFail`` makes a keeper unhealthy for exactly one cycle.
"""

from __future__ import annotations

from collections.abc import Mapping

from stolon.model.cluster import INITIAL_GENERATION, ClusterData, Keeper, KeeperSpec, KeeperStatus
from stolon.model.infos import KeeperInfo
from stolon.model.structural import stored_copy
from stolon.model.text import printable
from stolon.sentinel.admission import keeper_info_problem
from stolon.sentinel.cycle import Cycle, dbs, keepers, seconds, spec, status
from stolon.sentinel.events import (
    DBError,
    DBHealthy,
    DBUnhealthy,
    FirstRun,
    KeeperAdded,
    KeeperForceFailed,
    KeeperHealthy,
    KeeperInfoRejected,
    KeeperInfoWrongCluster,
    KeeperUnhealthy,
)
from stolon.sentinel.memory import DBReport, KeeperInfoSeen, Memory


def fresh_keeper_infos(cd: ClusterData, infos: dict[str, KeeperInfo], cyc: Cycle) -> dict[str, KeeperInfo]:
    """The infos that count this cycle; updates the info history.

    An info is stale once unchanged for ``sleepInterval``, or for ``failInterval`` when that
    is shorter (Go: ``sleepInterval`` only; with a longer ``sleepInterval`` a silent keeper
    would look alive past its failure deadline)."""
    sleep = min(seconds(cyc.d.sleep_interval), seconds(cyc.d.fail_interval))
    fresh: dict[str, KeeperInfo] = {}
    for uid in sorted(infos):
        ki = infos[uid]
        seen = cyc.keeper_infos.get(uid)
        if seen is not None and seen.info_uid == ki.info_uid:
            if not seen.seen or cyc.since(seen.changed_at) > sleep:
                continue  # recorded at a first run, or not updated for too long: stale
        else:
            cyc.keeper_infos[uid] = KeeperInfoSeen(ki.info_uid, True, cyc.silent_since(uid))
        fresh[uid] = ki
    return fresh


def update_health(cd: ClusterData, keepers_info: dict[str, KeeperInfo], first_run: bool, cyc: Cycle) -> None:
    """Update keepers and DB statuses of the working copy ``cd`` from the keeper infos."""
    assert cd.cluster is not None
    infos: dict[str, KeeperInfo] = {}
    for uid in sorted(keepers_info):
        ki = keepers_info[uid]
        problem = keeper_info_problem(uid, ki)
        if problem is not None:
            cyc.emit(KeeperInfoRejected(printable(uid), problem))
            continue
        if ki.cluster_uid != cd.cluster.uid:
            cyc.emit(KeeperInfoWrongCluster(uid, printable(ki.cluster_uid)))
            continue
        infos[uid] = ki

    if first_run:
        # Only remember what is there; nothing in the cluster data changes.
        for uid, ki in infos.items():
            cyc.keeper_infos[uid] = KeeperInfoSeen(ki.info_uid, False, cyc.now.mono)
        cyc.emit(FirstRun(len(infos)))
        return

    fresh = fresh_keeper_infos(cd, infos, cyc)
    _update_keepers(cd, fresh, cyc)
    _update_dbs(cd, fresh, cyc)
    _record_replication_evidence(cd, cyc)


def _update_keepers(cd: ClusterData, fresh: dict[str, KeeperInfo], cyc: Cycle) -> None:
    now = cyc.now
    fail_interval = seconds(cyc.d.fail_interval)
    for uid, ki in fresh.items():
        if uid not in keepers(cd):
            keepers(cd)[uid] = Keeper(
                uid=uid,
                generation=INITIAL_GENERATION,
                spec=KeeperSpec(),
                status=KeeperStatus(healthy=True, last_healthy_time=now.wall, boot_uuid=ki.boot_uuid),
            )
            cyc.emit(KeeperAdded(uid))

    for uid in sorted(keepers(cd)):
        k = keepers(cd)[uid]
        info = fresh.get(uid)
        if info is None:
            cyc.keeper_errors.setdefault(uid, cyc.silent_since(uid))
        else:
            k.status.can_be_master = info.can_be_master
            k.status.can_be_synchronous_replica = info.can_be_synchronous_replica
            cyc.keeper_errors.pop(uid, None)
            k.status.boot_uuid = info.boot_uuid
            k.status.postgres_binary_version = stored_copy(info.postgres_binary_version)

        was_healthy = k.status.healthy
        since = cyc.keeper_errors.get(uid)
        healthy = since is None or cyc.since(since) <= fail_interval
        forced = k.status.force_fail
        if forced:
            healthy = False
            k.status.force_fail = False
            cyc.force_failed.add(uid)
            cyc.emit(KeeperForceFailed(uid))
        if k.status.last_healthy_time is None or healthy:
            k.status.last_healthy_time = now.wall
        k.status.healthy = healthy
        if was_healthy and not healthy:
            age = cyc.since(since) if since is not None else None
            cyc.emit(KeeperUnhealthy(uid, since, age, forced))
        elif healthy and not was_healthy:
            cyc.emit(KeeperHealthy(uid))


def _update_dbs(cd: ClusterData, fresh: dict[str, KeeperInfo], cyc: Cycle) -> None:
    now = cyc.now
    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        ki = fresh.get(spec(db).keeper_uid)
        cause: DBError | None = None
        if ki is None:
            cause = DBError.NO_KEEPER_INFO
        elif ki.postgres_state is None:
            cause = DBError.NO_DB_STATE
        elif ki.postgres_state.uid != db.uid:
            cause = DBError.UNEXPECTED_DB_UID
        else:
            pg = ki.postgres_state
            if db.status.xlog_pos == pg.xlog_pos:
                cyc.xlog_stalls[uid] = cyc.xlog_stalls.get(uid, 0) + 1
            else:
                cyc.xlog_stalls.pop(uid, None)
            db.status.listen_address = pg.listen_address
            db.status.port = pg.port
            db.status.current_generation = pg.generation
            if pg.healthy:
                cyc.db_errors.pop(uid, None)
                db.status.system_id = pg.system_id
                db.status.timeline_id = pg.timeline_id
                db.status.xlog_pos = pg.xlog_pos
                db.status.timelines_history = (
                    [stored_copy(h) for h in pg.timelines_history]
                    if pg.timelines_history is not None
                    else None
                )
                db.status.pg_parameters = dict(pg.pg_parameters) if pg.pg_parameters is not None else None
                db.status.older_wal_file = pg.older_wal_file
                cyc.cur_sync[uid] = list(pg.synchronous_standbys or [])
                cyc.lost_slots[uid] = list(pg.lost_replication_slots or [])
                cyc.refreshed.add(uid)
            elif spec(db).stopped:
                # Stopping or stopped because its spec says so (a switchover): not a failure
                # while its keeper reports. Where its WAL ends once it applied the stop.
                cyc.db_errors.pop(uid, None)
                if pg.stopped_xlog_pos and pg.generation == db.generation:
                    cyc.stopped[uid] = pg.stopped_xlog_pos
            else:
                cause = DBError.POSTGRES_UNHEALTHY
        if cause is not None:
            start = cyc.silent_since(spec(db).keeper_uid) if cause == DBError.NO_KEEPER_INFO else now.mono
            cyc.db_errors.setdefault(uid, start)
            cyc.db_error_causes[uid] = cause

    fail_interval = seconds(cyc.d.fail_interval)
    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        was_healthy = db.status.healthy
        since = cyc.db_errors.get(uid)
        healthy = since is None or cyc.since(since) <= fail_interval
        keeper = keepers(cd).get(spec(db).keeper_uid)
        if keeper is None or not keeper.status.healthy:
            healthy = False
        db.status.healthy = healthy
        if was_healthy and not healthy:
            age = cyc.since(since) if since is not None else None
            # An error timer still running means this cycle's check failed too.
            own_failure = age is not None and age > fail_interval
            cause = cyc.db_error_causes.get(uid, DBError.KEEPER_UNHEALTHY) if own_failure else None
            cause = cause or DBError.KEEPER_UNHEALTHY
            cyc.emit(DBUnhealthy(uid, spec(db).keeper_uid, cause, since, age))
        elif healthy and not was_healthy:
            cyc.emit(DBHealthy(uid, spec(db).keeper_uid))


def _record_replication_evidence(cd: ClusterData, cyc: Cycle) -> None:
    """Remember when each DB last reported healthy and last showed replication progress.

    Progress: its xLogPos grew since its previous healthy report, or it is at or past the
    master's reported xLogPos (a standby on a quiet master makes no progress but is current).
    See quirk 2 in docs/sentinel-decisions.md for how the election uses it.
    """
    master = dbs(cd).get(status(cd).master)
    for uid in sorted(cyc.refreshed):
        db = dbs(cd)[uid]
        prev = cyc.db_reports.get(uid)
        xlog = db.status.xlog_pos
        progressed = (prev is not None and xlog > prev.xlog_pos) or (
            master is not None and xlog >= master.status.xlog_pos
        )
        progress_at = cyc.now.mono if progressed else (prev.progress_at if prev is not None else None)
        cyc.db_reports[uid] = DBReport(
            observed_since=prev.observed_since if prev is not None else cyc.now.mono,
            healthy_at=cyc.now.mono,
            progress_at=progress_at,
            xlog_pos=xlog,
        )


def failure_deadline(
    cd: ClusterData, memory: Memory, silence_since: Mapping[str, float], fail_interval: float
) -> float | None:
    """The earliest monotonic time at which a keeper or DB that is healthy in ``cd`` (the
    cluster data the last cycle wrote) crosses ``failInterval`` if nothing changes: a
    keeper's silence (``silence_since``, else its running error timer) or a DB's running
    error timer, plus ``failInterval``. ``None``: nothing to wait for. The daemon decides
    again just after it (healthy means "error at most ``failInterval`` old")."""
    times: list[float] = []
    for uid, keeper in (cd.keepers or {}).items():
        if not keeper.status.healthy:
            continue
        since = silence_since.get(uid, memory.keeper_errors.get(uid))
        if since is not None:
            times.append(since + fail_interval)
    for uid, db in (cd.dbs or {}).items():
        since = memory.db_errors.get(uid)
        if db.status.healthy and since is not None:
            times.append(since + fail_interval)
    return min(times) if times else None
