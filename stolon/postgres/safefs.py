"""Link-safe file operations for a process that may be root, in directories others can write.

The keeper runs as root; PGDATA, its parent (the keeper data directory) and the socket
directory belong to the PostgreSQL OS user, and so does anything a restore command or
PostgreSQL itself puts there. If root followed a symbolic link that user planted (or created
a file through it, or chowned a directory it could swap for a link between ``mkdir`` and
``chown``), the ``postgres`` account would get root. So every operation here:

* resolves the *directory* it works in component by component from ``/`` with ``O_PATH``
  file descriptors, following a symbolic link only when the directory holding it can be
  changed by nobody but root or ourselves (:func:`may_be_replaced`); a link the
  untrusted user could have made or swapped is refused with :class:`UnsafePathError`;
* acts on the last component relative to that directory's descriptor and never follows a
  link there (``O_NOFOLLOW``, ``AT_SYMLINK_NOFOLLOW``, ``O_EXCL`` for new files);
* changes owner and mode through a descriptor of the object it opened (``fchown``,
  ``fchmod``), never by path, so a rename race cannot redirect it;
* opens with ``O_NONBLOCK`` and checks the file type before reading, so a FIFO or a device
  planted where a file should be cannot block or feed root, and reads are size-bounded.

A process that is not root gets the same code paths; nothing here needs privileges.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from stolon.postgres.errors import DataDirError

if TYPE_CHECKING:
    from stolon.postgres.runas import OSUser

#: Symbolic links followed while resolving one path (the kernel's own limit).
MAX_SYMLINKS = 40
#: How deep :func:`give_tree_to` descends (a PGDATA is a few levels deep; the bound keeps
#: the number of open descriptors small whatever a restore left behind).
MAX_TREE_DEPTH = 64
#: Default bound of :func:`read_file`.
DEFAULT_READ_LIMIT = 1 << 20

_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_O_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePathError(DataDirError):
    """A path would make us follow a link, or use a file, that an untrusted user controls."""


def _trusted_uids() -> frozenset[int]:
    return frozenset({0, os.geteuid()})


def may_be_replaced(dir_st: os.stat_result, entry_st: os.stat_result) -> bool:
    """Whether somebody other than root and ourselves can replace ``entry`` in that directory.

    True when the directory belongs to another user, or others may write it (group ``root``
    excepted) and it is not sticky; in a sticky directory (``/tmp``) only an entry owned by
    another user can be replaced. ACLs are not considered.
    """
    trusted = _trusted_uids()
    if dir_st.st_uid not in trusted:
        return True
    mode = dir_st.st_mode
    writable_by_others = bool(mode & stat.S_IWOTH) or (bool(mode & stat.S_IWGRP) and dir_st.st_gid != 0)
    if not writable_by_others:
        return False
    if mode & stat.S_ISVTX:
        return entry_st.st_uid not in trusted
    return True


def _split(path: str | os.PathLike[str]) -> list[str]:
    return [p for p in os.path.abspath(os.fspath(path)).split("/") if p]


def _resolve(path: str | os.PathLike[str], *, follow_last: bool) -> tuple[int, str]:
    """An ``O_PATH`` descriptor of the directory that holds ``path``'s last component, and
    that component's name, resolved as the module docstring says.

    With ``follow_last`` a trusted link in the last position is followed too. For ``/``
    itself the name is ``"."``. The caller closes the descriptor.
    """
    shown = os.fspath(path)
    parts = _split(path)
    stack = [os.open("/", _O_DIR)]
    hops = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            fd = stack[-1]
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if parts:
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), shown) from None
                st = None
            last = not parts
            if st is not None and stat.S_ISLNK(st.st_mode) and (not last or follow_last):
                if may_be_replaced(os.fstat(fd), st):
                    raise UnsafePathError(
                        f"{shown}: {name!r} is a symbolic link in a directory that a user other than"
                        " root can change: not following it (give the real path)"
                    )
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise UnsafePathError(f"{shown}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    for extra in stack[1:]:
                        os.close(extra)
                    del stack[1:]
                parts[:0] = [p for p in target.split("/") if p]
                if not parts:  # a link to "/"
                    name = "."
                    break
                continue
            if last:
                stack_top = stack.pop()
                return stack_top, name
            if st is None or not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"{name!r} is not a directory", shown)
            stack.append(_open_subdir_path(fd, name, shown))
        # the path was "/" (or resolved to it)
        top = stack.pop()
        return top, "."
    finally:
        for fd in stack:
            os.close(fd)


def _open_subdir_path(dir_fd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=dir_fd)
    except NotADirectoryError:
        raise UnsafePathError(f"{shown}: {name!r} changed while it was being opened") from None


@contextmanager
def parent_of(path: str | os.PathLike[str], *, follow_last: bool = False) -> Iterator[tuple[int, str]]:
    """``(dir_fd, name)`` for acting on ``path`` relative to its safely resolved parent."""
    fd, name = _resolve(path, follow_last=follow_last)
    try:
        yield fd, name
    finally:
        os.close(fd)


def open_dir(path: str | os.PathLike[str], *, follow_last: bool = True) -> int:
    """A read-only descriptor of directory ``path`` (``O_RDONLY``, usable for ``fchown``,
    ``fsync``, ``scandir`` and as a ``dir_fd``). Without ``follow_last`` a link in the last
    position is refused even in a trusted directory."""
    with parent_of(path, follow_last=follow_last) as (pfd, name):
        return _open_dir_at(pfd, name, os.fspath(path))


def _open_dir_at(pfd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | _O_SAFE, dir_fd=pfd)
    except NotADirectoryError:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{shown} is a symbolic link: refusing to follow it") from None
        raise DataDirError(f"{shown} exists and is not a directory") from None


@contextmanager
def opened_dir(path: str | os.PathLike[str], *, follow_last: bool = True) -> Iterator[int]:
    fd = open_dir(path, follow_last=follow_last)
    try:
        yield fd
    finally:
        os.close(fd)


def _chown_fd(fd: int, owner: OSUser | None) -> None:
    if owner is not None and owner.switches:
        os.fchown(fd, owner.uid, owner.gid)


def make_dir(
    path: str | os.PathLike[str], owner: OSUser | None, mode: int = 0o700, *, follow_last: bool = False
) -> None:
    """Create directory ``path`` (not its parents) if missing, then make it ``owner``'s
    (when we are root) with ``mode``, through a descriptor of the directory itself.

    A link at ``path`` is refused unless ``follow_last`` and it is a trusted one.
    """
    with parent_of(path, follow_last=follow_last) as (pfd, name):
        try:
            os.mkdir(name, mode, dir_fd=pfd)
        except FileExistsError:
            pass
        fd = _open_dir_at(pfd, name, os.fspath(path))
        try:
            _chown_fd(fd, owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def _fsync_dir_fd(pfd: int) -> None:
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    with opened_dir(path) as fd:
        os.fsync(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_file_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    owner: OSUser | None = None,
    mode: int = 0o600,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``data`` atomically: a new temp file (``O_EXCL|O_NOFOLLOW``) in
    the same directory, written, fsynced, given ``mode`` and ``owner`` through its
    descriptor, renamed over ``path`` (a link there is replaced, not followed), then the
    directory is fsynced. Without ``durable`` nothing is fsynced (readers still see the old
    or the new content, never a mix; a crash may leave either, or an empty file)."""
    with parent_of(path) as (pfd, name):
        if name == ".":
            raise DataDirError(f"{os.fspath(path)} is a directory")
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_SAFE, 0o600, dir_fd=pfd)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, mode)
                _chown_fd(fd, owner)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=pfd)
            except FileNotFoundError:
                pass
            raise
        if durable:
            _fsync_dir_fd(pfd)


def open_file(
    path: str | os.PathLike[str],
    flags: int = os.O_RDONLY,
    mode: int = 0o600,
    *,
    follow_last: bool = False,
) -> int:
    """``os.open`` of a *regular* file: a link at ``path`` is refused (unless ``follow_last``
    and it is a trusted one), a FIFO or device neither blocks nor is used."""
    shown = os.fspath(path)
    with parent_of(path, follow_last=follow_last) as (pfd, name):
        try:
            fd = os.open(name, flags | _O_SAFE, mode, dir_fd=pfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafePathError(f"{shown} is a symbolic link: refusing to follow it") from None
            if e.filename is None or e.filename == name:
                e.filename = shown
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{shown} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int, shown: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(65536, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise DataDirError(f"{shown} is larger than {limit} bytes")
    return b"".join(chunks)


def read_file(
    path: str | os.PathLike[str], *, limit: int = DEFAULT_READ_LIMIT, follow_last: bool = False
) -> bytes | None:
    """The content of regular file ``path`` (at most ``limit`` bytes), None if it is missing."""
    try:
        fd = open_file(path, follow_last=follow_last)
    except FileNotFoundError:
        return None
    try:
        return read_fd(fd, limit, os.fspath(path))
    finally:
        os.close(fd)


def read_tail(path: str | os.PathLike[str], size: int) -> bytes:
    """The last ``size`` bytes of regular file ``path`` (a log file)."""
    fd = open_file(path)
    try:
        end = os.fstat(fd).st_size
        os.lseek(fd, max(0, end - size), os.SEEK_SET)
        return read_fd(fd, size, os.fspath(path))
    finally:
        os.close(fd)


def lstat(path: str | os.PathLike[str]) -> os.stat_result | None:
    """``lstat`` of ``path`` resolved safely, None if missing."""
    try:
        with parent_of(path) as (pfd, name):
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def replace_with_symlink(path: str | os.PathLike[str], target: str, owner: OSUser | None) -> None:
    """Make ``path`` a symbolic link to ``target`` (atomically; the link itself is
    ``owner``'s). Whatever was at ``path`` is replaced, never followed."""
    with parent_of(path) as (pfd, name):
        try:
            if os.readlink(name, dir_fd=pfd) == target:
                return
        except (FileNotFoundError, OSError):
            pass
        tmp = f".{name}.{secrets.token_hex(6)}.link"
        os.symlink(target, tmp, dir_fd=pfd)
        try:
            if owner is not None and owner.switches:
                os.chown(tmp, owner.uid, owner.gid, dir_fd=pfd, follow_symlinks=False)
            os.replace(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=pfd)
            except FileNotFoundError:
                pass
            raise


def unlink(path: str | os.PathLike[str], *, missing_ok: bool = True) -> None:
    """Remove the file or link at ``path`` (not a directory)."""
    try:
        with parent_of(path) as (pfd, name):
            os.unlink(name, dir_fd=pfd)
    except FileNotFoundError:
        if not missing_ok:
            raise


def remove_tree(path: str | os.PathLike[str], *, link_ok: bool = False) -> None:
    """Delete directory ``path`` and everything in it; missing is fine.

    Links inside are removed, never followed (``shutil.rmtree``'s descriptor-based walk);
    a link *at* ``path`` is refused unless ``link_ok`` (then only the link is removed).
    """
    shown = os.fspath(path)
    try:
        with parent_of(path) as (pfd, name):
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode):
                if not link_ok:
                    raise UnsafePathError(f"{shown} is a symbolic link: refusing to delete through it")
                os.unlink(name, dir_fd=pfd)
            elif stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=pfd)
            else:
                os.unlink(name, dir_fd=pfd)
    except FileNotFoundError:
        return


def list_dir(path: str | os.PathLike[str]) -> list[str] | None:
    """The names in directory ``path`` (a link there is refused), None if it is missing."""
    try:
        fd = open_dir(path, follow_last=False)
    except FileNotFoundError:
        return None
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def give_tree_to(path: str | os.PathLike[str], user: OSUser, *, top_mode: int = 0o700) -> None:
    """Make directory ``path`` and everything under it ``user``'s; ``path`` gets ``top_mode``.

    For a tree somebody else filled (a restore into PGDATA): ``path`` itself must not be a
    symbolic link (:class:`UnsafePathError`); inside, links are given to ``user`` themselves
    and never followed, directories are opened with ``O_NOFOLLOW`` and changed through their
    descriptor, other files through an ``O_PATH`` descriptor checked first, and a file with
    several hard links that ``user`` does not own already is refused (it may be a link to a
    file elsewhere on the system). Setuid/setgid bits are cleared by the kernel on chown.
    Without root only ``top_mode`` is applied (the files are ours already).
    """
    shown = os.fspath(path)
    top = open_dir(path, follow_last=False)
    try:
        if user.switches:
            os.fchown(top, user.uid, user.gid)
        os.fchmod(top, top_mode)
        if not user.switches:
            return
        _give_children(top, shown, user)
    finally:
        os.close(top)


def _give_children(top: int, shown: str, user: OSUser) -> None:
    # Depth-first with one open descriptor per level: (dir fd, its path, its entries).
    stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = []

    def push(fd: int, where: str) -> None:
        if len(stack) >= MAX_TREE_DEPTH:
            os.close(fd)
            raise UnsafePathError(f"{where}: more than {MAX_TREE_DEPTH} directory levels under {shown}")
        stack.append((fd, where, iter(list(os.scandir(fd)))))

    push(os.dup(top), shown)
    try:
        while stack:
            fd, where, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                os.close(fd)
                stack.pop()
                continue
            child = f"{where}/{entry.name}"
            st = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                try:
                    cfd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | _O_SAFE, dir_fd=fd)
                except NotADirectoryError:
                    raise UnsafePathError(f"{child} changed while its owner was being fixed") from None
                try:
                    os.fchown(cfd, user.uid, user.gid)
                except BaseException:
                    os.close(cfd)
                    raise
                push(cfd, child)
            elif stat.S_ISLNK(st.st_mode):
                os.chown(entry.name, user.uid, user.gid, dir_fd=fd, follow_symlinks=False)
            else:
                _give_file(fd, entry.name, child, user)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _give_file(dir_fd: int, name: str, shown: str, user: OSUser) -> None:
    pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(pfd)
        if stat.S_ISLNK(st.st_mode):  # swapped for a link since it was listed
            os.chown(name, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
            return
        if stat.S_ISDIR(st.st_mode):
            raise UnsafePathError(f"{shown} changed while its owner was being fixed")
        if st.st_uid == user.uid and st.st_gid == user.gid:
            return
        if st.st_nlink > 1:
            raise UnsafePathError(
                f"{shown} has {st.st_nlink} hard links and belongs to uid {st.st_uid}: it may be a"
                f" file from elsewhere on the system; not giving it to {user.name!r} (remove it or fix it by hand)"
            )
        # chown through the descriptor: the magic link names exactly the inode checked above
        os.chown(f"/proc/self/fd/{pfd}", user.uid, user.gid)
    finally:
        os.close(pfd)


__all__ = [
    "UnsafePathError",
    "fsync_dir",
    "give_tree_to",
    "list_dir",
    "lstat",
    "make_dir",
    "may_be_replaced",
    "open_dir",
    "open_file",
    "opened_dir",
    "parent_of",
    "read_file",
    "read_tail",
    "remove_tree",
    "replace_with_symlink",
    "unlink",
    "write_file_atomic",
]
