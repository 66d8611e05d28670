"""Wake on changes to named files of one directory: Linux inotify through ctypes.

The embedded store's writers touch one small file per kind of change after each commit
(``<db>-notify-<kind>``, :mod:`stolon.store.embedded`); a watch waits here for the files of
the kinds it asked for instead of polling SQLite 40 times a second. Only the touch after the
commit wakes a watch, so the commit is visible when it looks (SQLite's own WAL writes come
before the commit is visible and are not watched).

The directory is watched, not the files: a file created later (the first write of a kind)
is seen (``IN_CREATE``), and no symbolic link is followed. An overflowed event queue or a
removed directory counts as a change (the caller then reads the store).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from collections.abc import Iterable

IN_ATTRIB = 0x00000004
IN_CREATE = 0x00000100
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            raise OSError("inotify is not available on this system")
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        _libc = libc
    return _libc


class DirectoryNotifier:
    """Waits for an attribute change, creation or rename-in of one of ``names`` in
    ``directory``. Raises OSError when inotify is unavailable (not Linux, the per-user
    instance limit reached): the caller then polls."""

    def __init__(self, directory: str | os.PathLike[str], names: Iterable[str]) -> None:
        self.names = frozenset(os.fsencode(n) for n in names)
        libc = _lib()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._fd = fd
        mask = IN_ATTRIB | IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW
        if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {os.fspath(directory)!r}: {os.strerror(err)}")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._waiting = 0
        self._closed = False
        #: the directory's watch is gone (directory removed): every wait reports a change
        self.lost = False

    def wait(self, timeout: float) -> bool:
        """True when one of the files changed since the last call (all queued events are
        consumed), False on timeout or after :meth:`close`."""
        with self._lock:
            if self._closed:
                return False
            self._waiting += 1
        try:
            if self.lost:
                return True
            if self._drain():
                return True
            # Events for other files of the directory (the other kinds' signals) are
            # consumed here and the wait goes on: they must not cost the caller a look at
            # the store each.
            deadline = time.monotonic() + max(0.0, timeout)
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._fd, self._wake_r], [], [], max(0.0, left))
                if self.is_closed():
                    return False
                if self._fd in ready and self._drain():
                    return True
                if not ready or left <= 0:
                    return False
        finally:
            with self._lock:
                self._waiting -= 1
                if self.is_closed() and self._waiting == 0:
                    self._release()

    def is_closed(self) -> bool:
        return self._closed

    def _drain(self) -> bool:
        hit = False
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return hit
            off = 0
            while off + _EVENT.size <= len(buf):
                _wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
                name = buf[off + _EVENT.size : off + _EVENT.size + length].rstrip(b"\0")
                off += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    hit = True
                elif mask & IN_IGNORED:
                    self.lost = hit = True
                elif name in self.names:
                    hit = True

    def close(self) -> None:
        """Ends a wait in progress (it returns False) and releases the descriptors."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            if self._waiting == 0:
                self._release()

    def _release(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def touch(path: str) -> None:
    """Wake the notifiers watching ``path``'s name: update its times, creating it (mode
    0600, empty) when missing. No symbolic link is followed; failures are ignored (watchers
    fall back to their periodic check)."""
    try:
        os.utime(path, follow_symlinks=False)
        return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        try:
            os.utime(path, follow_symlinks=False)
        except OSError:
            pass
        return
    except OSError:
        return
    os.close(fd)
