"""Long keeper work and its progress: what the keeper info's ``activity`` says.

A restore, a base backup, a ``pg_basebackup`` or a ``pg_rewind`` can take hours. While
one runs the keeper keeps publishing its info; :class:`ActivityTracker` holds what it is
doing (kind, since, a detail line, bytes done of bytes expected), logs each change of the
detail at most every :data:`LOG_EVERY` seconds, and :func:`watch_directory` measures how
much a data directory being filled has grown, for tools that report nothing themselves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from stolon.model.infos import Activity

log = logging.getLogger("stolon.keeper")

LOG_EVERY = 10.0
WATCH_EVERY = 2.0


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class ActivityTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Activity | None = None
        self._last_log = 0.0

    @property
    def current(self) -> Activity | None:
        with self._lock:
            return self._current.copy() if self._current is not None else None

    @contextmanager
    def running(self, kind: str, detail: str, total_bytes: int = 0) -> Iterator[None]:
        with self._lock:
            self._current = Activity(
                kind=kind, since=datetime.now(UTC), detail=detail, total_bytes=max(0, total_bytes)
            )
            self._last_log = time.monotonic()
        log.info("%s: %s", kind, detail)
        try:
            yield
        finally:
            with self._lock:
                self._current = None

    def report(self, detail: str, done: int | None = None, total: int | None = None) -> None:
        """A :data:`stolon.backup.base.Progress` callable."""
        with self._lock:
            cur = self._current
            if cur is None:
                return
            if detail:
                cur.detail = detail
            if done is not None:
                cur.done_bytes = max(0, done)
            if total is not None:
                cur.total_bytes = max(0, total)
            now = time.monotonic()
            due = now - self._last_log >= LOG_EVERY
            if due:
                self._last_log = now
            line = describe(cur)
        if due:
            log.info("%s", line)


def describe(a: Activity) -> str:
    parts = [f"{a.kind}: {a.detail}"]
    if a.total_bytes:
        pct = min(100.0, 100.0 * a.done_bytes / a.total_bytes)
        parts.append(f"{human_bytes(a.done_bytes)} of {human_bytes(a.total_bytes)} ({pct:.0f}%)")
    elif a.done_bytes:
        parts.append(human_bytes(a.done_bytes))
    return ", ".join(parts)


def directory_size(path: Path) -> int:
    """Bytes in regular files under ``path`` (links not followed; errors ignored)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total


@contextmanager
def watch_directory(tracker: ActivityTracker, path: Path, interval: float = WATCH_EVERY) -> Iterator[None]:
    """Report the growing size of ``path`` to ``tracker`` until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            tracker.report("", done=directory_size(path))

    t = threading.Thread(target=loop, name="progress-watch", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(5)
