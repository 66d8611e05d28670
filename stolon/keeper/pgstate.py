"""What the keeper reports about its PostgreSQL: Go Stolon's ``GetPGState`` sequence over
the queries of :mod:`stolon.postgres.state`, run on the keeper's
:class:`~stolon.postgres.instance.Instance` by its collector thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stolon.postgres.connection import Connection, ReusableConnection
from stolon.postgres.datadir import oldest_wal_file
from stolon.postgres.errors import PostgresError
from stolon.postgres.instance import Instance
from stolon.postgres.state import (
    ArchiverStats,
    SystemIdentity,
    TimelineHistoryEntry,
    WalProbe,
    archiver_stats,
    identify_system,
    last_timeline_history,
    sync_standbys,
    user_config_parameters,
    wal_probe,
)

#: the replication connection is opened at least this often (seconds) even when nothing
#: moved, so a replication login that stopped working still turns the state unhealthy
REPLICATION_REFRESH = 10.0


@dataclass
class CollectedState:
    """What the keeper publishes about its instance (Go ``PostgresState`` minus the
    keeper-side fields uid/generation/listenAddress/port)."""

    initialized: bool = False
    healthy: bool = False
    system_id: str = ""
    timeline_id: int = 0
    xlog_pos: int = 0
    timelines_history: list[TimelineHistoryEntry] = field(default_factory=list)
    pg_parameters: dict[str, str] = field(default_factory=dict)
    synchronous_standbys: list[str] = field(default_factory=list)
    older_wal_file: str = ""
    archiver: ArchiverStats | None = None
    #: why ``healthy`` is false (or what was left out), for the keeper's log
    errors: list[str] = field(default_factory=list)


class StateConnections:
    """What the collector keeps between collections (at rest it collects every
    ``sleepInterval/2``):

    - the superuser connection (:class:`~stolon.postgres.connection.ReusableConnection`):
      opening it each time was a good part of an idle keeper's CPU (and a backend fork
      plus an authentication on the server);
    - the last replication answers (IDENTIFY_SYSTEM, TIMELINE_HISTORY) with the
      :func:`~stolon.postgres.state.wal_probe` read just before them. A replication
      connection is still opened per question, never kept: a kept one would be a walsender
      in command mode, holding one of ``max_wal_senders`` and showing in
      ``pg_stat_replication`` as one more row on every server (monitoring that counts
      standbys there would count it). But it is only opened when the probe (read on the
      kept superuser connection) differs from the one taken before the last answers, or
      those are :data:`REPLICATION_REFRESH` old: at rest nothing moves, and a new
      connection per collection (0.9-1.3 ms of the keeper's CPU with md5, about 5 ms with
      SCRAM, and a walsender fork on the server) was the largest cost of an idle keeper.
      While WAL is written, it is opened every collection, as before.
    """

    def __init__(self, instance: Instance, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.admin = ReusableConnection(instance.admin_params)
        self._clock = clock
        #: (probe, when, identity, history) of the last replication answers
        self._replication: tuple[WalProbe, float, SystemIdentity, list[TimelineHistoryEntry]] | None = None
        #: replication connections saved (for tests and the curious)
        self.reused = 0

    def cached_replication(self, probe: WalProbe) -> tuple[SystemIdentity, list[TimelineHistoryEntry]] | None:
        last = self._replication
        if last is None or last[0] != probe or self._clock() - last[1] >= REPLICATION_REFRESH:
            return None
        self.reused += 1
        return last[2], list(last[3])

    def remember_replication(
        self, probe: WalProbe | None, ident: SystemIdentity, history: list[TimelineHistoryEntry]
    ) -> None:
        self._replication = None if probe is None else (probe, self._clock(), ident, list(history))

    def forget_replication(self) -> None:
        self._replication = None

    def close(self) -> None:
        self.admin.close()
        self._replication = None


def collect_state(
    instance: Instance, timeout: float | None = None, conns: StateConnections | None = None
) -> CollectedState:
    """Go Stolon's ``GetPGState`` order: config parameters, in-sync standbys (superuser
    connection), IDENTIFY_SYSTEM and the timeline history (replication connection), the
    oldest WAL file. ``healthy`` only if all but the last succeeded (as in Go, a WAL file
    error only leaves ``older_wal_file`` empty). Never raises for PostgreSQL errors.

    With ``conns`` the superuser connection is kept open for the next collection and the
    replication answers are reused while nothing moved (:class:`StateConnections`);
    without, both connections are opened and closed here."""
    st = CollectedState()
    st.initialized = instance.is_initialized()
    if not st.initialized:
        return st
    seconds = timeout or instance.request_timeout

    probe: WalProbe | None = None

    def admin_queries(conn: Connection) -> None:
        nonlocal probe
        st.pg_parameters = user_config_parameters(conn)
        st.synchronous_standbys = sync_standbys(conn)
        st.archiver = archiver_stats(conn)
        if conns is not None:
            probe = wal_probe(conn)

    def replication_queries(conn: Connection) -> tuple[SystemIdentity, list[TimelineHistoryEntry]]:
        ident = identify_system(conn)
        return ident, last_timeline_history(conn, ident.timeline_id)

    try:
        if conns is not None:
            conns.admin.run(admin_queries, seconds)
        else:
            with instance.connect_admin(seconds) as conn:
                admin_queries(conn)
        cached = conns.cached_replication(probe) if conns is not None and probe is not None else None
        if cached is not None:
            ident, history = cached
        else:
            with instance.connect_replication(seconds) as rconn:
                ident, history = replication_queries(rconn)
            if conns is not None:
                conns.remember_replication(probe, ident, history)
    except (PostgresError, ValueError) as e:
        if conns is not None:
            conns.forget_replication()
        st.errors.append(str(e))
        return st
    st.system_id = ident.system_id
    st.timeline_id = ident.timeline_id
    st.xlog_pos = ident.xlog_pos
    st.timelines_history = history
    try:
        st.older_wal_file = oldest_wal_file(instance.data_dir)
    except (PostgresError, OSError) as e:
        st.errors.append(f"cannot get the oldest wal file: {e}")
    st.healthy = True
    return st
