"""Test servers (etcd, moto's S3) that die with the test process even on SIGKILL.

:func:`die_with_parent_preexec` gives the ``preexec_fn`` for ``subprocess.Popen`` that sets
Linux ``PR_SET_PDEATHSIG`` (SIGKILL) in the child, or ``None`` where that is not safe:

* the signal fires when the *thread* that forked the child exits, not the process, so it
  is set only for children forked from the main thread;
* off Linux, or where ``prctl`` cannot be found, there is nothing to set.

``prctl`` is resolved through ctypes in the parent, before the fork: the child only calls
it between fork and exec (no library loading). Standard library only, so the plugins' test
support that uses it still imports without their tools installed.

:mod:`stolon.postgres.pdeathsig` is the keeper's version for the postmaster (any thread,
through a forker thread of its own, and a chosen signal); this one keeps the test servers'
simpler rule.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
_prctl: Any = None


def _load_prctl() -> Any:
    """prctl(2), resolved once in the parent; ``None`` where there is none."""
    global _prctl
    if _prctl is None and sys.platform == "linux":
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    return _prctl or None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    if _prctl:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def die_with_parent_preexec() -> Callable[[], None] | None:
    """``preexec_fn`` making the child get SIGKILL when this process dies, or ``None`` when
    called off the main thread or where ``prctl`` is not available."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return _die_with_parent if _load_prctl() is not None else None
