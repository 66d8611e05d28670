"""A writer that inserts one row every ``interval`` through a DSN and records every
acknowledged id, for failover tests and the failover benchmark."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg


@dataclass
class Writer:
    dsn: str
    interval: float = 0.02
    table: str = "acks"
    acked: list[int] = field(default_factory=list)
    #: (monotonic time, ok) of every attempt, dated at its start
    attempts: list[tuple[float, bool]] = field(default_factory=list)
    #: monotonic time each acknowledgement arrived (same order as ``acked``)
    acked_at: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def setup(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        next_id = 1
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stop.is_set():
            t = time.monotonic()
            ok = False
            try:
                if conn is None or conn.closed:
                    # No statement_timeout: PostgreSQL reports a commit whose wait for a
                    # synchronous standby is cancelled as successful, which would count an
                    # unreplicated row as acknowledged.
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (next_id,))
                self.acked.append(next_id)
                self.acked_at.append(time.monotonic())
                ok = True
            except psycopg.Error:
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
            self.attempts.append((t, ok))
            next_id += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))
        if conn is not None:
            conn.close()

    def unavailability(self, since: float) -> float:
        """The longest stretch without an acknowledged write after ``since``.

        Measured between acknowledgements, not attempt starts: an INSERT that starts on a
        new master and waits seconds for a synchronous standby is part of the gap.
        """
        last_ok = since
        worst = 0.0
        for t in list(self.acked_at):
            if t < since:
                continue
            worst = max(worst, t - last_ok)
            last_ok = t
        return worst

    def missing(self, dsn: str) -> list[int]:
        acked = list(self.acked)  # before the query: later acks are not in its snapshot
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            present = {r[0] for r in conn.execute(f"SELECT id FROM {self.table}").fetchall()}
        return [i for i in acked if i not in present]
