"""Files in the data directory (PGDATA): layout checks and the files the keeper writes.

Everything written here is owned by the PostgreSQL OS user (we may be root), replaced
atomically (temp file in the same directory, fsync, rename, fsync of the directory).
PGDATA and everything in it can be changed by that user, so every operation that creates,
changes, reads or deletes something goes through :mod:`stolon.postgres.safefs` (no link is
followed, owners are set through descriptors); only metadata checks (``lexists``, listing
``pg_wal``) look at paths directly.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from stolon.postgres import safefs
from stolon.postgres.binaries import PgVersion, parse_version
from stolon.postgres.errors import DataDirError, WalSegmentSizeError
from stolon.postgres.hba import render_pg_hba
from stolon.postgres.lsn import WAL_SEGMENT_SIZE, is_wal_file_name
from stolon.postgres.parameters import TMP_CONF_NAME, render_postgresql_conf
from stolon.postgres.recovery import RecoveryConfig, RecoveryMode
from stolon.postgres.runas import OSUser, ensure_dir, ensure_reachable

log = logging.getLogger(__name__)

POSTGRESQL_CONF = "postgresql.conf"
PG_HBA_CONF = "pg_hba.conf"
AUTO_CONF = "postgresql.auto.conf"
AUTO_CONF_TMP = "postgresql.auto.conf.tmp"
POSTMASTER_PID = "postmaster.pid"
STANDBY_SIGNAL = RecoveryMode.STANDBY.signal_file or ""
RECOVERY_SIGNAL = RecoveryMode.RECOVERY.signal_file or ""

#: What a usable PGDATA (PostgreSQL 10+) must contain (Go's ``IsInitialized`` list).
REQUIRED_ENTRIES: tuple[str, ...] = (
    "PG_VERSION",
    "base",
    "global",
    "pg_dynshmem",
    "pg_logical",
    "pg_multixact",
    "pg_notify",
    "pg_replslot",
    "pg_serial",
    "pg_snapshots",
    "pg_stat",
    "pg_stat_tmp",
    "pg_subtrans",
    "pg_tblspc",
    "pg_twophase",
    "global/pg_control",
    "pg_xact",
    "pg_wal",
)


class LocalRole(StrEnum):
    """What the files say the instance is (Go: ``common.Role``)."""

    MASTER = "master"
    STANDBY = "standby"
    UNDEFINED = "undefined"


#: the entries of :data:`REQUIRED_ENTRIES` directly in PGDATA, and those one level down
_TOP_ENTRIES = frozenset(e for e in REQUIRED_ENTRIES if "/" not in e)
_NESTED_ENTRIES = tuple(e for e in REQUIRED_ENTRIES if "/" in e)


def is_initialized(pgdata: Path) -> bool:
    """PG_VERSION and every required directory/file exist. (Checked several times a
    second by a keeper at rest: one directory listing and a look per nested entry, not a
    ``stat`` per entry.)"""
    base = os.fspath(pgdata)
    try:
        names = os.listdir(base)
    except OSError:
        return False
    return _TOP_ENTRIES.issubset(names) and all(
        os.path.lexists(os.path.join(base, e)) for e in _NESTED_ENTRIES
    )


def data_version(pgdata: Path) -> PgVersion:
    """The major version in PG_VERSION (minor is 0 for 10+)."""
    try:
        data = safefs.read_file(pgdata / "PG_VERSION", limit=4096)
    except OSError as e:
        raise DataDirError(f"failed to read PG_VERSION in {pgdata}: {e.strerror or e}") from None
    if data is None:
        raise DataDirError(f"failed to read PG_VERSION in {pgdata}: no such file")
    text = data.decode(errors="replace")
    first = text.splitlines()[0] if text.strip() else ""
    return parse_version(first)


def local_role(pgdata: Path) -> LocalRole:
    """``undefined`` when not initialized, ``standby`` when standby.signal exists."""
    if not is_initialized(pgdata):
        return LocalRole.UNDEFINED
    if os.path.lexists(os.path.join(os.fspath(pgdata), STANDBY_SIGNAL)):
        return LocalRole.STANDBY
    return LocalRole.MASTER


def oldest_wal_file(pgdata: Path) -> str:
    """The name of the oldest WAL segment in pg_wal, ``""`` if none.

    A segment of another size than 16 MiB raises :class:`WalSegmentSizeError` (the
    sentinel's WAL arithmetic assumes 16 MiB, as Go Stolon does).
    """
    wal_dir = pgdata / "pg_wal"
    for name in sorted(os.listdir(wal_dir)):
        if is_wal_file_name(name):
            size = (wal_dir / name).stat().st_size
            if size != WAL_SEGMENT_SIZE:
                raise WalSegmentSizeError(f"wal file has unsupported size: {size}")
            return name
    return ""


def read_postmaster_pid(pgdata: Path) -> int | None:
    """The pid on the first line of postmaster.pid, or None (no file, or unreadable)."""
    try:
        data = safefs.read_file(pgdata / POSTMASTER_PID, limit=64 * 1024)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DataDirError(f"cannot read {pgdata / POSTMASTER_PID}: {e.strerror or e}") from None
    if data is None:
        return None
    lines = data.decode(errors="replace").splitlines()
    try:
        return int(lines[0].strip()) if lines else None
    except ValueError:
        return None


def write_file_atomic(path: Path, content: str, owner: OSUser, mode: int = 0o600) -> None:
    """Replace ``path`` with ``content`` atomically; the file ends up ``owner``'s, ``mode``
    (link-safe: :func:`stolon.postgres.safefs.write_file_atomic`)."""
    safefs.write_file_atomic(path, content.encode(), owner=owner, mode=mode)


def touch_file(path: Path, owner: OSUser, mode: int = 0o600) -> None:
    """Create ``path`` empty if missing (used for signal files)."""
    if not os.path.lexists(path):
        write_file_atomic(path, "", owner, mode)


def block_alter_system(pgdata: Path, owner: OSUser) -> None:
    """Neutralize postgresql.auto.conf and make ``ALTER SYSTEM`` fail.

    * postgresql.auto.conf becomes a symlink to /dev/null (as in Go Stolon), so whatever
      was there (the ``primary_conninfo`` that ``pg_basebackup -R`` writes, old
      ``ALTER SYSTEM`` values) cannot override the generated configuration.
    * Go Stolon relies on that symlink alone to make ``ALTER SYSTEM`` fail: the server
      fsyncs the target before its rename, and fsync on /dev/null fails with EINVAL
      ("could not fsync file"). With ``fsync = off`` that fsync is skipped, the rename
      replaces the symlink and ``ALTER SYSTEM`` *succeeds*. So an empty directory named
      ``postgresql.auto.conf.tmp`` is also created: ``ALTER SYSTEM`` opens that name with
      ``O_CREAT|O_TRUNC`` before anything else and fails ("could not open file
      ...: Is a directory") whatever the fsync setting. Base backups and pg_rewind skip
      that name.
    """
    safefs.replace_with_symlink(pgdata / AUTO_CONF, os.devnull, owner)
    blocker = pgdata / AUTO_CONF_TMP
    st = safefs.lstat(blocker)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        safefs.unlink(blocker)  # a temp file left by an interrupted ALTER SYSTEM (or a link)
    safefs.make_dir(blocker, owner, 0o700)
    safefs.fsync_dir(pgdata)


def unblock_alter_system(pgdata: Path) -> None:
    """Remove the postgresql.auto.conf symlink (pg_rewind refuses a symlink where the
    source has a file) and the blocking directory; the next start puts them back."""
    st = safefs.lstat(pgdata / AUTO_CONF)
    if st is not None and stat.S_ISLNK(st.st_mode):
        safefs.unlink(pgdata / AUTO_CONF)
    st = safefs.lstat(pgdata / AUTO_CONF_TMP)
    if st is not None and stat.S_ISDIR(st.st_mode):
        safefs.remove_tree(pgdata / AUTO_CONF_TMP)


def write_config_files(
    pgdata: Path,
    owner: OSUser,
    *,
    parameters: Mapping[str, str],
    hba: Sequence[str],
    recovery: RecoveryConfig,
    tmp_merged: bool = False,
) -> None:
    """Write postgresql.conf (or the temporary merged conf), pg_hba.conf and signal files.

    With ``tmp_merged`` the parameters go to ``stolon-temp-postgresql.conf``, which
    first includes the existing postgresql.conf (if any): used for the first start of an
    existing or freshly initialized instance, whose own config must stay untouched.
    """
    conf_name = TMP_CONF_NAME if tmp_merged else POSTGRESQL_CONF
    include = POSTGRESQL_CONF if tmp_merged and (pgdata / POSTGRESQL_CONF).exists() else None
    text = render_postgresql_conf(parameters, recovery_parameters=recovery.conf_parameters, include=include)
    write_file_atomic(pgdata / conf_name, text, owner)
    write_file_atomic(pgdata / PG_HBA_CONF, render_pg_hba(hba), owner)
    signal = recovery.mode.signal_file
    if signal:
        touch_file(pgdata / signal, owner)


def create_data_dir(pgdata: Path, owner: OSUser) -> None:
    """Create PGDATA empty (0700, ``owner``'s); an existing non-empty one is an error, and
    so is a symbolic link (:class:`~stolon.postgres.safefs.UnsafePathError`)."""
    ensure_reachable(pgdata.parent, owner)
    if safefs.list_dir(pgdata):
        raise DataDirError(f"data directory {pgdata} exists and is not empty")
    ensure_dir(pgdata, owner, 0o700)


def remove_data_dir(pgdata: Path) -> None:
    """Delete PGDATA and everything in it (a missing one is fine); nothing inside is
    followed, and a PGDATA that is a symbolic link is refused."""
    try:
        safefs.remove_tree(pgdata)
    except OSError as e:
        raise DataDirError(f"cannot remove {pgdata}: {e.strerror or e}") from None
