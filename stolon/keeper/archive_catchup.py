"""After a promotion, archive what the old master may not have archived.

With a method that archives from the master only (``archive_mode = on``, the method's
``standby_archiving`` is False), a standby marks the WAL it receives as archived without
archiving it. When the master dies with complete segments it had not archived yet, the
archive would have a hole right before the new timeline and no point-in-time recovery
could cross the failover. So the new master's keeper pushes, through the same
``archive_command`` PostgreSQL uses, every complete segment of an older timeline still in
its ``pg_wal``: a method's archiving is idempotent, so segments already there are accepted
unchanged. It runs in a thread: the promotion does not wait for it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from opentelemetry import trace

from stolon.backup.commands import expand_placeholders
from stolon.postgres.errors import PostgresError
from stolon.postgres.runas import OSUser, run_command

log = logging.getLogger("stolon.keeper.backup")

_SEGMENT = re.compile(r"[0-9A-F]{24}")
PUSH_TIMEOUT = 300.0


def older_timeline_segments(pg_wal: Path) -> list[str]:
    """Complete WAL segments of timelines older than the newest one in ``pg_wal``, in order."""
    try:
        names = [n for n in os.listdir(pg_wal) if _SEGMENT.fullmatch(n)]
    except OSError:
        return []
    if not names:
        return []
    newest = max(int(n[:8], 16) for n in names)
    sizes = {}
    for n in names:
        try:
            sizes[n] = os.lstat(pg_wal / n).st_size
        except OSError:
            continue
    if not sizes:
        return []
    full = max(sizes.values())
    return sorted(n for n, size in sizes.items() if int(n[:8], 16) < newest and size == full)


def push_older_segments(pgdata: Path, command: str, user: OSUser, tracer: trace.Tracer) -> threading.Thread:
    """Start a thread that pushes :func:`older_timeline_segments` with ``command``."""

    def run() -> None:
        names = older_timeline_segments(pgdata / "pg_wal")
        with tracer.start_as_current_span("keeper.archive_catchup") as span:
            span.set_attribute("stolon.backup.segments", len(names))
            failed = []
            for name in names:
                line = expand_placeholders(command, {"%p": f"pg_wal/{name}", "%f": name})
                try:
                    run_command(["/bin/sh", "-c", line], user=user, timeout=PUSH_TIMEOUT, cwd=str(pgdata))
                except PostgresError as e:
                    failed.append(name)
                    log.error("archiving %s of the previous timeline failed: %s", name, e)
            span.set_attribute("stolon.backup.failed", len(failed))
        if names:
            log.info(
                "archived %d segment(s) of the previous timeline after the promotion (%d failed)",
                len(names) - len(failed),
                len(failed),
            )

    t = threading.Thread(target=run, name="archive-catchup", daemon=True)
    t.start()
    return t
