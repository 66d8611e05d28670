"""CPU time and memory of processes and process trees, read from ``/proc`` (Linux only).

For the cost benchmark (``benchmarks/cost.py``): a daemon's CPU over a window is the
difference of two :func:`snapshot` readings. A process tree's CPU time counts its own
``utime + stime``, what its reaped children used (``cutime + cstime``: a short-lived
``pg_ctl`` or a PostgreSQL backend that came and went) and, recursively, its living children;
so a child that exits inside the window moves from "living" to "reaped" without being counted
twice or lost. ``exclude`` cuts a subtree off (the keeper's postmaster is its child, and is
measured on its own).

Memory: RSS of one process; for a PostgreSQL tree, RSS summed over processes counts the
shared buffers once per backend, so :func:`tree_pss_bytes` sums PSS (each shared page divided
among the processes mapping it) from ``smaps_rollup`` instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    #: seconds of CPU: the process's own (user + system) and its reaped children's
    own_cpu: float
    reaped_cpu: float
    rss_bytes: int


@dataclass
class Snapshot:
    """Every process at one moment (``at``: monotonic seconds)."""

    at: float
    procs: dict[int, ProcStat]
    children: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.children:
            for st in self.procs.values():
                self.children.setdefault(st.ppid, []).append(st.pid)


def read_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` parsed, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    rest = raw[raw.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state): field k of proc(5) is rest[k - 3]
    try:
        return ProcStat(
            pid=pid,
            ppid=int(rest[1]),
            own_cpu=(int(rest[11]) + int(rest[12])) / CLK_TCK,
            reaped_cpu=(int(rest[13]) + int(rest[14])) / CLK_TCK,
            rss_bytes=int(rest[21]) * PAGE_SIZE,
        )
    except (IndexError, ValueError):
        return None


def snapshot() -> Snapshot:
    procs: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                procs[st.pid] = st
    return Snapshot(time.monotonic(), procs)


def tree_pids(snap: Snapshot, root: int, exclude: Iterable[int] = ()) -> list[int]:
    """``root`` and its descendants in ``snap``, without the subtrees rooted at ``exclude``."""
    cut = set(exclude)
    if root not in snap.procs or root in cut:
        return []
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(c for c in snap.children.get(pid, ()) if c not in cut)
    return out


def tree_cpu_seconds(snap: Snapshot, root: int, exclude: Iterable[int] = ()) -> float:
    """CPU seconds used so far by the tree at ``root`` (living members and reaped children)."""
    return sum(snap.procs[p].own_cpu + snap.procs[p].reaped_cpu for p in tree_pids(snap, root, exclude))


def cpu_percent(before: Snapshot, after: Snapshot, root: int, exclude: Iterable[int] = ()) -> float | None:
    """Percent of one core the tree used between two snapshots; None if ``root`` is not in both."""
    if root not in before.procs or root not in after.procs:
        return None
    cut = list(exclude)
    used = tree_cpu_seconds(after, root, cut) - tree_cpu_seconds(before, root, cut)
    return 100.0 * used / max(after.at - before.at, 1e-9)


def pss_bytes(pid: int) -> int | None:
    """Proportional set size from ``/proc/<pid>/smaps_rollup`` (root or the owner only)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return None
    return None


def tree_pss_bytes(snap: Snapshot, root: int, exclude: Iterable[int] = ()) -> int:
    return sum(pss_bytes(p) or 0 for p in tree_pids(snap, root, exclude))
