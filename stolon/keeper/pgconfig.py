"""What the instance's configuration must be, derived from the cluster data (pure).

Inputs are the DB assigned to this keeper, the cluster data around it and the keeper's own
flags; the output is the parameters, pg_hba entries and recovery configuration to write.
Nothing here touches PostgreSQL, so every rule is table-tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stolon.model import DB, ClusterData
from stolon.model.address import check_address, check_port
from stolon.model.cluster import FOLLOW_EXTERNAL, FOLLOW_INTERNAL, ROLE_MASTER, ROLE_STANDBY
from stolon.model.pgparams import invalid_parameters
from stolon.model.spec import ArchiveRecoverySettings as SpecArchive
from stolon.model.spec import BackupSpec, FromBackup
from stolon.model.spec import RecoveryTargetSettings as SpecRecoveryTargets
from stolon.model.spec import StandbySettings as SpecStandby
from stolon.model.text import printable
from stolon.postgres import lease as pglease
from stolon.postgres.credentials import AuthMethod
from stolon.postgres.hba import SUReplAccessMode, build_hba
from stolon.postgres.parameters import MANAGED_PARAMETERS, ParameterInputs, build_parameters
from stolon.postgres.recovery import (
    NO_RECOVERY,
    ArchiveRecoverySettings,
    RecoveryConfig,
    RecoveryMode,
    RecoveryTargetSettings,
    StandbySettings,
    build_recovery_config,
    internal_standby_config,
)
from stolon.postgres.slots import wanted_slots as _wanted

#: Parameters a hot standby must have at least as high as its primary: with a lower value
#: PostgreSQL refuses to start the standby or pauses its recovery.
STANDBY_MINIMUM_PARAMETERS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)
#: PostgreSQL's defaults for them, used when nobody set a value.
POSTGRES_DEFAULTS = {
    "max_connections": 100,
    "max_worker_processes": 8,
    "max_wal_senders": 10,
    "max_prepared_transactions": 0,
    "max_locks_per_transaction": 64,
}
#: Bounded WAL retention for replication slots unless the user sets it: a standby that
#: stays away longer loses its slot (reported, and resynced) instead of filling the disk.
DEFAULT_MAX_SLOT_WAL_KEEP_SIZE = "8GB"
#: How long a standby waits before it tries again to stream (or restore) WAL after a failed
#: attempt, unless the user sets it (PostgreSQL's default: 5s). A standby re-pointed at a
#: new master whose first connection fails (the master still finishing its promotion)
#: would otherwise lose 5 s, on the commit path of a synchronous cluster. Written for every
#: role (it only acts in recovery), so that a promotion does not change the configuration.
DEFAULT_WAL_RETRIEVE_RETRY_INTERVAL = "1s"


@dataclass(frozen=True)
class KeeperIdentity:
    """The keeper flags the configuration depends on."""

    uid: str
    listen_address: str
    port: int
    socket_dir: str
    su_username: str
    su_auth: AuthMethod
    repl_username: str
    repl_auth: AuthMethod
    repl_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BackupCommands:
    """What the cluster's backup method renders on this host (see stolon/keeper/backups.py):
    every instance archives with ``archive_command`` (``archive_mode = always``: standbys
    archive what they receive too, so a failover leaves no hole in the archive; ``on`` for a
    method that can't take concurrent pushes), and standbys fetch WAL they can no longer
    stream with ``restore_command``."""

    method: str
    archive_command: str
    restore_command: str
    #: ``always`` (standbys archive too) or ``on`` (the method can't take concurrent pushes)
    archive_mode: str = "always"


#: Parameters the keeper sets itself when the spec has a backup section: not reported to
#: the sentinel (so ``mergePgParameters`` does not copy them into the spec).
BACKUP_PARAMETERS = ("archive_mode", "archive_command", "archive_library")


def without_backup_parameters(params: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in BACKUP_PARAMETERS}


@dataclass(frozen=True)
class DesiredConfig:
    parameters: dict[str, str]
    hba: tuple[str, ...]
    recovery: RecoveryConfig
    #: the entries of ``parameters`` that come from the user (``pgParameters``, or the
    #: instance's own at init): the executor leaves out those the server rejects
    droppable: frozenset[str] = field(default=frozenset(), compare=False)


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def db_parameters(
    db: DB,
    cd: ClusterData,
    me: KeeperIdentity,
    *,
    pg_major: int,
    init_parameters: Mapping[str, str] | None,
    backup: BackupCommands | None = None,
    rejected: Mapping[str, str] | None = None,
    lease_file: str = "",
) -> dict[str, str]:
    """postgresql.conf parameters for ``db``, Go Stolon's precedence plus our additions:

    - ``pgParameters`` entries that can't be written (:mod:`stolon.model.pgparams`: a bad
      name, a directive, a control character) are left out, and so are those the server
      rejected with the same value (``rejected``: name → value, found by the executor);
      the keeper reports both as conditions;
    - ``max_slot_wal_keep_size`` bounded by default;
    - ``wal_retrieve_retry_interval`` shortened by default
      (:data:`DEFAULT_WAL_RETRIEVE_RETRY_INTERVAL`);
    - ``password_encryption = scram-sha-256`` when the keeper's users use SCRAM (so a
      password set later, or by an ``existing`` data dir's owner, is not md5 by accident);
    - on a standby, the parameters of :data:`STANDBY_MINIMUM_PARAMETERS` never below the
      value its primary reports, whatever the spec says (a lowered value reaches the
      standby only after the primary runs with it);
    - with a ``lease_file`` (self-fencing on and the ``stolon_lease`` module installed),
      the module added to ``shared_preload_libraries`` (after the user's) and pointed at
      that file, on every role (a promoted standby checks from its first commit).
    """
    spec = db.spec
    assert spec is not None
    refused = rejected or {}
    static = invalid_parameters(spec.pg_parameters)
    user = {k: v for k, v in (spec.pg_parameters or {}).items() if k not in static and refused.get(k) != v}
    if init_parameters is not None:
        init_parameters = {k: v for k, v in init_parameters.items() if refused.get(k) != v}
    params = build_parameters(
        ParameterInputs(
            pg_major=pg_major,
            socket_dir=me.socket_dir,
            listen_address=me.listen_address,
            port=me.port,
            max_standbys=spec.max_standbys,
            additional_wal_senders=spec.additional_wal_senders,
            use_pg_rewind=spec.use_pgrewind,
            user_parameters=user,
            init_parameters=init_parameters,
            include_init_parameters=spec.include_previous_config,
            synchronous_replication=spec.synchronous_replication,
            synchronous_standbys=tuple(spec.synchronous_standbys or ()),
            external_synchronous_standbys=tuple(spec.external_synchronous_standbys or ()),
        )
    )
    if pg_major >= 13 and "max_slot_wal_keep_size" not in user:
        params["max_slot_wal_keep_size"] = DEFAULT_MAX_SLOT_WAL_KEEP_SIZE
    if "wal_retrieve_retry_interval" not in user:
        params["wal_retrieve_retry_interval"] = DEFAULT_WAL_RETRIEVE_RETRY_INTERVAL
    if "password_encryption" not in user and AuthMethod.SCRAM_SHA_256 in (me.su_auth, me.repl_auth):
        params["password_encryption"] = "scram-sha-256"
    if backup is not None:
        params["archive_mode"] = backup.archive_mode
        params["archive_command"] = backup.archive_command
    if spec.role == ROLE_STANDBY:
        primary = followed_db(db, cd)
        if primary is not None:
            reported = primary.status.pg_parameters or {}
            for key in STANDBY_MINIMUM_PARAMETERS:
                theirs = _int(reported.get(key))
                ours = _int(params.get(key))
                if theirs is not None and (ours if ours is not None else POSTGRES_DEFAULTS[key]) < theirs:
                    params[key] = str(theirs)
    if lease_file:
        params = pglease.with_lease(params, lease_file)
    return params


def droppable_parameters(
    db: DB, params: Mapping[str, str], init_parameters: Mapping[str, str] | None
) -> frozenset[str]:
    """The entries of ``params`` that hold the user's value (``pgParameters``, or the
    instance's own parameters at init), not one the keeper imposes."""
    spec = db.spec
    assert spec is not None
    user = dict(init_parameters or {}) if spec.include_previous_config else {}
    user.update(spec.pg_parameters or {})
    return frozenset(
        k for k, v in params.items() if k not in MANAGED_PARAMETERS and k in user and user[k] == v
    )


def restart_blockers(db: DB, cd: ClusterData, params: Mapping[str, str]) -> list[str]:
    """Why a master must not restart yet with ``params``: a standby still runs with a lower
    value of a :data:`STANDBY_MINIMUM_PARAMETERS` parameter (it must raise it first)."""
    spec = db.spec
    if spec is None or spec.role != ROLE_MASTER:
        return []
    out = []
    for follower_uid in spec.followers or ():
        follower = (cd.dbs or {}).get(follower_uid)
        if follower is None or not follower.status.healthy:
            continue
        theirs_all = follower.status.pg_parameters or {}
        for key in STANDBY_MINIMUM_PARAMETERS:
            # Only what the standby reports: managed ones (max_wal_senders) are computed
            # from the same spec on every DB and are not reported.
            ours = _int(params.get(key))
            theirs = _int(theirs_all.get(key))
            if ours is not None and theirs is not None and theirs < ours:
                out.append(f"standby {follower_uid} runs {key}={theirs} < {ours}")
    return out


def followed_db(db: DB, cd: ClusterData) -> DB | None:
    spec = db.spec
    if spec is None or spec.follow_config is None or spec.follow_config.type != FOLLOW_INTERNAL:
        return None
    return (cd.dbs or {}).get(spec.follow_config.dbuid)


def is_master_type(db: DB) -> bool:
    """Master role, or the standby-cluster master (standby role following outside)."""
    spec = db.spec
    if spec is None:
        return False
    if spec.role == ROLE_MASTER:
        return True
    return (
        spec.role == ROLE_STANDBY
        and spec.follow_config is not None
        and spec.follow_config.type == FOLLOW_EXTERNAL
    )


def db_hba(db: DB, cd: ClusterData, me: KeeperIdentity, *, only_internal: bool = False) -> tuple[str, ...]:
    spec = db.spec
    assert spec is not None
    mode = SUReplAccessMode(
        (cd.cluster.def_spec().default_su_repl_access_mode if cd.cluster else "all") or "all"
    )
    others = [
        d.status.listen_address
        for uid, d in sorted((cd.dbs or {}).items())
        if uid != db.uid and d.status.listen_address
    ]
    return tuple(
        build_hba(
            su_user=me.su_username,
            su_auth=me.su_auth,
            repl_user=me.repl_username,
            repl_auth=me.repl_auth,
            access_mode=mode,
            is_master_type=is_master_type(db),
            other_db_addresses=others,
            user_entries=spec.pg_hba,
            only_internal=only_internal,
        )
    )


class NotReadyToFollow(Exception):
    """The followed DB has no address yet (it has not reported)."""


def db_recovery(
    db: DB, cd: ClusterData, me: KeeperIdentity, backup: BackupCommands | None = None
) -> RecoveryConfig:
    """The recovery configuration for the DB's role (standby settings or none); an internal
    standby also fetches WAL from the archive when a backup method is configured."""
    spec = db.spec
    assert spec is not None
    if spec.role == ROLE_MASTER:
        return NO_RECOVERY
    fc = spec.follow_config
    if fc is None:
        raise NotReadyToFollow("standby without a follow config")
    if fc.type == FOLLOW_EXTERNAL:
        return external_recovery(fc.standby_settings, fc.archive_recovery_settings)
    primary = (cd.dbs or {}).get(fc.dbuid)
    if primary is None or not primary.status.listen_address or not primary.status.port:
        raise NotReadyToFollow(f"followed db {printable(fc.dbuid)!r} has not reported its address yet")
    bad = check_address(primary.status.listen_address) or check_port(primary.status.port)
    if bad:
        # the cluster data is untrusted: this never reaches primary_conninfo or pg_basebackup
        raise NotReadyToFollow(
            f"followed db {printable(fc.dbuid)!r} has an unusable address"
            f" {printable(primary.status.listen_address)!r}:{printable(primary.status.port)!r}: {bad}"
        )
    return internal_standby_config(
        host=primary.status.listen_address,
        port=primary.status.port,
        user=me.repl_username,
        password=me.repl_password if me.repl_auth is not AuthMethod.TRUST else None,
        db_uid=db.uid,
        archive=ArchiveRecoverySettings(backup.restore_command) if backup is not None else None,
    )


def external_recovery(ss: SpecStandby | None, ars: SpecArchive | None) -> RecoveryConfig:
    """Standby-cluster settings from the spec (``standbySettings``, ``archiveRecoverySettings``)."""
    return build_recovery_config(
        RecoveryMode.STANDBY,
        StandbySettings(
            primary_conninfo=ss.primary_conninfo if ss else "",
            primary_slot_name=ss.primary_slot_name if ss else "",
            recovery_min_apply_delay=ss.recovery_min_apply_delay if ss else "",
        )
        if ss
        else None,
        ArchiveRecoverySettings(ars.restore_command) if ars and ars.restore_command else None,
    )


def pitr_recovery(db: DB, backup_restore_command: str = "") -> RecoveryConfig:
    """Recovery for an ``initMode: pitr`` restore: archive recovery to the targets, or a
    standby of the external primary for a standby cluster. ``backup_restore_command`` is
    the ``pitrConfig.fromBackup`` method's, used when ``archiveRecoverySettings`` is unset."""
    spec = db.spec
    assert spec is not None
    if spec.follow_config is not None and spec.follow_config.type == FOLLOW_EXTERNAL:
        return external_recovery(
            spec.follow_config.standby_settings, spec.follow_config.archive_recovery_settings
        )
    pitr = spec.pitr_config
    archive = None
    targets = None
    if pitr is not None and pitr.archive_recovery_settings is not None:
        archive = ArchiveRecoverySettings(pitr.archive_recovery_settings.restore_command)
    elif backup_restore_command:
        archive = ArchiveRecoverySettings(backup_restore_command)
    if pitr is not None and pitr.recovery_target_settings is not None:
        t = pitr.recovery_target_settings
        targets = RecoveryTargetSettings(
            recovery_target=t.recovery_target,
            recovery_target_lsn=t.recovery_target_lsn,
            recovery_target_name=t.recovery_target_name,
            recovery_target_time=t.recovery_target_time,
            recovery_target_xid=t.recovery_target_xid,
            recovery_target_timeline=t.recovery_target_timeline,
        )
    return build_recovery_config(RecoveryMode.RECOVERY, None, archive, targets)


def from_backup_method(fb: FromBackup, section: BackupSpec | None) -> tuple[str, dict[str, Any] | None]:
    """The method and settings ``pitrConfig.fromBackup`` restores with: its own, or the
    cluster's ``backup`` section's (its settings too when it names no other method)."""
    if fb.method and (section is None or fb.method != section.method):
        return fb.method, fb.settings
    name = fb.method or (section.method if section else "")
    settings = fb.settings if fb.settings is not None else (section.settings if section else None)
    return name, settings


def recovery_target_of(rts: SpecRecoveryTargets | None) -> tuple[str, str]:
    """``recoveryTargetSettings`` as a (kind, value) recovery target for choosing a backup:
    the first of time, LSN, xid, name, ``recoveryTarget: immediate``; else latest."""
    if rts is None:
        return "latest", ""
    for kind, value in (
        ("time", rts.recovery_target_time),
        ("lsn", rts.recovery_target_lsn),
        ("xid", rts.recovery_target_xid),
        ("name", rts.recovery_target_name),
    ):
        if value:
            return kind, value
    if rts.recovery_target == "immediate":
        return "immediate", ""
    return "latest", ""


def wanted_slots(db: DB) -> set[str]:
    spec = db.spec
    assert spec is not None
    return _wanted(db.uid, spec.followers, spec.additional_replication_slots)


#: Recovery parameters PostgreSQL 13+ re-reads on reload (others need a restart).
RELOADABLE_RECOVERY_13 = frozenset({"primary_conninfo", "primary_slot_name"})
RELOADABLE_RECOVERY_14 = RELOADABLE_RECOVERY_13 | {"restore_command", "recovery_min_apply_delay"}


def recovery_change_needs_restart(old: RecoveryConfig, new: RecoveryConfig, pg_major: int) -> bool:
    """Whether going from ``old`` to ``new`` needs a restart rather than a reload."""
    if old.mode is not new.mode:
        return True
    if pg_major < 13:
        return old.parameters != new.parameters
    reloadable = RELOADABLE_RECOVERY_14 if pg_major >= 14 else RELOADABLE_RECOVERY_13
    keys = set(old.parameters) | set(new.parameters)
    return any(old.parameters.get(k) != new.parameters.get(k) for k in keys - reloadable)


def sync_guard_satisfied(db: DB, in_sync: Sequence[str]) -> bool:
    """The restart guard of a synchronous master can be lifted: every standby the spec
    lists is reported in sync (docs/keeper.md)."""
    spec = db.spec
    assert spec is not None
    return set(spec.synchronous_standbys or ()) == set(in_sync)
