"""What the keeper reports about its PostgreSQL: Go Stolon's ``GetPGState`` sequence over
the queries of :mod:`stolon.postgres.state`, run on the keeper's
:class:`~stolon.postgres.instance.Instance` by its collector thread."""

from __future__ import annotations

from dataclasses import dataclass, field

from stolon.postgres.datadir import oldest_wal_file
from stolon.postgres.errors import PostgresError
from stolon.postgres.instance import Instance
from stolon.postgres.state import (
    ArchiverStats,
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


def collect_state(instance: Instance, timeout: float | None = None) -> CollectedState:
    """Go Stolon's ``GetPGState`` order: config parameters, in-sync standbys (superuser
    connection), IDENTIFY_SYSTEM and the timeline history (replication connection), the
    oldest WAL file. ``healthy`` only if all but the last succeeded (as in Go, a WAL file
    error only leaves ``older_wal_file`` empty). Never raises for PostgreSQL errors."""
    st = CollectedState()
    st.initialized = instance.is_initialized()
    if not st.initialized:
        return st
    try:
        with instance.connect_admin(timeout) as conn:
            st.pg_parameters = user_config_parameters(conn)
            st.synchronous_standbys = sync_standbys(conn)
            st.archiver = archiver_stats(conn)
        with instance.connect_replication(timeout) as rconn:
            ident = identify_system(rconn)
            st.system_id = ident.system_id
            st.timeline_id = ident.timeline_id
            st.xlog_pos = ident.xlog_pos
            st.timelines_history = last_timeline_history(rconn, ident.timeline_id)
    except (PostgresError, ValueError) as e:
        st.errors.append(str(e))
        return st
    try:
        st.older_wal_file = oldest_wal_file(instance.data_dir)
    except (PostgresError, OSError) as e:
        st.errors.append(f"cannot get the oldest wal file: {e}")
    st.healthy = True
    return st
