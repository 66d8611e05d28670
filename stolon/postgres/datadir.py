"""Files in the data directory (PGDATA): layout checks and the files the keeper writes.

Everything written here is owned by the PostgreSQL OS user (we may be root), replaced
atomically (temp file in the same directory, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path

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


def is_initialized(pgdata: Path) -> bool:
    """PG_VERSION and every required directory/file exist."""
    return all(os.path.lexists(pgdata / e) for e in REQUIRED_ENTRIES)


def data_version(pgdata: Path) -> PgVersion:
    """The major version in PG_VERSION (minor is 0 for 10+)."""
    try:
        text = (pgdata / "PG_VERSION").read_text()
    except OSError as e:
        raise DataDirError(f"failed to read PG_VERSION in {pgdata}: {e.strerror}") from None
    first = text.splitlines()[0] if text.strip() else ""
    return parse_version(first)


def local_role(pgdata: Path) -> LocalRole:
    """``undefined`` when not initialized, ``standby`` when standby.signal exists."""
    if not is_initialized(pgdata):
        return LocalRole.UNDEFINED
    if os.path.lexists(pgdata / STANDBY_SIGNAL):
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
        with open(pgdata / POSTMASTER_PID) as f:
            first = f.readline().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DataDirError(f"cannot read {pgdata / POSTMASTER_PID}: {e.strerror}") from None
    try:
        return int(first)
    except ValueError:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, content: str, owner: OSUser, mode: int = 0o600) -> None:
    """Replace ``path`` with ``content`` atomically; the file ends up ``owner``'s, ``mode``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        try:
            os.write(fd, content.encode())
            os.fsync(fd)
            os.fchmod(fd, mode)
            if owner.switches:
                os.fchown(fd, owner.uid, owner.gid)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
    path = pgdata / AUTO_CONF
    if not (path.is_symlink() and os.readlink(path) == os.devnull):
        tmp = pgdata / f".{AUTO_CONF}.stolon-link"
        tmp.unlink(missing_ok=True)
        os.symlink(os.devnull, tmp)
        owner.chown(tmp, follow_symlinks=False)
        os.replace(tmp, path)
    blocker = pgdata / AUTO_CONF_TMP
    if not blocker.is_dir() or blocker.is_symlink():
        if os.path.lexists(blocker):
            blocker.unlink()  # a temp file left by an interrupted ALTER SYSTEM
        blocker.mkdir(mode=0o700)
        owner.chown(blocker)
    _fsync_dir(pgdata)


def unblock_alter_system(pgdata: Path) -> None:
    """Remove the postgresql.auto.conf symlink (pg_rewind refuses a symlink where the
    source has a file) and the blocking directory; the next start puts them back."""
    path = pgdata / AUTO_CONF
    if path.is_symlink():
        path.unlink()
    blocker = pgdata / AUTO_CONF_TMP
    if blocker.is_dir() and not blocker.is_symlink():
        shutil.rmtree(blocker)


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
    """Create PGDATA empty (0700, ``owner``'s); an existing non-empty one is an error."""
    ensure_reachable(pgdata.parent, owner)
    if pgdata.exists() and any(pgdata.iterdir()):
        raise DataDirError(f"data directory {pgdata} exists and is not empty")
    ensure_dir(pgdata, owner, 0o700)


def remove_data_dir(pgdata: Path) -> None:
    """Delete PGDATA and everything in it (a missing one is fine)."""
    try:
        shutil.rmtree(pgdata)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise DataDirError(f"cannot remove {pgdata}: {e.strerror}") from None
