"""stolon.testing.procstat: CPU of a process tree counts living and reaped children once,
and ``exclude`` cuts a subtree off (what benchmarks/cost.py relies on to measure a keeper
without its PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys

from stolon.testing import procstat

#: a child that burns this much CPU (measured by itself, not by a clock) before going on
BURN = 0.3
BURN_CODE = (
    "import sys, time\n"
    f"while time.process_time() < {BURN}: pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.read()\n"
)
TICK = 1.0 / procstat.CLK_TCK


def test_read_stat_of_ourselves() -> None:
    st = procstat.read_stat(os.getpid())
    assert st is not None
    assert st.ppid == os.getppid()
    assert st.rss_bytes > 0
    assert procstat.read_stat(2**22 + 1) is None  # above pid_max: no such process


def test_reaped_child_cpu_counts_in_the_parents_tree() -> None:
    before = procstat.snapshot()
    subprocess.run([sys.executable, "-c", BURN_CODE], input=b"", check=True, capture_output=True)
    after = procstat.snapshot()
    used = procstat.tree_cpu_seconds(after, os.getpid()) - procstat.tree_cpu_seconds(before, os.getpid())
    assert used >= BURN - 2 * TICK


def test_living_child_counts_unless_excluded() -> None:
    child = subprocess.Popen([sys.executable, "-c", BURN_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"burnt\n"
        snap = procstat.snapshot()
        assert child.pid in procstat.tree_pids(snap, os.getpid())
        assert child.pid not in procstat.tree_pids(snap, os.getpid(), exclude=[child.pid])
        whole = procstat.tree_cpu_seconds(snap, os.getpid())
        without = procstat.tree_cpu_seconds(snap, os.getpid(), exclude=[child.pid])
        assert whole - without >= BURN - 2 * TICK
        assert (procstat.pss_bytes(child.pid) or 0) > 0
    finally:
        child.communicate(b"")
