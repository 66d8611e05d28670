"""Recovery configuration for PostgreSQL 12+: signal files plus postgresql.conf settings.

* standby mode: ``standby.signal`` + ``primary_conninfo``, ``primary_slot_name``,
  ``recovery_target_timeline = 'latest'`` (and ``restore_command`` if archive recovery);
* recovery mode (PITR): ``recovery.signal`` + ``restore_command``, the targets and
  ``recovery_target_action = 'promote'``.

Signal files are only ever created, never removed by the keeper: PostgreSQL removes them
itself when it is promoted or reaches the end of recovery. Removing ``standby.signal`` to
"make a master" would start a former standby as a primary on the *same* timeline; a standby
becomes master only through :meth:`stolon.postgres.instance.Instance.promote`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from stolon.postgres.conninfo import ConnInfo
from stolon.postgres.parameters import stolon_name

STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"


class RecoveryMode(Enum):
    NONE = "none"
    STANDBY = "standby"
    RECOVERY = "recovery"

    @property
    def signal_file(self) -> str | None:
        if self is RecoveryMode.STANDBY:
            return STANDBY_SIGNAL
        if self is RecoveryMode.RECOVERY:
            return RECOVERY_SIGNAL
        return None


@dataclass(frozen=True)
class StandbySettings:
    """DB spec ``standbySettings`` (or the keeper's own for an internal standby)."""

    primary_conninfo: str = field(default="", repr=False)
    primary_slot_name: str = ""
    recovery_min_apply_delay: str = ""


@dataclass(frozen=True)
class ArchiveRecoverySettings:
    restore_command: str = ""


@dataclass(frozen=True)
class RecoveryTargetSettings:
    recovery_target: str = ""
    recovery_target_lsn: str = ""
    recovery_target_name: str = ""
    recovery_target_time: str = ""
    recovery_target_xid: str = ""
    recovery_target_timeline: str = ""


@dataclass(frozen=True)
class RecoveryConfig:
    """A recovery mode and the settings written into postgresql.conf with it."""

    mode: RecoveryMode = RecoveryMode.NONE
    parameters: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def conf_parameters(self) -> dict[str, str]:
        """What goes into postgresql.conf: nothing when not recovering."""
        return {} if self.mode is RecoveryMode.NONE else dict(self.parameters)


NO_RECOVERY = RecoveryConfig()


def build_recovery_config(
    mode: RecoveryMode,
    standby: StandbySettings | None = None,
    archive: ArchiveRecoverySettings | None = None,
    targets: RecoveryTargetSettings | None = None,
) -> RecoveryConfig:
    """Go Stolon's ``createRecoveryOptions``.

    Without targets the timeline to follow is ``latest``. With targets (even all empty),
    each non-empty one is set and ``recovery_target_action = 'promote'``.
    """
    p: dict[str, str] = {}
    if standby is not None:
        if standby.primary_conninfo:
            p["primary_conninfo"] = standby.primary_conninfo
        if standby.primary_slot_name:
            p["primary_slot_name"] = standby.primary_slot_name
        if standby.recovery_min_apply_delay:
            p["recovery_min_apply_delay"] = standby.recovery_min_apply_delay
    if archive is not None:
        p["restore_command"] = archive.restore_command
    if targets is None:
        p["recovery_target_timeline"] = "latest"
    else:
        for key in (
            "recovery_target",
            "recovery_target_lsn",
            "recovery_target_name",
            "recovery_target_time",
            "recovery_target_xid",
            "recovery_target_timeline",
        ):
            value: str = getattr(targets, key)
            if value:
                p[key] = value
        p["recovery_target_action"] = "promote"
    return RecoveryConfig(mode, p)


def primary_conninfo(
    *,
    host: str,
    port: int | str,
    user: str,
    password: str | None,
    db_uid: str,
    sslmode: str = "prefer",
) -> ConnInfo:
    """The conninfo a standby of DB ``db_uid`` uses to reach the followed DB.

    ``application_name = stolon_<uid>`` is what ``pg_stat_replication`` and
    ``synchronous_standby_names`` see. The password is inline (the file is 0600 and owned
    by the PostgreSQL user; ``pg_stat_wal_receiver`` masks it).
    """
    params = {
        "host": host,
        "port": str(port),
        "user": user,
        "application_name": stolon_name(db_uid),
        "sslmode": sslmode,
    }
    if password:
        params["password"] = password
    return ConnInfo(params)


def internal_standby_config(
    *,
    host: str,
    port: int | str,
    user: str,
    password: str | None,
    db_uid: str,
    archive: ArchiveRecoverySettings | None = None,
) -> RecoveryConfig:
    """Standby recovery for a DB following another DB of the cluster (slot ``stolon_<uid>``)."""
    conninfo = primary_conninfo(host=host, port=port, user=user, password=password, db_uid=db_uid)
    return build_recovery_config(
        RecoveryMode.STANDBY,
        StandbySettings(primary_conninfo=conninfo.to_string(), primary_slot_name=stolon_name(db_uid)),
        archive,
    )
