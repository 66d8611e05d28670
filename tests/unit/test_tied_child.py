"""stolon.testing.tied_child: the test servers' children get SIGKILL as their parent-death
signal when forked from the main thread, and nothing is set from another thread."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from stolon.testing.tied_child import die_with_parent_preexec

# the child reads its own parent-death signal back (prctl PR_GET_PDEATHSIG = 2)
_READ_PDEATHSIG = (
    "import ctypes; s = ctypes.c_int(-1);"
    " ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(s), 0, 0, 0); print(s.value)"
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")


def _child_pdeathsig(preexec: Callable[[], None] | None) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _READ_PDEATHSIG],
        preexec_fn=preexec,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(out.stdout)


def test_a_child_forked_from_the_main_thread_dies_with_its_parent() -> None:
    preexec = die_with_parent_preexec()
    assert preexec is not None
    assert _child_pdeathsig(preexec) == int(signal.SIGKILL)


def test_nothing_is_set_from_another_thread() -> None:
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(die_with_parent_preexec()))
    t.start()
    t.join()
    assert got == [None]
    assert _child_pdeathsig(None) == 0
