"""The keeper's decision, as a pure function: ``plan(inputs) -> Plan``.

Given the cluster data, the DB assigned to this keeper and what is true locally (the
``dbstate`` file, whether PostgreSQL is initialized and running, its role, the
configuration last applied), :func:`plan` lists the steps that bring the instance to what
the DB spec asks. :mod:`stolon.keeper.executor` runs them. The daemon plans again every
``sleepInterval`` (and right after an initialization), so the plan only has to be right
for the current facts, not for the whole way: this is Go Stolon's ``postgresKeeperSM``
cut into a decision and its execution.

A plan ends with :class:`SaveGeneration` only when every step before it could be planned:
the reported generation is what tells the sentinel the DB converged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from stolon.keeper import pgconfig
from stolon.keeper.pgconfig import BackupCommands, DesiredConfig, KeeperIdentity, NotReadyToFollow
from stolon.model import DB, ClusterData
from stolon.model.cluster import (
    DB_INIT_EXISTING,
    DB_INIT_NEW,
    DB_INIT_NONE,
    DB_INIT_PITR,
    DB_INIT_RESYNC,
    FOLLOW_INTERNAL,
    ROLE_MASTER,
    ROLE_STANDBY,
)
from stolon.model.spec import PITRConfig
from stolon.postgres.recovery import NO_RECOVERY, RecoveryConfig

LOCAL_MASTER = "master"
LOCAL_STANDBY = "standby"
LOCAL_UNDEFINED = "undefined"


# -- steps ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepBase:
    """Base of every step. A plan holds :data:`Step` values: the union of the step classes,
    so that the executor's dispatch is checked for completeness by mypy."""


@dataclass(frozen=True)
class Wait(StepBase):
    """Nothing can be done now (logged at info); the plan stops here."""

    message: str


@dataclass(frozen=True)
class Fail(StepBase):
    """Something is wrong that the keeper can't fix (logged as an error); the plan stops."""

    message: str


@dataclass(frozen=True)
class StopPostgres(StepBase):
    reason: str


@dataclass(frozen=True)
class StopCleanly(StepBase):
    """The DB spec says ``stopped`` (a switchover): shut PostgreSQL down cleanly and record
    where its WAL ends, for the keeper info (``stoppedXLogPos``).

    A fast shutdown ends every session, writes the shutdown checkpoint and waits for the
    connected standbys to receive the WAL up to it. An instance found stopped but not cleanly
    shut down (it crashed) is started with ``config`` and shut down again, so that the
    reported position is the end of everything it may have acknowledged.
    """

    db_uid: str
    config: DesiredConfig
    reason: str


@dataclass(frozen=True)
class CleanFailedInit(StepBase):
    """An earlier init or resync crashed half way: stop, remove PGDATA, reset dbstate."""


@dataclass(frozen=True)
class BeginInit(StepBase):
    """Save dbstate {uid, generation 0, initializing} before touching PGDATA."""

    db_uid: str
    initializing: bool = True


@dataclass(frozen=True)
class InitNew(StepBase):
    db_uid: str
    locale: str
    encoding: str
    data_checksums: bool
    include_previous: bool
    config: DesiredConfig


@dataclass(frozen=True)
class BackupSource:
    """Restore through a backup method (``pitrConfig.fromBackup``): which method (settings
    as canonical JSON, hashable), which backup (an id or ``latest``) and the recovery target
    the backup must be able to reach (``kind``, ``value`` of
    :class:`stolon.backup.base.RecoveryTarget`)."""

    method: str
    settings_json: str
    backup_id: str
    target_kind: str = "latest"
    target_value: str = ""


@dataclass(frozen=True)
class InitPITR(StepBase):
    """``initMode: pitr``: run ``data_restore_command`` (Go Stolon) or restore
    ``backup_source`` through its method, then recover with ``recovery``."""

    db_uid: str
    data_restore_command: str
    recovery: RecoveryConfig
    include_previous: bool
    config: DesiredConfig
    wait_recovery: bool
    backup_source: BackupSource | None = None


@dataclass(frozen=True)
class InitExisting(StepBase):
    db_uid: str
    include_previous: bool
    config: DesiredConfig


@dataclass(frozen=True)
class Resync(StepBase):
    """Make this instance a copy of ``source_db``: pg_rewind when allowed, else (or when it
    fails) a full pg_basebackup with slot ``stolon_<db_uid>``."""

    db_uid: str
    source_db: str
    source_host: str
    source_port: str
    try_rewind: bool
    config: DesiredConfig
    #: restore the latest backup first (``backup.restoreStandbys``), then stream
    from_backup: bool = False
    #: the source's system identifier: a backup of another system is never restored
    source_system_id: str = ""


@dataclass(frozen=True)
class FinishInit(StepBase):
    """Save dbstate {uid, generation 0, not initializing} after a successful init."""

    db_uid: str


@dataclass(frozen=True)
class StartPostgres(StepBase):
    config: DesiredConfig
    reason: str


@dataclass(frozen=True)
class Promote(StepBase):
    config: DesiredConfig


@dataclass(frozen=True)
class Reload(StepBase):
    config: DesiredConfig
    reason: str


@dataclass(frozen=True)
class Restart(StepBase):
    config: DesiredConfig
    reason: str


@dataclass(frozen=True)
class RefreshSlots(StepBase):
    wanted: frozenset[str]


@dataclass(frozen=True)
class CheckRestart(StepBase):
    """After applying parameters: if a setting is ``pending_restart`` and
    ``automaticPgRestart`` is on (and no standby blocks it), restart."""

    automatic: bool
    config: DesiredConfig
    blockers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetSyncGuard(StepBase):
    """Turn the synchronous-replication restart guard on or off (docs/keeper.md)."""

    on: bool


@dataclass(frozen=True)
class SaveGeneration(StepBase):
    db_uid: str
    generation: int


#: Every step a plan can hold.
Step: TypeAlias = (
    Wait
    | Fail
    | StopPostgres
    | StopCleanly
    | CleanFailedInit
    | BeginInit
    | InitNew
    | InitPITR
    | InitExisting
    | Resync
    | FinishInit
    | StartPostgres
    | Promote
    | Reload
    | Restart
    | RefreshSlots
    | CheckRestart
    | SetSyncGuard
    | SaveGeneration
)


# -- inputs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalFacts:
    """What is true on this machine right now."""

    boot_uuid: str
    db_uid: str
    db_generation: int
    initializing: bool
    init_parameters: dict[str, str] | None
    pg_major: int
    pg_initialized: bool
    pg_running: bool
    local_role: str
    local_system_id: str = ""
    applied: DesiredConfig | None = None
    sync_guard: bool = False
    in_sync_standbys: tuple[str, ...] | None = None
    #: the cluster's backup method's commands on this host (None: no backup section, or
    #: the method can't be used here)
    backup: BackupCommands | None = None
    #: ``pitrConfig.fromBackup``'s restore command on this host ("" when not applicable)
    pitr_restore_command: str = ""
    #: why ``pitrConfig.fromBackup``'s method can't be used here ("" when it can)
    pitr_error: str = ""
    #: ``pgParameters`` entries the server rejected: name → the rejected value (left out)
    rejected_parameters: Mapping[str, str] = field(default_factory=dict)
    #: the server did not apply the last reload: the files on disk are not what it runs
    reload_rejected: bool = False
    #: the master lease file the ``stolon_lease`` module checks ("": the module is not
    #: loaded: self-fencing off, or the module not installed)
    lease_file: str = ""


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    target_role: str = LOCAL_UNDEFINED
    #: the plan initializes the instance; plan again afterwards in the same cycle
    initializes: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def converges(self) -> bool:
        return bool(self.steps) and isinstance(self.steps[-1], SaveGeneration)


def _desired(
    db: DB, cd: ClusterData, me: KeeperIdentity, facts: LocalFacts, *, only_internal: bool = False
) -> DesiredConfig:
    parameters = pgconfig.db_parameters(
        db,
        cd,
        me,
        pg_major=facts.pg_major,
        init_parameters=facts.init_parameters,
        backup=facts.backup,
        rejected=facts.rejected_parameters,
        lease_file=facts.lease_file,
    )
    return DesiredConfig(
        parameters=parameters,
        hba=pgconfig.db_hba(db, cd, me, only_internal=only_internal),
        recovery=pgconfig.db_recovery(db, cd, me, facts.backup),
        droppable=pgconfig.droppable_parameters(db, parameters, facts.init_parameters),
    )


def plan(cd: ClusterData | None, me: KeeperIdentity, facts: LocalFacts) -> Plan:
    """What to do this cycle (see the module docstring)."""
    if cd is None or cd.cluster is None:
        return Plan((Wait("no cluster data available, waiting for it to appear"),))
    keeper = (cd.keepers or {}).get(me.uid)
    if keeper is None:
        # PostgreSQL is left as it is: the sentinel has not seen us yet.
        return Plan((Wait("our keeper data is not available, waiting for it to appear"),))
    db = cd.db_of_keeper(me.uid)
    if db is None or db.spec is None:
        return Plan((StopPostgres("no db assigned"),) if facts.pg_running else (Wait("no db assigned"),))
    if keeper.status.boot_uuid != facts.boot_uuid:
        # A restarted keeper starts nothing until the sentinel has seen this process: an old
        # master coming back must not serve as master before the sentinel has decided.
        msg = "our db boot UUID is different than the cluster data one, waiting for it to be updated"
        return Plan(((StopPostgres(msg),) if facts.pg_running else ()) + (Wait(msg),))

    steps: list[Step] = []
    if facts.initializing:
        steps.append(CleanFailedInit())
        return Plan(tuple(steps), initializes=True, notes=("db failed to initialize or resync",))

    if facts.db_uid != db.uid:
        return _plan_init(db, cd, me, facts)

    spec = db.spec
    if spec.role == ROLE_MASTER:
        return _plan_master(db, cd, me, facts)
    if spec.role == ROLE_STANDBY:  # includes a standby cluster's master (external follow)
        return _plan_standby(db, cd, me, facts)
    return Plan((Fail(f"db {db.uid} has unknown role {spec.role!r}"),))


def _plan_init(db: DB, cd: ClusterData, me: KeeperIdentity, facts: LocalFacts) -> Plan:
    spec = db.spec
    assert spec is not None
    mode = spec.init_mode
    note = "current db UID different than cluster data db UID"
    # The init steps start PostgreSQL with a configuration of their own; the instance's
    # real one is planned in the next pass, once the DB UID matches.
    try:
        config = _desired(db, cd, me, facts)
    except NotReadyToFollow as e:
        if mode == DB_INIT_RESYNC:
            return Plan((Wait(str(e)),), notes=(note,))
        parameters = pgconfig.db_parameters(
            db,
            cd,
            me,
            pg_major=facts.pg_major,
            init_parameters=None,
            backup=facts.backup,
            rejected=facts.rejected_parameters,
            lease_file=facts.lease_file,
        )
        config = DesiredConfig(
            parameters,
            pgconfig.db_hba(db, cd, me),
            NO_RECOVERY,
            droppable=pgconfig.droppable_parameters(db, parameters, None),
        )
    stop: tuple[Step, ...] = (StopPostgres("reinitializing"),) if facts.pg_running else ()
    if mode == DB_INIT_NEW:
        nc = spec.new_config
        return Plan(
            (
                BeginInit(db.uid),
                *stop,
                InitNew(
                    db.uid,
                    locale=nc.locale if nc else "",
                    encoding=nc.encoding if nc else "",
                    data_checksums=bool(nc and nc.data_checksums),
                    include_previous=spec.include_previous_config,
                    config=DesiredConfig(config.parameters, config.hba, NO_RECOVERY, config.droppable),
                ),
                FinishInit(db.uid),
            ),
            initializes=True,
            notes=(note,),
        )
    if mode == DB_INIT_PITR:
        pitr = spec.pitr_config
        from_backup: BackupSource | None = None
        if pitr is not None and pitr.from_backup is not None:
            if facts.pitr_error:
                return Plan((Fail(f"cannot restore from backup: {facts.pitr_error}"),), notes=(note,))
            from_backup = _backup_source(cd, pitr)
        elif pitr is None or not pitr.data_restore_command:
            return Plan((Fail("init mode pitr without pitrConfig.dataRestoreCommand"),))
        recovery = pgconfig.pitr_recovery(db, facts.pitr_restore_command if from_backup else "")
        return Plan(
            (
                BeginInit(db.uid),
                *stop,
                InitPITR(
                    db.uid,
                    data_restore_command=pitr.data_restore_command,
                    recovery=recovery,
                    include_previous=spec.include_previous_config,
                    config=DesiredConfig(config.parameters, config.hba, recovery, config.droppable),
                    wait_recovery=recovery.mode.name == "RECOVERY",
                    backup_source=from_backup,
                ),
                FinishInit(db.uid),
            ),
            initializes=True,
            notes=(note,),
        )
    if mode == DB_INIT_EXISTING:
        return Plan(
            (
                BeginInit(db.uid, initializing=False),
                *stop,
                InitExisting(db.uid, include_previous=spec.include_previous_config, config=config),
                FinishInit(db.uid),
            ),
            initializes=True,
            notes=(note,),
        )
    if mode == DB_INIT_RESYNC:
        source = pgconfig.followed_db(db, cd)
        if source is None:
            return Plan((Wait(f"db {db.uid}: no followed db to resync from"),), notes=(note,))
        if source.status.current_generation != source.generation:
            # The sentinel adds us to the source's followers (and bumps its generation) in
            # the decision that creates our DB; once the source has applied that generation
            # our replication slot exists there, so pg_basebackup --slot won't fail.
            return Plan(
                (Wait(f"waiting for db {source.uid} to create the replication slot of db {db.uid}"),),
                notes=(note,),
            )
        master = cd.master_db()
        try_rewind = (
            spec.use_pgrewind
            and facts.pg_initialized
            and bool(facts.local_system_id)
            and facts.local_system_id == source.status.system_id
            and master is not None
            and me.su_auth is not None
        )
        return Plan(
            (
                BeginInit(db.uid),
                *stop,
                Resync(
                    db.uid,
                    source_db=source.uid,
                    source_host=source.status.listen_address,
                    source_port=source.status.port,
                    try_rewind=bool(try_rewind),
                    config=config,
                    from_backup=bool(
                        facts.backup is not None
                        and cd.cluster is not None
                        and cd.cluster.spec is not None
                        and cd.cluster.spec.backup is not None
                        and cd.cluster.spec.backup.restore_standbys
                    ),
                    source_system_id=source.status.system_id,
                ),
                FinishInit(db.uid),
            ),
            initializes=True,
            notes=(note,),
        )
    if mode == DB_INIT_NONE:
        return Plan(
            (
                Fail(
                    "different local dbUID but init mode is none, this shouldn't happen. Something bad"
                    " happened to the keeper data. Manual intervention required."
                ),
            )
        )
    return Plan((Fail(f"unknown db init mode {mode!r}"),))


def _backup_source(cd: ClusterData, pitr: PITRConfig) -> BackupSource:
    """``pitrConfig.fromBackup`` with the cluster's ``backup`` section as defaults."""
    fb = pitr.from_backup
    assert fb is not None
    section = cd.cluster.spec.backup if cd.cluster is not None and cd.cluster.spec is not None else None
    method, settings = pgconfig.from_backup_method(fb, section)
    kind, value = pgconfig.recovery_target_of(pitr.recovery_target_settings)
    return BackupSource(
        method=method,
        settings_json=json.dumps(settings or {}, sort_keys=True),
        backup_id=fb.effective_backup_id,
        target_kind=kind,
        target_value=value,
    )


def _common_tail(
    db: DB, cd: ClusterData, facts: LocalFacts, desired: DesiredConfig, steps: list[Step]
) -> tuple[Step, ...]:
    """Parameters/HBA reload, restart on pending_restart, slots, then the generation."""
    spec = db.spec
    assert spec is not None
    applied = facts.applied
    if (
        facts.pg_running
        and applied is not None
        and not any(isinstance(s, StartPostgres | Restart) for s in steps)
    ):
        changed = []
        if applied.parameters != desired.parameters:
            changed.append("postgres parameters changed, reloading postgres instance")
        if applied.hba != desired.hba:
            changed.append("postgres hba entries changed, reloading postgres instance")
        if applied.recovery != desired.recovery and not pgconfig.recovery_change_needs_restart(
            applied.recovery, desired.recovery, facts.pg_major
        ):
            changed.append("recovery parameters changed, reloading postgres instance")
        if facts.reload_rejected and not changed:
            changed.append("the server did not apply the last reload, reloading postgres instance")
        if changed:
            steps.append(Reload(desired, "; ".join(changed)))
    blockers = tuple(pgconfig.restart_blockers(db, cd, desired.parameters))
    automatic = bool(cd.cluster and cd.cluster.def_spec().automatic_pg_restart)
    steps.append(CheckRestart(automatic=automatic, config=desired, blockers=blockers))
    steps.append(RefreshSlots(frozenset(pgconfig.wanted_slots(db))))
    steps.append(SaveGeneration(db.uid, db.generation))
    return tuple(steps)


def _plan_master(db: DB, cd: ClusterData, me: KeeperIdentity, facts: LocalFacts) -> Plan:
    spec = db.spec
    assert spec is not None
    if not facts.pg_initialized or facts.local_role == LOCAL_UNDEFINED:
        return Plan((Fail("database is not initialized but its role is master: cannot start it"),))
    if spec.stopped:
        desired = _desired(db, cd, me, facts, only_internal=True)
        reason = "the db spec asks to stop (switchover): shutting down cleanly"
        return Plan(
            (StopCleanly(db.uid, desired, reason), SaveGeneration(db.uid, db.generation)),
            target_role=LOCAL_MASTER,
        )
    steps: list[Step] = []
    guard = facts.sync_guard
    if not spec.synchronous_replication:
        guard = False
    if not facts.pg_running and spec.synchronous_replication:
        # A master that restarts while commits wait for their standbys would make them
        # visible without a standby having them: serve only internal users until the
        # listed standbys are in sync again.
        guard = True
    if (
        guard
        and facts.pg_running
        and facts.in_sync_standbys is not None
        and pgconfig.sync_guard_satisfied(db, facts.in_sync_standbys)
    ):
        guard = False
    if guard != facts.sync_guard:
        steps.append(SetSyncGuard(guard))
    desired = _desired(db, cd, me, facts, only_internal=guard)
    if not facts.pg_running:
        steps.append(StartPostgres(desired, "starting master"))
    if facts.local_role == LOCAL_STANDBY:
        steps.append(Promote(desired))
    tail = _common_tail(db, cd, facts, desired, steps)
    notes = (
        (
            "not allowing connection as normal users since synchronous replication is enabled and instance was down",
        )
        if guard
        else ()
    )
    return Plan(tail, target_role=LOCAL_MASTER, notes=notes)


def _plan_standby(db: DB, cd: ClusterData, me: KeeperIdentity, facts: LocalFacts) -> Plan:
    if not facts.pg_initialized or facts.local_role == LOCAL_UNDEFINED:
        return Plan((Fail("database is not initialized but its role is standby"),))
    if facts.local_role == LOCAL_MASTER:
        # The sentinel assigns a new (resync) DB to an old master; never demote in place.
        return Plan((Fail("cannot move from master role to standby role"),), target_role=LOCAL_STANDBY)
    try:
        desired = _desired(db, cd, me, facts)
    except NotReadyToFollow as e:
        return Plan((Wait(str(e)),), target_role=LOCAL_STANDBY)
    waiting = _new_primary_not_ready(db, cd, facts, desired)
    if waiting is not None:
        return Plan((Wait(waiting),), target_role=LOCAL_STANDBY)
    steps: list[Step] = []
    if facts.sync_guard:
        steps.append(SetSyncGuard(False))
    if not facts.pg_running:
        steps.append(StartPostgres(desired, "starting standby"))
    elif facts.applied is not None and pgconfig.recovery_change_needs_restart(
        facts.applied.recovery, desired.recovery, facts.pg_major
    ):
        steps.append(Restart(desired, "recovery parameters changed, restarting postgres instance"))
    return Plan(_common_tail(db, cd, facts, desired, steps), target_role=LOCAL_STANDBY)


def _new_primary_not_ready(db: DB, cd: ClusterData, facts: LocalFacts, desired: DesiredConfig) -> str | None:
    """Why a running standby must not switch to the primary its spec now names, if so.

    After a failover or a switchover the sentinel points the standbys at the new master
    and lists them as its followers in the same decision. The new master's keeper creates
    their replication slots when it applies that generation; a standby that connects
    before gets "replication slot does not exist" and PostgreSQL tries again only after
    ``wal_retrieve_retry_interval``. So the standby keeps following its old primary (gone,
    or stopped) until the new one reports that generation: one report of the master's
    keeper, which it makes at once, and one sentinel decision, on change.
    """
    spec = db.spec
    assert spec is not None
    fc = spec.follow_config
    if fc is None or fc.type != FOLLOW_INTERNAL or not facts.pg_running or facts.applied is None:
        return None
    key = "primary_conninfo"
    if facts.applied.recovery.parameters.get(key) == desired.recovery.parameters.get(key):
        return None  # not a move: nothing to wait for
    primary = (cd.dbs or {}).get(fc.dbuid)
    if primary is None or primary.spec is None or db.uid not in (primary.spec.followers or []):
        return None
    if primary.status.current_generation == primary.generation:
        return None
    return (
        f"waiting for db {primary.uid} to create the replication slot of db {db.uid}"
        f" before following it (generation {primary.generation} not applied yet)"
    )


def describe(steps: Sequence[Step]) -> str:
    return ", ".join(type(s).__name__ for s in steps)
