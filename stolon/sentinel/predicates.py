"""Helper predicates over DBs that need the cycle: convergence, state, lag, ability to sync.

All of them read the working cluster data and the cycle; none changes anything. A DB's type
and validity need the cluster data only: they are in :mod:`stolon.sentinel.eligibility`.
"""

from __future__ import annotations

import re

from stolon.model.cluster import DB, DB_INIT_RESYNC, INITIAL_GENERATION, ClusterData
from stolon.sentinel.cycle import Cycle, dbs, keepers, seconds, spec, status
from stolon.sentinel.eligibility import STANDBY_TYPE, VALID, db_type, db_validity

# Convergence states.
CONVERGED = "converged"
CONVERGING = "converging"
CONVERGENCE_FAILED = "convergence_failed"

# DB states (Go's dbStatus).
GOOD = "good"
FAILED = "failed"

#: a standby whose xLogPos did not move for more than this many cycles may be unable to sync
NOT_INCREASING_XLOG_TIMES = 10
WAL_SEG_SIZE = 16 * 1024 * 1024
_WAL_FILE_NAME = re.compile(r"[0-9A-F]{24}")


def convergence_state(db: DB, timeout_s: float, cyc: Cycle) -> str:
    """Converged when the keeper reports the wanted generation; failed when the timer of this
    generation is older than ``timeout_s`` (0 = no limit)."""
    if db.status.current_generation == db.generation:
        return CONVERGED
    if timeout_s != 0:
        timer = cyc.convergence.get(db.uid)
        since = timer.since if timer is not None else cyc.now.mono
        if cyc.since(since) > timeout_s:
            return CONVERGENCE_FAILED
    return CONVERGING


def convergence_timeout(db: DB, cyc: Cycle) -> float:
    """convergenceTimeout, or syncTimeout for a resync DB still in its first generation."""
    if db.generation == INITIAL_GENERATION and spec(db).init_mode == DB_INIT_RESYNC:
        return seconds(cyc.d.sync_timeout)
    return seconds(cyc.d.convergence_timeout)


def db_state(cd: ClusterData, db: DB, cyc: Cycle) -> str:
    """GOOD, FAILED or CONVERGING (Go's dbStatus)."""
    keeper = keepers(cd).get(spec(db).keeper_uid)
    if keeper is None or not keeper.status.healthy:
        return FAILED
    conv = convergence_state(db, convergence_timeout(db, cyc), cyc)
    if conv == CONVERGENCE_FAILED:
        return FAILED
    if conv == CONVERGING:
        return CONVERGING
    if not db.status.healthy:
        return FAILED
    return GOOD


def classify(cd: ClusterData, cyc: Cycle, of_type: str) -> tuple[list[DB], list[DB], list[DB]]:
    """Valid DBs of ``of_type`` split into (good, failed, converging), each sorted by UID.

    DBs of unknown validity (never reported) are in none of the lists, as in Go.
    """
    good: list[DB] = []
    failed: list[DB] = []
    converging: list[DB] = []
    for uid in sorted(dbs(cd)):
        db = dbs(cd)[uid]
        if db_type(db) != of_type or db_validity(cd, db) != VALID:
            continue
        state = db_state(cd, db, cyc)
        (good if state == GOOD else failed if state == FAILED else converging).append(db)
    return good, failed, converging


def is_lag_below_max(master: DB, db: DB, cyc: Cycle) -> bool:
    return master.status.xlog_pos - db.status.xlog_pos <= cyc.d.max_standby_lag


def wal_file_name_no_timeline(xlog_pos: int) -> str:
    """``%08X%08X`` of the log id and segment of an LSN (16 MiB segments)."""
    return f"{(xlog_pos >> 32) & 0xFFFFFFFF:08X}{(xlog_pos & 0xFFFFFFFF) // WAL_SEG_SIZE:08X}"


def can_sync(cd: ClusterData, db: DB, cyc: Cycle) -> tuple[bool, str]:
    """Whether a standby can still catch up from the master's WAL (Go's dbCanSync).

    Ours first: a standby whose replication slot the master reports lost this cycle
    (``lostReplicationSlots``, max_slot_wal_keep_size exceeded) cannot sync.
    Then Go's check: only a healthy, non-initializing standby whose xLogPos has stalled for
    more than NOT_INCREASING_XLOG_TIMES cycles, away from the master's, is checked: it cannot
    sync when the WAL segment it needs is older than the oldest one left on the master.
    """
    master = dbs(cd).get(status(cd).master)
    if master is None or db.uid == master.uid:
        return True, ""
    slot = f"stolon_{db.uid}"
    if db_type(db) == STANDBY_TYPE and slot in cyc.lost_slots.get(master.uid, []):
        return False, f"the master reports its replication slot {slot} lost"
    if not master.status.older_wal_file:
        return True, ""
    if db_type(db) != STANDBY_TYPE or db.generation == INITIAL_GENERATION or not db.status.healthy:
        return True, ""
    if db.status.xlog_pos == master.status.xlog_pos:
        return True, ""
    if cyc.xlog_stalls.get(db.uid, 0) <= NOT_INCREASING_XLOG_TIMES:
        return True, ""
    required = wal_file_name_no_timeline(db.status.xlog_pos)
    older_file = master.status.older_wal_file
    older = older_file[8:24] if _WAL_FILE_NAME.fullmatch(older_file) else ""
    if required >= older:
        return True, ""
    return False, f"requires WAL {required}, the master's oldest is {older}"
