"""Starting a child that dies with this process (Linux ``PR_SET_PDEATHSIG``).

Why: Go Stolon's keeper starts the postmaster as its child, and after a ``kill -9`` of
the keeper that postmaster keeps running, unmanaged: a primary nobody fences. Here the
child asks the kernel, between ``fork`` and ``exec``, to receive a signal when its parent
dies; ``prctl(PR_SET_PDEATHSIG)`` survives ``exec`` of a normal (non set-uid) binary.

Which signal, for a postmaster:

* SIGTERM is *smart* shutdown: it waits for every client to disconnect, so the primary
  would go on serving the sessions it has. Wrong.
* SIGINT is *fast* shutdown: new connections are refused at once, running transactions
  are rolled back and sessions ended, the WAL senders flush what the standbys have not yet
  received, then a shutdown checkpoint is written. No crash recovery at the next start.
* SIGQUIT is *immediate* shutdown: everything exits at once, the next start does crash
  recovery and asynchronous standbys may miss the last WAL.

We use SIGINT: writes stop as soon as the signal arrives either way, and the fast path also
ships the tail of the WAL to the standbys, which helps the failover that follows. A
postmaster still busy with its shutdown checkpoint when the next keeper starts is stopped by
:meth:`~stolon.postgres.instance.Instance.stop_stale_postmaster` (fast, then immediate).

Pitfalls handled:

* The signal fires when the *thread* that forked the child exits, not the process. All
  tied children are therefore forked by one daemon thread owned by this module (started on
  first use, alive until the process ends), whatever thread calls :func:`spawn_tied`.
  Callers need not care which thread they are on.
* The kernel clears the setting on any change of the child's uid/gid; Python switches the
  user (``user=``/``group=``) *before* running ``preexec_fn``, and the ``prctl`` is done
  in ``preexec_fn``, so it sticks.
* If the parent died between ``fork`` and ``prctl`` no signal would come: the child checks
  ``getppid()`` after the ``prctl`` and gives up instead of running unmanaged.
* ``prctl`` is resolved through ctypes before forking, so the child only calls it (no
  library loading, no imports) between fork and exec.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
#: fast shutdown, see the module docstring
POSTMASTER_PDEATHSIG = signal.SIGINT

_PrctlFn = Callable[[int, int, int, int, int], int]
_prctl_fn: _PrctlFn | None = None
_prctl_lock = threading.Lock()


def pdeathsig_supported() -> bool:
    return sys.platform.startswith("linux")


def _prctl() -> _PrctlFn:
    global _prctl_fn
    with _prctl_lock:
        if _prctl_fn is None:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.prctl
            fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
            fn.argtypes += [ctypes.c_ulong]
            fn.restype = ctypes.c_int
            _prctl_fn = fn
        return _prctl_fn


def _preexec_setting_pdeathsig(sig: int, parent_pid: int) -> Callable[[], None]:
    prctl = _prctl()  # resolved here, before the fork

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:
            raise RuntimeError("parent exited before the child could be tied to it")

    return preexec


class _ForkerThread:
    """One long-lived daemon thread that forks every tied child (see module docstring)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stolon-postgres-forker", daemon=True)
                self._thread.start()
        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut.result()

    def _run(self) -> None:
        while True:
            fn, fut = self._queue.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)


_forker = _ForkerThread()


def spawn_tied(
    argv: Sequence[str],
    *,
    death_signal: int = POSTMASTER_PDEATHSIG,
    **popen_kwargs: Any,
) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen_kwargs)``, the child getting ``death_signal`` when
    this process dies. ``preexec_fn`` must not be given. Forked by the module's thread."""
    if "preexec_fn" in popen_kwargs:
        raise ValueError("spawn_tied sets preexec_fn itself")
    if not pdeathsig_supported():
        log.warning("PR_SET_PDEATHSIG is Linux-only: the child will outlive this process")
        return subprocess.Popen(list(argv), **popen_kwargs)
    preexec = _preexec_setting_pdeathsig(int(death_signal), os.getpid())

    def spawn() -> subprocess.Popen[bytes]:
        # preexec only calls a pre-resolved prctl and getppid: no locks, imports or I/O
        return subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kwargs)  # noqa: PLW1509

    proc: subprocess.Popen[bytes] = _forker.call(spawn)
    return proc
