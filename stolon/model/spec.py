"""The declarative cluster specification (Go Stolon's ``ClusterSpec``).

Every field is optional: the stored spec keeps only what the user set, and
:meth:`ClusterSpec.with_defaults` fills in the rest. JSON keys, defaults and validation
rules follow Go Stolon (``internal/cluster/cluster.go``); deviations are listed in
``docs/compatibility.md``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from stolon.model.codec import U16, U32, Document, jf
from stolon.model.cron import CronError, CronSchedule
from stolon.model.duration import HOUR, MILLISECOND, MINUTE, SECOND, Duration
from stolon.model.errors import ModelError
from stolon.model.pgparams import invalid_parameters
from stolon.model.structural import stored_copy
from stolon.model.text import control_chars

# Enumerations (plain strings in JSON).
INIT_MODE_NEW = "new"
INIT_MODE_EXISTING = "existing"
INIT_MODE_PITR = "pitr"
CLUSTER_INIT_MODES = (INIT_MODE_NEW, INIT_MODE_EXISTING, INIT_MODE_PITR)

ROLE_MASTER = "master"
ROLE_STANDBY = "standby"
CLUSTER_ROLES = (ROLE_MASTER, ROLE_STANDBY)

SUREPL_ALL = "all"
SUREPL_STRICT = "strict"
SUREPL_ACCESS_MODES = (SUREPL_ALL, SUREPL_STRICT)

FENCING_REQUIRED = "required"
FENCING_BEST_EFFORT = "best-effort"
FENCING_POLICIES = (FENCING_REQUIRED, FENCING_BEST_EFFORT)

STOLON_PREFIX = "stolon_"
_REPL_SLOT_NAME = re.compile(r"[a-z0-9_]+")
_BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")


class SpecError(ModelError):
    """An invalid cluster spec or a forbidden spec change."""


@dataclass(kw_only=True)
class NewConfig(Document):
    locale: str = jf("locale")
    encoding: str = jf("encoding")
    data_checksums: bool = jf("dataChecksums", default=False)


@dataclass(kw_only=True)
class ArchiveRecoverySettings(Document):
    restore_command: str = jf("restoreCommand")


@dataclass(kw_only=True)
class RecoveryTargetSettings(Document):
    recovery_target: str = jf("recoveryTarget")
    recovery_target_lsn: str = jf("recoveryTargetLsn")
    recovery_target_name: str = jf("recoveryTargetName")
    recovery_target_time: str = jf("recoveryTargetTime")
    recovery_target_xid: str = jf("recoveryTargetXid")
    recovery_target_timeline: str = jf("recoveryTargetTimeline")


@dataclass(kw_only=True)
class StandbySettings(Document):
    primary_conninfo: str = jf("primaryConninfo")
    primary_slot_name: str = jf("primarySlotName")
    recovery_min_apply_delay: str = jf("recoveryMinApplyDelay")


@dataclass(kw_only=True)
class FromBackup(Document):
    """``pitrConfig.fromBackup`` (ours): restore a base backup through a backup method
    instead of running ``dataRestoreCommand``. ``method``/``settings`` default to the
    cluster's ``backup`` section (the same repository); ``backupID`` is an id from
    ``stolonctl backup list`` or ``latest`` (the newest one that can reach the recovery
    target)."""

    method: str = jf("method")
    settings: dict[str, Any] | None = jf("settings")
    backup_id: str = jf("backupID")

    @property
    def effective_backup_id(self) -> str:
        return self.backup_id or "latest"


@dataclass(kw_only=True)
class PITRConfig(Document):
    data_restore_command: str = jf("dataRestoreCommand")
    archive_recovery_settings: ArchiveRecoverySettings | None = jf("archiveRecoverySettings")
    recovery_target_settings: RecoveryTargetSettings | None = jf("recoveryTargetSettings")
    #: ours: restore through a backup method (docs/backup.md)
    from_backup: FromBackup | None = jf("fromBackup")


@dataclass(kw_only=True)
class ExistingConfig(Document):
    keeper_uid: str = jf("keeperUID")


@dataclass(kw_only=True)
class StandbyConfig(Document):
    standby_settings: StandbySettings | None = jf("standbySettings")
    archive_recovery_settings: ArchiveRecoverySettings | None = jf("archiveRecoverySettings")


@dataclass(kw_only=True)
class FencingMethod(Document):
    """One fencing method: ``name`` is a ``stolon.fencing`` entry-point name, ``config`` its
    settings (a JSON object the method's factory checks)."""

    name: str = jf("name", default="")
    config: dict[str, Any] | None = jf("config")


@dataclass(kw_only=True)
class FencingSpec(Document):
    """Fencing of an old master before an automatic promotion (ours; docs/fencing.md).

    ``methods`` are tried in order until one succeeds. ``policy``: ``required`` (default)
    promotes only after a method succeeded; ``best-effort`` logs a failure and promotes.
    ``timeout`` bounds the whole attempt (default 10s).
    """

    methods: list[FencingMethod] | None = jf("methods")
    policy: str | None = jf("policy")
    timeout: Duration | None = jf("timeout")

    @property
    def effective_policy(self) -> str:
        """The policy in force: an unknown stored one counts as ``required`` (the safe one)."""
        return self.policy if self.policy in FENCING_POLICIES else DEFAULT_FENCING_POLICY

    @property
    def effective_timeout(self) -> Duration:
        """The timeout in force: a stored one out of bounds is clamped (:data:`FENCING_TIMEOUT`)."""
        return FENCING_TIMEOUT.effective(
            self.timeout if self.timeout is not None else DEFAULT_FENCING_TIMEOUT
        )

    @property
    def enabled(self) -> bool:
        return bool(self.methods)

    def validate(self, path: str = "fencing") -> None:
        """Strict check of new input."""
        problems = self.problems(path)
        if problems:
            raise problems[0]

    def problems(self, path: str = "fencing") -> list[SpecError]:
        """Everything wrong with it (all rules are ours: Go Stolon has no fencing)."""
        out: list[SpecError] = []
        for i, m in enumerate(self.methods or []):
            if not m.name or m.name != m.name.strip():
                out.append(
                    SpecError(
                        f"{path}.methods[{i}].name",
                        "is required: name an installed fencing method (see `stolonctl plugins`)",
                    )
                )
        if self.policy is not None and self.policy not in FENCING_POLICIES:
            out.append(
                SpecError(
                    f"{path}.policy", f'unknown policy {self.policy!r}: use "required" or "best-effort"'
                )
            )
        if self.timeout is not None:
            if self.timeout.ns <= 0:
                out.append(SpecError(f"{path}.timeout", f'must be positive (got {self.timeout}): e.g. "10s"'))
            else:
                problem = FENCING_TIMEOUT.problem(self.timeout)
                if problem is not None:
                    out.append(SpecError(f"{path}.timeout", problem))
        return out


@dataclass(kw_only=True)
class BackupSpec(Document):
    """Backups through a backup method (ours; docs/backup.md).

    ``method`` is a ``stolon.backup`` entry-point name (``walg``, ``barman``,
    ``pgbackrest``), ``settings`` its settings (no credentials: they stay in files on the
    hosts). With this section every instance archives WAL through the method
    (``archive_mode = always``) and standbys can fetch WAL from the archive.
    ``schedule``: a cron expression (UTC) at which the leader sentinel requests a base
    backup. ``retain``: after each backup, keep this many and delete older ones.
    ``restoreStandbys``: a new standby (or a resync) restores the latest backup and then
    streams, instead of copying the whole data directory from the master. ``timeout``
    bounds one base backup or restore (default 6h).
    """

    method: str = jf("method")
    settings: dict[str, Any] | None = jf("settings")
    schedule: str = jf("schedule")
    retain: U16 | None = jf("retain")
    restore_standbys: bool | None = jf("restoreStandbys")
    timeout: Duration | None = jf("timeout")

    @property
    def effective_timeout(self) -> Duration:
        return self.timeout if self.timeout is not None else DEFAULT_BACKUP_TIMEOUT

    def validate(self, path: str = "backup") -> None:
        if not self.method or self.method != self.method.strip():
            raise SpecError(
                f"{path}.method", "is required: name an installed backup method (see `stolonctl plugins`)"
            )
        if self.schedule:
            try:
                CronSchedule.parse(self.schedule)
            except CronError as e:
                raise SpecError(f"{path}.schedule", str(e)) from None
        if self.retain is not None and self.retain < 1:
            raise SpecError(
                f"{path}.retain", f"must be at least 1 (got {self.retain}); leave it out to keep every backup"
            )
        if self.timeout is not None and self.timeout.ns <= 0:
            raise SpecError(f"{path}.timeout", f'must be positive (got {self.timeout}): e.g. "6h"')


def _config_text_fields(s: ClusterSpec) -> list[tuple[str, str]]:
    """(JSON path, value) of every spec string that a keeper writes into postgresql.conf or
    pg_hba.conf (directly, or inside ``primary_conninfo``)."""
    # pgParameters have their own rule (stolon.model.pgparams), control characters included
    out: list[tuple[str, str]] = [(f"pgHBA[{i}]", e) for i, e in enumerate(s.pg_hba or [])]
    recovery: list[tuple[str, Document | None]] = []
    if s.standby_config is not None:
        recovery += [
            ("standbyConfig.standbySettings", s.standby_config.standby_settings),
            ("standbyConfig.archiveRecoverySettings", s.standby_config.archive_recovery_settings),
        ]
    if s.pitr_config is not None:
        recovery += [
            ("pitrConfig.archiveRecoverySettings", s.pitr_config.archive_recovery_settings),
            ("pitrConfig.recoveryTargetSettings", s.pitr_config.recovery_target_settings),
        ]
    for path, doc in recovery:
        if doc is None:
            continue
        for key, value in doc.to_obj().items():
            if isinstance(value, str):
                out.append((f"{path}.{key}", value))
    return out


def _check_config_text(s: ClusterSpec, ours: Callable[[SpecError], None]) -> None:
    """No control character (newline, CR, NUL, ESC...; tab is fine) in what reaches a
    configuration file: a line break would start a line of the writer's choosing.

    A newline in a pgHBA entry is Go Stolon's own rule (always an error); the rest is ours
    (``ours``: an error for new input, a warning for a stored spec, whose keeper then refuses
    to render that file rather than write the character)."""
    for i, entry in enumerate(s.pg_hba or []):
        if "\n" in entry:
            raise SpecError(
                f"pgHBA[{i}]", "entries cannot contain newline characters: use one entry per line"
            )
    for path, value in _config_text_fields(s):
        bad = control_chars(value)
        if bad:
            shown = ", ".join(repr(c) for c in bad)
            ours(
                SpecError(
                    path,
                    f"contains a control character ({shown}): no newline, carriage return or other"
                    " control character may reach a configuration file (one pgHBA entry per line)",
                )
            )


# Defaults (Go Stolon's, except maxStandbyLag: see docs/compatibility.md).
DEFAULT_SLEEP_INTERVAL = Duration(5 * SECOND)
DEFAULT_REQUEST_TIMEOUT = Duration(10 * SECOND)
DEFAULT_CONVERGENCE_TIMEOUT = Duration(30 * SECOND)
DEFAULT_INIT_TIMEOUT = Duration(5 * MINUTE)
DEFAULT_SYNC_TIMEOUT = Duration(0)
DEFAULT_DB_WAIT_READY_TIMEOUT = Duration(60 * SECOND)
DEFAULT_FAIL_INTERVAL = Duration(20 * SECOND)
DEFAULT_DEAD_KEEPER_REMOVAL_INTERVAL = Duration(48 * HOUR)
DEFAULT_PROXY_CHECK_INTERVAL = Duration(5 * SECOND)
DEFAULT_PROXY_TIMEOUT = Duration(15 * SECOND)
DEFAULT_MAX_STANDBYS = 20
DEFAULT_MAX_STANDBYS_PER_SENDER = 3
DEFAULT_MAX_STANDBY_LAG = 1024 * 1204  # Go's value (1,232,896 bytes; its docs say 1 MiB)
DEFAULT_SYNCHRONOUS_REPLICATION = False
DEFAULT_MIN_SYNCHRONOUS_STANDBYS = 1
DEFAULT_MAX_SYNCHRONOUS_STANDBYS = 1
DEFAULT_ADDITIONAL_WAL_SENDERS = 5
DEFAULT_USE_PGREWIND = False
DEFAULT_MERGE_PG_PARAMETERS = True
DEFAULT_ROLE = ROLE_MASTER
DEFAULT_SUREPL_ACCESS = SUREPL_ALL
DEFAULT_AUTOMATIC_PG_RESTART = False
DEFAULT_FENCING_POLICY = FENCING_REQUIRED
DEFAULT_FENCING_TIMEOUT = Duration(10 * SECOND)
DEFAULT_BACKUP_TIMEOUT = Duration(6 * HOUR)

#: synchronous_commit values that acknowledge a commit before any standby has it.
UNSAFE_SYNCHRONOUS_COMMIT = ("local", "off")


@dataclass(frozen=True)
class DurationBounds:
    """The sane range of a duration field (ours: Go Stolon only refuses negative values).

    New input outside ``[low, high]`` is refused, except 0 when ``zero_means`` says what 0
    does (Go's meaning: no limit). A stored value outside is used clamped to the range, with
    a warning; a stored 0 counts as ``stored_zero`` when set (else as ``low``).
    Documented in docs/compatibility.md and docs/security.md.
    """

    key: str
    low: Duration
    high: Duration
    zero_means: str = ""
    stored_zero: Duration | None = None

    def problem(self, value: Duration) -> str | None:
        """Why ``value`` is not acceptable input, or ``None``."""
        if value.ns == 0 and self.zero_means:
            return None
        if value < self.low or value > self.high:
            zero = f", or 0 ({self.zero_means})" if self.zero_means else ""
            return f"must be between {self.low} and {self.high}{zero} (got {value})"
        return None

    def effective(self, value: Duration) -> Duration:
        """The value in force for a stored ``value`` (clamped into the range)."""
        if value.ns == 0:
            if self.zero_means:
                return value
            if self.stored_zero is not None:
                return self.stored_zero
        if type(value) is Duration:  # min(max(...)) below, on the nanoseconds (called per DB per cycle)
            low = self.low if self.low.ns > value.ns else value
            return self.high if self.high.ns < low.ns else low
        return min(max(value, self.low), self.high)

    def stored_problem(self, value: Duration) -> str | None:
        """The warning for a stored ``value`` that is used corrected, or ``None``."""
        if value.ns < 0 or self.problem(value) is None:
            return None
        return f"{value} is out of bounds ({self.low}..{self.high}): {self.effective(value)} is used instead"


_MS = MILLISECOND
#: Bounds of every duration of the spec, by attribute name.
DURATION_BOUNDS: dict[str, DurationBounds] = {
    "sleep_interval": DurationBounds(
        "sleepInterval", Duration(100 * _MS), Duration(10 * MINUTE), stored_zero=DEFAULT_SLEEP_INTERVAL
    ),
    "request_timeout": DurationBounds(
        "requestTimeout", Duration(1 * SECOND), Duration(1 * HOUR), stored_zero=DEFAULT_REQUEST_TIMEOUT
    ),
    "convergence_timeout": DurationBounds(
        "convergenceTimeout", Duration(1 * SECOND), Duration(24 * HOUR), zero_means="no limit"
    ),
    "init_timeout": DurationBounds(
        "initTimeout", Duration(1 * SECOND), Duration(24 * HOUR), zero_means="no limit"
    ),
    "sync_timeout": DurationBounds(
        "syncTimeout", Duration(1 * SECOND), Duration(7 * 24 * HOUR), zero_means="no limit"
    ),
    "db_wait_ready_timeout": DurationBounds(
        "dbWaitReadyTimeout", Duration(1 * SECOND), Duration(24 * HOUR), stored_zero=Duration(24 * HOUR)
    ),
    "fail_interval": DurationBounds("failInterval", Duration(1 * SECOND), Duration(24 * HOUR)),
    "dead_keeper_removal_interval": DurationBounds(
        "deadKeeperRemovalInterval", Duration(1 * MINUTE), Duration(365 * 24 * HOUR)
    ),
    "proxy_check_interval": DurationBounds("proxyCheckInterval", Duration(100 * _MS), Duration(10 * MINUTE)),
    "proxy_timeout": DurationBounds("proxyTimeout", Duration(200 * _MS), Duration(1 * HOUR)),
    "self_fencing_timeout": DurationBounds(
        "selfFencingTimeout", Duration(200 * _MS), Duration(24 * HOUR), zero_means="self-fencing off"
    ),
}
FENCING_TIMEOUT = DurationBounds(
    "fencing.timeout", Duration(100 * _MS), Duration(10 * MINUTE), stored_zero=DEFAULT_FENCING_TIMEOUT
)


@dataclass(kw_only=True)
class ClusterSpec(Document):
    sleep_interval: Duration | None = jf("sleepInterval")
    request_timeout: Duration | None = jf("requestTimeout")
    convergence_timeout: Duration | None = jf("convergenceTimeout")
    init_timeout: Duration | None = jf("initTimeout")
    sync_timeout: Duration | None = jf("syncTimeout")
    db_wait_ready_timeout: Duration | None = jf("dbWaitReadyTimeout")
    fail_interval: Duration | None = jf("failInterval")
    dead_keeper_removal_interval: Duration | None = jf("deadKeeperRemovalInterval")
    proxy_check_interval: Duration | None = jf("proxyCheckInterval")
    proxy_timeout: Duration | None = jf("proxyTimeout")
    max_standbys: U16 | None = jf("maxStandbys")
    max_standbys_per_sender: U16 | None = jf("maxStandbysPerSender")
    max_standby_lag: U32 | None = jf("maxStandbyLag")
    synchronous_replication: bool | None = jf("synchronousReplication")
    min_synchronous_standbys: U16 | None = jf("minSynchronousStandbys")
    max_synchronous_standbys: U16 | None = jf("maxSynchronousStandbys")
    additional_wal_senders: U16 | None = jf("additionalWalSenders", omitempty=False)
    additional_master_replication_slots: list[str] | None = jf(
        "additionalMasterReplicationSlots", omitempty=False
    )
    use_pgrewind: bool | None = jf("usePgrewind")
    init_mode: str | None = jf("initMode")
    merge_pg_parameters: bool | None = jf("mergePgParameters")
    role: str | None = jf("role")
    new_config: NewConfig | None = jf("newConfig")
    pitr_config: PITRConfig | None = jf("pitrConfig")
    existing_config: ExistingConfig | None = jf("existingConfig")
    standby_config: StandbyConfig | None = jf("standbyConfig")
    default_su_repl_access_mode: str | None = jf("defaultSUReplAccessMode")
    pg_parameters: dict[str, str] | None = jf("pgParameters")
    pg_hba: list[str] | None = jf("pgHBA", omitempty=False)
    automatic_pg_restart: bool | None = jf("automaticPgRestart", omitempty=False)
    #: ours: fence an old master before an automatic promotion (docs/fencing.md)
    fencing: FencingSpec | None = jf("fencing")
    #: ours: WAL archiving and base backups through a backup method (docs/backup.md)
    backup: BackupSpec | None = jf("backup")
    #: ours: how long the master's keeper may go without the store confirming that it is
    #: the master before its PostgreSQL refuses writes; unset: derived from failInterval,
    #: 0s: off (Go Stolon's behaviour). docs/self-fencing.md
    self_fencing_timeout: Duration | None = jf("selfFencingTimeout")

    # -- defaults ---------------------------------------------------------------------------
    def with_defaults(self) -> ClusterSpec:
        """A copy with every unset field given its default (Go's ``WithDefaults``)."""
        s = stored_copy(self)  # what self.copy() gives, without the JSON text
        defaults: dict[str, Any] = {
            "sleep_interval": DEFAULT_SLEEP_INTERVAL,
            "request_timeout": DEFAULT_REQUEST_TIMEOUT,
            "convergence_timeout": DEFAULT_CONVERGENCE_TIMEOUT,
            "init_timeout": DEFAULT_INIT_TIMEOUT,
            "sync_timeout": DEFAULT_SYNC_TIMEOUT,
            "db_wait_ready_timeout": DEFAULT_DB_WAIT_READY_TIMEOUT,
            "fail_interval": DEFAULT_FAIL_INTERVAL,
            "dead_keeper_removal_interval": DEFAULT_DEAD_KEEPER_REMOVAL_INTERVAL,
            "proxy_check_interval": DEFAULT_PROXY_CHECK_INTERVAL,
            "proxy_timeout": DEFAULT_PROXY_TIMEOUT,
            "max_standbys": DEFAULT_MAX_STANDBYS,
            "max_standbys_per_sender": DEFAULT_MAX_STANDBYS_PER_SENDER,
            "max_standby_lag": DEFAULT_MAX_STANDBY_LAG,
            "synchronous_replication": DEFAULT_SYNCHRONOUS_REPLICATION,
            "use_pgrewind": DEFAULT_USE_PGREWIND,
            "min_synchronous_standbys": DEFAULT_MIN_SYNCHRONOUS_STANDBYS,
            "max_synchronous_standbys": DEFAULT_MAX_SYNCHRONOUS_STANDBYS,
            "additional_wal_senders": DEFAULT_ADDITIONAL_WAL_SENDERS,
            "merge_pg_parameters": DEFAULT_MERGE_PG_PARAMETERS,
            "default_su_repl_access_mode": DEFAULT_SUREPL_ACCESS,
            "role": DEFAULT_ROLE,
            "automatic_pg_restart": DEFAULT_AUTOMATIC_PG_RESTART,
        }
        for name, value in defaults.items():
            if getattr(s, name) is None:
                setattr(s, name, value)
        return s

    # -- typed accessors on the defaulted spec (raise if called on a raw spec) ---------------
    def d(self) -> DefaultedSpec:
        """The spec with defaults applied, with non-optional typed accessors."""
        return DefaultedSpec(self.with_defaults())

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        """Strict check of NEW input (``stolonctl init``/``update``/``clusterdata write``,
        ``--initial-cluster-spec``): Go Stolon's rules and ours. Raises :class:`SpecError`
        naming the first invalid field."""
        self._check(strict=True)

    def validate_stored(self) -> list[SpecError]:
        """Lenient check of a STORED spec, which a component must keep running on.

        Raises :class:`SpecError` only for Go Stolon's own rules (its components refuse such
        a spec too). Every rule of ours that Go does not have is returned as a warning
        instead: the spec is then used as documented (durations clamped, invalid
        ``pgParameters`` left out of postgresql.conf, an unknown fencing policy counted as
        ``required``...), and ``stolonctl update`` can fix it.
        """
        return self._check(strict=False)

    def _check(self, *, strict: bool) -> list[SpecError]:
        warnings: list[SpecError] = []

        def ours(err: SpecError) -> None:
            """A rule Go Stolon does not have: an error for new input, a warning for stored."""
            if strict:
                raise err
            warnings.append(err)

        s = self.with_defaults()
        for name, key in _DURATION_KEYS:
            value = getattr(s, name)
            if value is not None and value.ns < 0:
                raise SpecError(key, f"must not be negative (got {value})")
            bounds = DURATION_BOUNDS[name]
            if value is not None and getattr(self, name) is not None:
                if strict:
                    problem = bounds.problem(value)
                    if problem is not None:
                        raise SpecError(key, problem)
                else:
                    problem = bounds.stored_problem(value)
                    if problem is not None:
                        warnings.append(SpecError(key, problem))
        assert s.proxy_check_interval is not None and s.proxy_timeout is not None
        if s.proxy_check_interval >= s.proxy_timeout:
            raise SpecError(
                "proxyCheckInterval",
                f"must be less than proxyTimeout ({s.proxy_check_interval} >= {s.proxy_timeout});"
                " lower proxyCheckInterval or raise proxyTimeout",
            )
        for name, key in (
            ("max_standbys", "maxStandbys"),
            ("max_standbys_per_sender", "maxStandbysPerSender"),
            ("max_synchronous_standbys", "maxSynchronousStandbys"),
        ):
            if getattr(s, name) < 1:
                raise SpecError(key, f"must be at least 1 (got {getattr(s, name)})")
        assert s.max_synchronous_standbys is not None and s.min_synchronous_standbys is not None
        if s.max_synchronous_standbys < s.min_synchronous_standbys:
            raise SpecError(
                "maxSynchronousStandbys",
                f"must be greater than or equal to minSynchronousStandbys"
                f" ({s.max_synchronous_standbys} < {s.min_synchronous_standbys})",
            )
        if s.init_mode is None:
            raise SpecError("initMode", 'is required: set it to "new", "existing" or "pitr"')
        for i, slot in enumerate(s.additional_master_replication_slots or []):
            path = f"additionalMasterReplicationSlots[{i}]"
            if not _REPL_SLOT_NAME.fullmatch(slot):
                raise SpecError(path, f"wrong replication slot name {slot!r}: use only a-z, 0-9 and _")
            if slot.startswith(STOLON_PREFIX):
                raise SpecError(
                    path,
                    f"replication slot name {slot!r} is reserved: don't start it with {STOLON_PREFIX!r}",
                )
        _check_config_text(s, ours)
        if s.role not in CLUSTER_ROLES:
            raise SpecError("role", f'unknown role {s.role!r}: use "master" or "standby"')
        if s.init_mode == INIT_MODE_NEW:
            if s.role == ROLE_STANDBY:
                raise SpecError(
                    "role",
                    'cannot be "standby" when initMode is "new": use initMode "pitr" or "existing"',
                )
        elif s.init_mode == INIT_MODE_EXISTING:
            if s.existing_config is None:
                raise SpecError("existingConfig", 'is required when initMode is "existing"')
            if not s.existing_config.keeper_uid:
                raise SpecError("existingConfig.keeperUID", "is required: name the keeper whose data to use")
        elif s.init_mode == INIT_MODE_PITR:
            if s.pitr_config is None:
                raise SpecError("pitrConfig", 'is required when initMode is "pitr"')
            fb = s.pitr_config.from_backup
            if fb is not None and s.pitr_config.data_restore_command:
                raise SpecError(
                    "pitrConfig.fromBackup",
                    "cannot be set together with pitrConfig.dataRestoreCommand: keep one of them",
                )
            if fb is None and not s.pitr_config.data_restore_command:
                raise SpecError(
                    "pitrConfig.dataRestoreCommand",
                    "is required: a shell command that restores %d (or set pitrConfig.fromBackup)",
                )
            if fb is not None:
                if not (fb.method or (s.backup is not None and s.backup.method)):
                    raise SpecError(
                        "pitrConfig.fromBackup.method",
                        "is required when the spec has no backup section: name the backup method",
                    )
                if fb.backup_id and fb.backup_id != "latest" and not _BACKUP_ID.fullmatch(fb.backup_id):
                    raise SpecError(
                        "pitrConfig.fromBackup.backupID",
                        f'{fb.backup_id!r} is not a backup id: use an id from `stolonctl backup list` or "latest"',
                    )
            if s.pitr_config.recovery_target_settings is not None and s.role == ROLE_STANDBY:
                raise SpecError(
                    "pitrConfig.recoveryTargetSettings",
                    'cannot be set when the cluster role is "standby": remove it or use role "master"',
                )
        else:
            raise SpecError("initMode", f'unknown initMode {s.init_mode!r}: use "new", "existing" or "pitr"')
        if s.default_su_repl_access_mode not in SUREPL_ACCESS_MODES:
            raise SpecError(
                "defaultSUReplAccessMode",
                f'unknown value {s.default_su_repl_access_mode!r}: use "all" or "strict"',
            )
        if s.role == ROLE_STANDBY and s.standby_config is None:
            raise SpecError("standbyConfig", 'is required when the cluster role is "standby"')
        # -- ours from here on: Go Stolon accepts all of these --------------------------------
        for name, problem in sorted(invalid_parameters(s.pg_parameters).items()):
            ours(
                SpecError(
                    f"pgParameters.{name}", problem if strict else f"{problem} (left out of postgresql.conf)"
                )
            )
        if s.fencing is not None:
            for err in s.fencing.problems():
                ours(err)
        if self.self_fencing_timeout is not None and self.self_fencing_timeout.ns > 0:
            d = DefaultedSpec(s)
            if not d.sleep_interval < self.self_fencing_timeout < d.fail_interval:
                ours(
                    SpecError(
                        "selfFencingTimeout",
                        f"must be more than sleepInterval ({d.sleep_interval}) and less than failInterval"
                        f" ({d.fail_interval}), or 0s to turn self-fencing off (got {self.self_fencing_timeout});"
                        " leave it unset for the value derived from them",
                    )
                )
        if s.backup is not None:
            # Ours too, but still an error for stored data: the backup runtime expects a
            # valid section (see docs/security.md).
            s.backup.validate()
            if "archive_command" in (s.pg_parameters or {}) or "archive_library" in (s.pg_parameters or {}):
                raise SpecError(
                    "pgParameters.archive_command",
                    "conflicts with the backup section, which sets the archive command: remove one of them",
                )
        if s.synchronous_replication:
            value = (s.pg_parameters or {}).get("synchronous_commit")
            if value is not None and value.strip().lower() in UNSAFE_SYNCHRONOUS_COMMIT:
                ours(
                    SpecError(
                        "pgParameters.synchronous_commit",
                        f"{value!r} acknowledges commits before a standby has them, which voids"
                        " synchronousReplication: use on, remote_write or remote_apply",
                    )
                )
        return warnings

    def check_update(self, new: ClusterSpec) -> None:
        """Validate ``new`` as a replacement for this spec (Go's ``UpdateSpec``)."""
        new.validate()
        old_d, new_d = self.with_defaults(), new.with_defaults()
        if old_d.init_mode != new_d.init_mode:
            raise SpecError(
                "initMode",
                f"cannot change the cluster init mode ({old_d.init_mode!r} to {new_d.init_mode!r}):"
                " use stolonctl init to re-initialize the cluster",
            )
        if old_d.role == ROLE_MASTER and new_d.role == ROLE_STANDBY:
            raise SpecError("role", "cannot change a cluster from role master to role standby")


_DURATION_KEYS = [
    (f.name, f.metadata["json"].key)
    for f in dataclasses.fields(ClusterSpec)
    if "json" in f.metadata and get_type_hints(ClusterSpec)[f.name] == Duration | None
]


class DefaultedSpec:
    """Read-only, non-optional view of a spec with defaults applied: the values in force.

    Durations are the effective ones (:meth:`DurationBounds.effective`): a stored value out
    of bounds is clamped (the raw one is on ``.spec``).
    """

    __slots__ = ("spec",)

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spec, name)

    @property
    def sleep_interval(self) -> Duration:
        return DURATION_BOUNDS["sleep_interval"].effective(_req(self.spec.sleep_interval))

    @property
    def request_timeout(self) -> Duration:
        return DURATION_BOUNDS["request_timeout"].effective(_req(self.spec.request_timeout))

    @property
    def convergence_timeout(self) -> Duration:
        return DURATION_BOUNDS["convergence_timeout"].effective(_req(self.spec.convergence_timeout))

    @property
    def init_timeout(self) -> Duration:
        return DURATION_BOUNDS["init_timeout"].effective(_req(self.spec.init_timeout))

    @property
    def sync_timeout(self) -> Duration:
        return DURATION_BOUNDS["sync_timeout"].effective(_req(self.spec.sync_timeout))

    @property
    def db_wait_ready_timeout(self) -> Duration:
        return DURATION_BOUNDS["db_wait_ready_timeout"].effective(_req(self.spec.db_wait_ready_timeout))

    @property
    def fail_interval(self) -> Duration:
        return DURATION_BOUNDS["fail_interval"].effective(_req(self.spec.fail_interval))

    @property
    def dead_keeper_removal_interval(self) -> Duration:
        return DURATION_BOUNDS["dead_keeper_removal_interval"].effective(
            _req(self.spec.dead_keeper_removal_interval)
        )

    @property
    def proxy_check_interval(self) -> Duration:
        return DURATION_BOUNDS["proxy_check_interval"].effective(_req(self.spec.proxy_check_interval))

    @property
    def proxy_timeout(self) -> Duration:
        return DURATION_BOUNDS["proxy_timeout"].effective(_req(self.spec.proxy_timeout))

    @property
    def self_fencing_timeout(self) -> Duration:
        """The master keeper's self-fencing timeout in force; 0 when self-fencing is off.

        Unset: ``failInterval - min(sleepInterval / 2, failInterval / 4)``, so that the master
        refuses writes before the sentinel can have declared it failed (docs/self-fencing.md);
        off when the value is not more than ``sleepInterval`` (the keeper confirms itself once
        per ``sleepInterval``: such a timeout would fence a healthy master)."""
        fail, sleep = self.fail_interval, self.sleep_interval
        raw = self.spec.self_fencing_timeout
        if raw is not None:
            value = DURATION_BOUNDS["self_fencing_timeout"].effective(raw)
        else:
            value = Duration(fail.ns - min(sleep.ns // 2, fail.ns // 4))
        # a stored value not above sleepInterval is reported as a warning and turns it off
        return value if value > sleep else Duration(0)

    @property
    def max_standbys(self) -> int:
        return _req(self.spec.max_standbys)

    @property
    def max_standbys_per_sender(self) -> int:
        return _req(self.spec.max_standbys_per_sender)

    @property
    def max_standby_lag(self) -> int:
        return _req(self.spec.max_standby_lag)

    @property
    def synchronous_replication(self) -> bool:
        return _req(self.spec.synchronous_replication)

    @property
    def min_synchronous_standbys(self) -> int:
        return _req(self.spec.min_synchronous_standbys)

    @property
    def max_synchronous_standbys(self) -> int:
        return _req(self.spec.max_synchronous_standbys)

    @property
    def additional_wal_senders(self) -> int:
        return _req(self.spec.additional_wal_senders)

    @property
    def use_pgrewind(self) -> bool:
        return _req(self.spec.use_pgrewind)

    @property
    def merge_pg_parameters(self) -> bool:
        return _req(self.spec.merge_pg_parameters)

    @property
    def role(self) -> str:
        return _req(self.spec.role)

    @property
    def default_su_repl_access_mode(self) -> str:
        return _req(self.spec.default_su_repl_access_mode)

    @property
    def automatic_pg_restart(self) -> bool:
        return _req(self.spec.automatic_pg_restart)


T = TypeVar("T")


def _req(value: T | None) -> T:
    if value is None:
        raise AssertionError("spec accessor used on a spec without defaults")
    return value
