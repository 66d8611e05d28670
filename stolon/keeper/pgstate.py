"""What the keeper reports about its PostgreSQL: Go Stolon's ``GetPGState`` sequence over
the queries of :mod:`stolon.postgres.state`, run on the keeper's
:class:`~stolon.postgres.instance.Instance` by its collector thread."""

from __future__ import annotations

from dataclasses import dataclass, field

from stolon.postgres.connection import Connection, ReusableConnection
from stolon.postgres.datadir import oldest_wal_file
from stolon.postgres.errors import PostgresError
from stolon.postgres.instance import Instance
from stolon.postgres.state import (
    ArchiverStats,
    SystemIdentity,
    TimelineHistoryEntry,
    archiver_stats,
    identify_system,
    last_timeline_history,
    sync_standbys,
    user_config_parameters,
)


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
    """The superuser connection the collector keeps open between collections (see
    :class:`~stolon.postgres.connection.ReusableConnection`): at rest the keeper collects
    every ``sleepInterval/2``, and opening it each time was a good part of an idle keeper's
    CPU (and a backend fork plus an authentication on the server).

    The replication connection (IDENTIFY_SYSTEM, TIMELINE_HISTORY) is still opened for
    each collection: a kept one would be a walsender in command mode, holding one of
    ``max_wal_senders`` and showing in ``pg_stat_replication`` as one more row on every
    server (monitoring that counts standbys there would count it).
    """

    def __init__(self, instance: Instance) -> None:
        self.admin = ReusableConnection(instance.admin_params)

    def close(self) -> None:
        self.admin.close()


def collect_state(
    instance: Instance, timeout: float | None = None, conns: StateConnections | None = None
) -> CollectedState:
    """Go Stolon's ``GetPGState`` order: config parameters, in-sync standbys (superuser
    connection), IDENTIFY_SYSTEM and the timeline history (replication connection), the
    oldest WAL file. ``healthy`` only if all but the last succeeded (as in Go, a WAL file
    error only leaves ``older_wal_file`` empty). Never raises for PostgreSQL errors.

    With ``conns`` the superuser connection is kept open for the next collection; without,
    it is opened and closed here."""
    st = CollectedState()
    st.initialized = instance.is_initialized()
    if not st.initialized:
        return st
    seconds = timeout or instance.request_timeout

    def admin_queries(conn: Connection) -> None:
        st.pg_parameters = user_config_parameters(conn)
        st.synchronous_standbys = sync_standbys(conn)
        st.archiver = archiver_stats(conn)

    def replication_queries(conn: Connection) -> tuple[SystemIdentity, list[TimelineHistoryEntry]]:
        ident = identify_system(conn)
        return ident, last_timeline_history(conn, ident.timeline_id)

    try:
        if conns is not None:
            conns.admin.run(admin_queries, seconds)
        else:
            with instance.connect_admin(seconds) as conn:
                admin_queries(conn)
        with instance.connect_replication(seconds) as rconn:
            ident, history = replication_queries(rconn)
    except (PostgresError, ValueError) as e:
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
