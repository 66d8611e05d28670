"""Phase ``initializing``: create the initial master DB and wait for it.

initMode ``new`` picks a keeper (keys sorted, then the injected random index) and has it
run initdb, giving up after initTimeout to try again. ``existing`` uses the keeper named in
existingConfig and never gives up. ``pitr`` restores on a picked keeper with no time limit.
In a standby cluster the DB starts as a standby of the remote primary. When the DB has
converged and is healthy, its init mode is cleared, its parameters are merged into the
cluster spec (mergePgParameters) and the phase becomes ``normal``.
"""

from __future__ import annotations

from stolon.model.cluster import (
    DB,
    DB_INIT_EXISTING,
    DB_INIT_NEW,
    DB_INIT_NONE,
    DB_INIT_PITR,
    INITIAL_GENERATION,
    PHASE_INITIALIZING,
    PHASE_NORMAL,
    ROLE_MASTER,
    ROLE_STANDBY,
    ClusterData,
    DBSpec,
)
from stolon.model.spec import INIT_MODE_EXISTING, INIT_MODE_NEW, INIT_MODE_PITR
from stolon.sentinel.cycle import Cycle, UpdateFailed, dbs, fresh_db_uid, keepers, seconds, spec, status
from stolon.sentinel.events import (
    DBAdded,
    DBAddition,
    DBRemoval,
    DBRemoved,
    InitFailed,
    PhaseChanged,
    WaitingForInitialMaster,
)
from stolon.sentinel.failover import master_follow_config
from stolon.sentinel.predicates import CONVERGED, CONVERGENCE_FAILED, convergence_state


def _pick_keeper(cd: ClusterData, cyc: Cycle) -> str:
    uids = sorted(keepers(cd))
    if not uids:
        raise UpdateFailed("cannot choose initial master: no keepers registered")
    return uids[cyc.pick_index(len(uids))]


def _create_master(cd: ClusterData, keeper_uid: str, init_mode: str, cause: DBAddition, cyc: Cycle) -> None:
    s = cyc.spec
    # A standby cluster's master follows the remote primary (Go does so only for pitr and
    # would start an ``existing`` one as a primary: see docs/sentinel-decisions.md).
    follow = master_follow_config(s)
    db = DB(
        uid=fresh_db_uid(cd, cyc),
        generation=INITIAL_GENERATION,
        spec=DBSpec(
            keeper_uid=keeper_uid,
            init_mode=init_mode,
            new_config=s.new_config.copy() if init_mode == DB_INIT_NEW and s.new_config else None,
            pitr_config=s.pitr_config.copy() if init_mode == DB_INIT_PITR and s.pitr_config else None,
            role=ROLE_STANDBY if follow is not None else ROLE_MASTER,
            follow_config=follow,
            followers=[],
            include_previous_config=bool(s.merge_pg_parameters),
        ),
    )
    dbs(cd)[db.uid] = db
    status(cd).master = db.uid
    cyc.emit(DBAdded(db.uid, keeper_uid, spec(db).role, init_mode, cause))


def _finish(cd: ClusterData, db: DB, cyc: Cycle) -> None:
    assert cd.cluster is not None and cd.cluster.spec is not None
    spec(db).init_mode = DB_INIT_NONE
    spec(db).include_previous_config = False
    merge = bool(cyc.spec.merge_pg_parameters)
    if merge:
        params = db.status.pg_parameters
        cd.cluster.spec.pg_parameters = dict(params) if params is not None else None
    status(cd).phase = PHASE_NORMAL
    cyc.emit(PhaseChanged(PHASE_INITIALIZING, PHASE_NORMAL, db.uid, merge))


def _reset(cd: ClusterData, db: DB, timeout_s: float, cyc: Cycle) -> None:
    cyc.emit(InitFailed(db.uid, spec(db).keeper_uid, timeout_s))
    for uid in sorted(dbs(cd)):
        gone = dbs(cd)[uid]
        cyc.emit(DBRemoved(uid, spec(gone).keeper_uid, DBRemoval.INIT_FAILED))
    cd.dbs = {}
    status(cd).master = ""


def initializing(cd: ClusterData, cyc: Cycle) -> None:
    init_mode = cyc.spec.init_mode
    master_uid = status(cd).master
    if init_mode not in (INIT_MODE_NEW, INIT_MODE_EXISTING, INIT_MODE_PITR):
        raise UpdateFailed(f"unknown init mode {init_mode}")

    if not master_uid:
        if init_mode == INIT_MODE_NEW:
            _create_master(cd, _pick_keeper(cd, cyc), DB_INIT_NEW, DBAddition.INITIAL_MASTER, cyc)
        elif init_mode == INIT_MODE_EXISTING:
            ec = cyc.spec.existing_config
            wanted = ec.keeper_uid if ec is not None else ""
            if wanted not in keepers(cd):
                raise UpdateFailed(f"keeper {wanted!r} state not available")
            _create_master(cd, wanted, DB_INIT_EXISTING, DBAddition.EXISTING_MASTER, cyc)
        else:
            _create_master(cd, _pick_keeper(cd, cyc), DB_INIT_PITR, DBAddition.PITR_MASTER, cyc)
        return

    db = dbs(cd).get(master_uid)
    if db is None:
        raise UpdateFailed(f"db {master_uid!r} object doesn't exist")
    if init_mode == INIT_MODE_NEW:
        timeout = seconds(cyc.d.init_timeout)
    elif init_mode == INIT_MODE_EXISTING:
        timeout = seconds(cyc.d.convergence_timeout)
    else:
        timeout = 0.0  # a restore can take arbitrarily long
    state = convergence_state(db, timeout, cyc)
    if state == CONVERGED and db.status.healthy:
        _finish(cd, db, cyc)
    elif state == CONVERGENCE_FAILED and init_mode != INIT_MODE_EXISTING:
        _reset(cd, db, timeout, cyc)
    else:
        cyc.emit(
            WaitingForInitialMaster(
                db.uid, spec(db).keeper_uid, spec(db).init_mode, state == CONVERGED, db.status.healthy
            )
        )
