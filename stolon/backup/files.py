"""Private files and directories for backup methods, written by the keeper (often root) in
directories the PostgreSQL OS user owns: never follow a link there.

A method keeps its tool's configuration (a WAL-G JSON file, a pgbackrest.conf, credentials)
in :attr:`stolon.backup.base.BackupContext.work_dir`. The archive and restore commands run
as PostgreSQL's OS user and read them, so they belong to that user, mode 0600; the
directory is 0700. Credentials come from files on the host named in the settings
(:func:`read_env_file`), never from the cluster data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stolon.backup.base import BackupConfigError, BackupError
from stolon.postgres import safefs
from stolon.postgres.errors import PostgresError
from stolon.postgres.runas import OSUser

_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def ensure_private_dir(path: Path, owner: OSUser) -> None:
    """Create directory ``path`` (its parent must exist) or check the existing one: a real
    directory (not a link), ``owner``'s, mode 0700. No link the PostgreSQL user could plant
    is followed on the way (:func:`stolon.postgres.safefs.make_dir`)."""
    try:
        safefs.make_dir(path, owner, 0o700)
    except (OSError, PostgresError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise BackupError(f"{path} is not a directory we can use ({detail}): remove it") from None


def write_private(path: Path, content: str | bytes, owner: OSUser, mode: int = 0o600) -> None:
    """Replace ``path`` atomically with ``content``, mode ``mode``, ``owner``'s.

    The parent directory is opened without following a link, the temporary file is created
    with ``O_EXCL|O_NOFOLLOW`` inside it and renamed over ``path`` (a link there is replaced,
    not followed). Unchanged content is not rewritten.
    """
    data = content.encode() if isinstance(content, str) else content
    try:
        parent = safefs.open_dir(path.parent, follow_last=False)  # no untrusted link on the way
    except PostgresError as e:
        raise BackupError(str(e)) from None
    try:
        if _same_content(parent, path.name, data, mode, owner):
            return
        tmp = f".{path.name}.{os.getpid()}.tmp"
        try:
            os.unlink(tmp, dir_fd=parent)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=parent)
        try:
            try:
                if owner.switches:
                    os.fchown(fd, owner.uid, owner.gid)
                os.fchmod(fd, mode)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=parent)
            except FileNotFoundError:
                pass
            raise
        os.fsync(parent)
    finally:
        os.close(parent)


def _same_content(dir_fd: int, name: str, data: bytes, mode: int, owner: OSUser) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
            return False
        if owner.switches and (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
            return False
        if st.st_size != len(data):
            return False
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read() == data
    finally:
        os.close(fd)


def read_env_file(path: str, what: str, *, owner: OSUser) -> dict[str, str]:
    """``KEY=VALUE`` lines from a credentials file on this host (``#`` comments and blank
    lines skipped, optional ``export``, values may be single- or double-quoted).

    The file must belong to ``owner``, the OS user the backup tools run as (PostgreSQL's),
    and not be readable by group or others (like libpq's ``.pgpass``). Its values end up in
    files of that user anyway; a file of anyone else (a root-only file named in the spec by
    whoever can write the store) is refused, so the spec can't make the keeper hand it out.
    ``what`` names the setting in errors (``backup.settings.envFile``).
    """
    p = Path(path)
    try:
        # a regular file only (a FIFO named here must not block the keeper), no link the
        # PostgreSQL user could have planted on the way
        fd = safefs.open_file(p, follow_last=True)
    except OSError as e:
        raise BackupConfigError(f"{what}: cannot read {path}: {e.strerror}") from None
    except PostgresError as e:
        raise BackupConfigError(f"{what}: cannot read {path}: {e}") from None
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != owner.uid:
            raise BackupConfigError(
                f"{what}: {path} belongs to uid {st.st_uid}, not to {owner.name!r} who runs the backup"
                f" tools: chown {owner.name} {path}"
            )
        if st.st_mode & 0o077:
            raise BackupConfigError(
                f"{what}: {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o}):"
                f" chmod 600 {path}"
            )
        text = f.read()
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not set(key) <= _ENV_NAME_CHARS or key[0].isdigit():
            raise BackupConfigError(f"{what}: {path} line {n} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out
