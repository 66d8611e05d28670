"""The backup-method contract: what a ``stolon.backup`` plugin implements and is given.

A backup method (WAL-G, Barman Cloud, pgBackRest, a third party's) is an object built by the
factory of a :class:`stolon.hookspecs.MethodSpec` from the method's ``settings`` (a JSON
object in the cluster spec, ``backup.settings``). The keeper calls it directly:

* every keeper, when ``backup`` is set in the cluster spec, calls :meth:`BackupMethod.prepare`
  and renders :meth:`BackupMethod.archive_command` into ``archive_command`` (PostgreSQL runs
  it for each WAL segment, ``archive_mode = always``) and
  :meth:`BackupMethod.restore_command` into the standbys' ``restore_command``;
* the master's keeper calls :meth:`BackupMethod.ensure_repository` once PostgreSQL runs, and
  :meth:`BackupMethod.create_backup` when the cluster data asks for a base backup
  (``stolonctl backup create`` or the sentinel's schedule), then
  :meth:`BackupMethod.delete_backups` when ``backup.retain`` is set;
* a keeper initialising a DB with ``initMode: pitr`` from a backup (or a new standby when
  ``backup.restoreStandbys`` is set) calls :meth:`BackupMethod.list_backups`, picks the
  backup (:func:`select_backup`) and calls :meth:`BackupMethod.restore_backup` into an empty
  data directory; the keeper then writes the recovery configuration itself (the method's
  ``restore_command`` plus the recovery target) and starts PostgreSQL;
* ``stolonctl backup list`` and ``stolonctl backup delete`` call the method on the machine
  where stolonctl runs (it needs the repository and its credentials there).

Rules every method follows (the contract kit :mod:`stolon.testing.backup_contract` checks
them against a real PostgreSQL):

* **No shell.** Commands are argv lists. The archive and restore commands are argv templates
  whose placeholders (``%p``, ``%f``) the core turns into a shell-safe string
  (:mod:`stolon.backup.commands`), because PostgreSQL hands ``archive_command`` to ``sh``.
* **Credentials never come from the settings.** Settings are stored in the cluster data, which
  every component reads; a method takes credentials from files on the host (settings may
  name such a file, e.g. ``envFile``) and writes what its tool needs into
  :attr:`BackupContext.work_dir` with mode 0600 (:func:`stolon.backup.files.write_private`).
* **Archiving is idempotent.** PostgreSQL may archive a segment twice (a retry after a crash;
  every standby archives too, ``archive_mode = always``): pushing a segment whose identical
  copy is in the repository succeeds; pushing a *different* file under an existing name
  fails (it would overwrite history).
* **Standby archiving** (optional attribute ``standby_archiving``, default True): the master
  and every standby archive the same segments, possibly at the same moment, so a master
  that dies with segments it did not archive yet leaves no hole. A tool that can't take
  concurrent pushes of one segment sets it False: only the master archives
  (``archive_mode = on``) and, after a promotion, the new master's keeper pushes the
  previous timeline's segments still in its ``pg_wal`` (:func:`standby_archiving`).
* **Errors are one line.** Raise :class:`BackupError` (or a subclass) whose message names the
  cause and the fix; never leave a half-restored data directory (the keeper also removes it).
* Everything runs as :attr:`BackupContext.os_user` (PostgreSQL's OS user) through
  :meth:`BackupContext.run`, bounded in time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from stolon.postgres.conninfo import pgpass_line
from stolon.postgres.lsn import format_lsn, parse_lsn
from stolon.postgres.runas import CommandResult, OSUser, run_command, secret_file

#: What a backup id may look like (every tool's ids fit; nothing else reaches argv unchecked).
BACKUP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
LATEST = "latest"


def one_line(text: object, limit: int = 1000) -> str:
    """``text`` (an error, a tool's output) as one line: its non-empty lines joined with
    " / ", cut to ``limit`` characters. For errors, logs and the cluster data."""
    joined = " / ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


class BackupError(Exception):
    """A backup operation failed; the message is one line naming the cause and the fix."""


class BackupConfigError(BackupError):
    """The method's settings are unusable (unknown key, missing value, wrong type)."""


class BackupNotFoundError(BackupError):
    """The requested backup is not in the repository."""


class StorageUnreachableError(BackupError):
    """The repository (bucket, directory, server) could not be reached."""


class RecoveryTargetError(BackupError):
    """The recovery target can't be reached from the chosen backup."""


# -- what the repository holds ---------------------------------------------------------------


@dataclass(frozen=True)
class BackupInfo:
    """One base backup in the repository.

    ``start_lsn``/``end_lsn``: WAL positions of the backup's start and end (recovery must
    replay at least to ``end_lsn`` for a consistent copy); ``end_time``: when it finished,
    the earliest recovery target time it can serve. ``size``: bytes the tool reports for it
    (compressed size in the repository when the tool reports that, else the database size).
    """

    id: str
    start_time: datetime
    end_time: datetime
    start_lsn: int
    end_lsn: int
    timeline: int
    size: int
    #: PostgreSQL major version of the backed-up cluster, when the tool reports it (0: unknown)
    pg_major: int = 0
    #: the database system identifier, when the tool reports it ("" if unknown)
    system_id: str = ""
    #: extra facts shown by ``stolonctl backup list -f json`` (tool-specific, strings)
    details: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not BACKUP_ID_RE.fullmatch(self.id):
            raise BackupError(f"backup id {self.id!r} is not a valid backup id")
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"BackupInfo.{name} must be timezone-aware")

    def to_obj(self) -> dict[str, Any]:
        """The JSON form used by ``stolonctl backup list -f json`` and in keeper infos."""
        obj: dict[str, Any] = {
            "id": self.id,
            "startTime": _iso(self.start_time),
            "endTime": _iso(self.end_time),
            "startLSN": format_lsn(self.start_lsn),
            "endLSN": format_lsn(self.end_lsn),
            "timeline": self.timeline,
            "size": self.size,
        }
        if self.pg_major:
            obj["pgMajor"] = self.pg_major
        if self.system_id:
            obj["systemID"] = self.system_id
        if self.details:
            obj["details"] = dict(self.details)
        return obj

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> BackupInfo:
        try:
            return cls(
                id=str(obj["id"]),
                start_time=parse_time(str(obj["startTime"])),
                end_time=parse_time(str(obj["endTime"])),
                start_lsn=parse_lsn(str(obj["startLSN"])),
                end_lsn=parse_lsn(str(obj["endLSN"])),
                timeline=int(obj["timeline"]),
                size=int(obj["size"]),
                pg_major=int(obj.get("pgMajor", 0)),
                system_id=str(obj.get("systemID", "")),
                details={str(k): str(v) for k, v in (obj.get("details") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BackupError(f"malformed backup description: {e}") from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 time (``Z`` or an offset; no offset means UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- recovery targets ------------------------------------------------------------------------

TARGET_KINDS = ("latest", "immediate", "time", "lsn", "xid", "name")


@dataclass(frozen=True)
class RecoveryTarget:
    """Where a point-in-time recovery stops: ``latest`` (the end of the archive),
    ``immediate`` (as soon as the backup is consistent), a ``time``, an ``lsn``, an ``xid`` or
    a restore point ``name``. Built from Go Stolon's ``recoveryTargetSettings``."""

    kind: str = "latest"
    value: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise RecoveryTargetError(f"unknown recovery target kind {self.kind!r}")

    @property
    def time(self) -> datetime | None:
        return parse_target_time(self.value) if self.kind == "time" else None

    @property
    def lsn(self) -> int | None:
        return parse_lsn(self.value) if self.kind == "lsn" else None

    def describe(self) -> str:
        return self.kind if self.kind in ("latest", "immediate") else f"{self.kind} {self.value}"


def parse_target_time(text: str) -> datetime:
    """A ``recovery_target_time`` as PostgreSQL reads it, for the checks done before a
    restore: ``2006-01-02T15:04:05`` or ``2006-01-02 15:04:05[.ffffff][+hh[:mm]|Z| UTC]``.
    A time without a zone is taken as UTC (set ``timezone`` accordingly, or give a zone)."""
    t = text.strip()
    for suffix in (" UTC", " utc", " GMT"):
        if t.endswith(suffix):
            t = t[: -len(suffix)] + "+00:00"
    t = t.replace(" ", "T", 1).replace("Z", "+00:00")
    if re.search(r"[+-]\d\d$", t):
        t += ":00"
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        raise RecoveryTargetError(
            f"cannot read recovery target time {text!r}: use e.g. 2026-12-01 15:04:05+00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def select_backup(backups: Sequence[BackupInfo], backup_id: str, target: RecoveryTarget) -> BackupInfo:
    """The backup to restore for ``backup_id`` (an id or ``latest``) and ``target``.

    ``latest`` picks the newest backup that can reach the target: for a time target the
    newest one that ended before it, for an LSN target the newest that ended at or before
    it. A named backup is checked against the target. Raises :class:`BackupNotFoundError` or
    :class:`RecoveryTargetError` with a one-line message.
    """
    ordered = sorted(backups, key=lambda b: (b.end_time, b.end_lsn))
    if backup_id and backup_id != LATEST:
        for b in ordered:
            if b.id == backup_id:
                check_target(b, target)
                return b
        known = ", ".join(b.id for b in ordered[-5:]) or "none"
        raise BackupNotFoundError(
            f"backup {backup_id!r} is not in the repository (newest: {known}):"
            ' use `stolonctl backup list` to see the backups, or "latest"'
        )
    if not ordered:
        raise BackupNotFoundError(
            "the repository has no backup: take one with `stolonctl backup create` first"
        )
    usable = [b for b in ordered if _reaches(b, target)]
    if not usable:
        check_target(ordered[0], target)  # raises with the explanation
    return usable[-1]


def _reaches(backup: BackupInfo, target: RecoveryTarget) -> bool:
    t = target.time
    if t is not None:
        return backup.end_time <= t
    lsn = target.lsn
    if lsn is not None:
        return backup.end_lsn <= lsn
    return True


def check_target(backup: BackupInfo, target: RecoveryTarget) -> None:
    """Raise :class:`RecoveryTargetError` when ``target`` is before ``backup`` ended."""
    t = target.time
    if t is not None and t < backup.end_time:
        raise RecoveryTargetError(
            f"recovery target time {target.value} is before the end of backup {backup.id}"
            f" ({_iso(backup.end_time)}): choose a later time or an older backup"
        )
    lsn = target.lsn
    if lsn is not None and lsn < backup.end_lsn:
        raise RecoveryTargetError(
            f"recovery target LSN {target.value} is before the end of backup {backup.id}"
            f" ({format_lsn(backup.end_lsn)}): choose a later LSN or an older backup"
        )


# -- what a method is given ------------------------------------------------------------------


@dataclass(frozen=True)
class PgServer:
    """How to reach a running PostgreSQL as a superuser (unix socket directory or host)."""

    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)
    database: str = "postgres"


#: ``progress(detail, done_bytes, total_bytes)``: a line for the keeper's log and
#: ``stolonctl status`` ("uploading", "12 of 40 files"...); the byte counts are optional.
Progress = Callable[[str, int | None, int | None], None]


def no_progress(detail: str, done: int | None = None, total: int | None = None) -> None:
    """A :data:`Progress` that drops the reports."""


@dataclass(frozen=True)
class BackupContext:
    """Where a method runs: the instance, the OS user, a private directory, time bounds.

    ``work_dir`` is the method's own directory (mode 0700, ``os_user``'s), kept across
    calls and existing as long as PostgreSQL runs with this method's archive/restore
    commands: config files the tool needs go there (mode 0600). ``server`` is set when a
    running PostgreSQL is at hand (the master for :meth:`BackupMethod.create_backup`).
    """

    cluster_name: str
    pgdata: Path
    pg_bin_dir: Path
    pg_major: int
    os_user: OSUser
    work_dir: Path
    server: PgServer | None = None
    #: the same server as the replication user (for tools that use the replication
    #: protocol, such as ``pg_basebackup``: the superuser has no replication access)
    replication: PgServer | None = None
    #: bound for one long operation (a base backup, a restore), seconds
    timeout: float = 6 * 3600.0
    #: bound for a short operation (list, check, one WAL segment), seconds
    short_timeout: float = 120.0

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Sequence[str | None] = (),
        check: bool = True,
    ) -> CommandResult:
        """Run ``argv`` as :attr:`os_user` with a cleaned environment plus ``env``.

        Raises :class:`stolon.postgres.errors.CommandError` (non-zero exit, with the tail of
        its output), :class:`~stolon.postgres.errors.CommandTimeoutError` or
        :class:`~stolon.postgres.errors.BinaryNotFoundError`; methods turn those into
        :class:`BackupError` with the fix in the message.
        """
        return run_command(
            argv,
            user=self.os_user,
            timeout=self.short_timeout if timeout is None else timeout,
            env=env,
            secrets=[
                *secrets,
                self.server.password if self.server else None,
                self.replication.password if self.replication else None,
            ],
            check=check,
        )

    @contextmanager
    def libpq_env(self, *, replication: bool = False) -> Iterator[dict[str, str]]:
        """Environment variables that make libpq tools connect to :attr:`server` (or
        :attr:`replication`): ``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE`` and a
        temporary ``PGPASSFILE`` (0600, removed when the block ends)."""
        srv = self.replication if replication else self.server
        if srv is None:
            raise BackupError("this operation needs a running PostgreSQL (none was given)")
        env = {
            "PGHOST": srv.host,
            "PGPORT": str(srv.port),
            "PGUSER": srv.user,
            "PGDATABASE": srv.database,
        }
        if not srv.password:
            yield env
            return
        with secret_file(pgpass_line(srv.user, srv.password), self.os_user, prefix="stolon-pgpass-") as pf:
            yield {**env, "PGPASSFILE": str(pf)}


# -- the method ------------------------------------------------------------------------------


def standby_archiving(method: object) -> bool:
    """Whether standbys archive too with this method (its optional ``standby_archiving``
    attribute; see the module docstring)."""
    return bool(getattr(method, "standby_archiving", True))


@runtime_checkable
class BackupMethod(Protocol):
    """What a backup method's factory returns. See the module docstring for the rules."""

    def check(self, ctx: BackupContext) -> str:
        """Check that the method can work here: its tool is installed and runs, the
        repository is reachable with the given credentials. Return a short description
        ("wal-g 3.0.5, file:///backups"); raise :class:`BackupError` otherwise."""
        ...

    def prepare(self, ctx: BackupContext) -> None:
        """Write what the tool needs into ``ctx.work_dir`` (idempotent; called before the
        rendered commands are used and before each operation)."""
        ...

    def ensure_repository(self, ctx: BackupContext) -> None:
        """Create the repository structure if missing (a pgBackRest stanza, a bucket
        prefix); ``ctx.server`` is the running master. Idempotent."""
        ...

    def archive_command(self, ctx: BackupContext) -> list[str]:
        """argv that archives one WAL file: ``%p`` is its path (relative to PGDATA), ``%f``
        its file name. Exit status 0 only once the file is durably stored."""
        ...

    def restore_command(self, ctx: BackupContext) -> list[str]:
        """argv that fetches WAL file ``%f`` into path ``%p``; a non-zero exit when the file
        is not in the repository (PostgreSQL asks for files that don't exist yet)."""
        ...

    def create_backup(self, ctx: BackupContext, progress: Progress) -> BackupInfo:
        """Take a base backup of the running master ``ctx.server`` (data directory
        ``ctx.pgdata``) and return its description as :meth:`list_backups` would."""
        ...

    def list_backups(self, ctx: BackupContext) -> list[BackupInfo]:
        """Every complete base backup in the repository, oldest first."""
        ...

    def restore_backup(
        self, ctx: BackupContext, backup: BackupInfo, target_dir: Path, progress: Progress
    ) -> None:
        """Put the files of ``backup`` into ``target_dir`` (it exists, is empty, and is
        ``ctx.os_user``'s, mode 0700). Leave recovery configuration to the keeper: no
        ``recovery.signal``, no ``restore_command`` in ``postgresql.auto.conf``."""
        ...

    def delete_backups(self, ctx: BackupContext, retain: int) -> list[str]:
        """Keep the newest ``retain`` (>= 1) backups and the WAL they need; delete older
        backups and WAL. Return the ids deleted."""
        ...


__all__ = [
    "BACKUP_ID_RE",
    "LATEST",
    "TARGET_KINDS",
    "BackupConfigError",
    "BackupContext",
    "BackupError",
    "BackupInfo",
    "BackupMethod",
    "BackupNotFoundError",
    "PgServer",
    "Progress",
    "RecoveryTarget",
    "RecoveryTargetError",
    "StorageUnreachableError",
    "check_target",
    "no_progress",
    "one_line",
    "parse_target_time",
    "parse_time",
    "select_backup",
    "standby_archiving",
]
