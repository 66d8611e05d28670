"""Reading the state of a running instance (Go Stolon's ``GetPGState`` pieces).

Each function takes an open connection from :func:`stolon.postgres.connection.connect`
(which bounds it in time). The keeper runs the whole sequence (Go's ``GetPGState``):
:func:`stolon.keeper.pgstate.collect_state`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from stolon.postgres.connection import Connection, text
from stolon.postgres.errors import QueryError
from stolon.postgres.lsn import parse_lsn
from stolon.postgres.parameters import filter_managed, is_stolon_name, name_from_stolon_name

log = logging.getLogger(__name__)

#: how many timeline history entries the keeper reports
MAX_TIMELINES_HISTORY = 2

_HISTORY_LINE_RE = re.compile(r"\s*(\S+)\s+(\S+)\s+(.*?)\s*")


@dataclass(frozen=True)
class SystemIdentity:
    """``IDENTIFY_SYSTEM``: system identifier, current timeline, current WAL position."""

    system_id: str
    timeline_id: int
    xlog_pos: int


@dataclass(frozen=True)
class TimelineHistoryEntry:
    """One line of a ``.history`` file: timeline ``timeline_id`` ended at ``switch_point``."""

    timeline_id: int
    switch_point: int
    reason: str


@dataclass(frozen=True)
class StandbyStatus:
    """A row of ``pg_stat_replication``."""

    application_name: str
    state: str
    sync_state: str


def identify_system(conn: Connection) -> SystemIdentity:
    """Needs a replication connection (``replication=true``)."""
    row = conn.execute("IDENTIFY_SYSTEM").fetchone()
    if row is None:
        raise QueryError("IDENTIFY_SYSTEM returned no rows")
    return SystemIdentity(
        system_id=text(row[0]), timeline_id=int(text(row[1])), xlog_pos=parse_lsn(text(row[2]))
    )


def parse_timeline_history(content: str) -> list[TimelineHistoryEntry]:
    """Parse a timeline history file: ``<tli>\\t<switch LSN>\\t<reason>`` per line.

    Blank lines and ``#`` comments are skipped; a line with another shape is an error.
    """
    entries: list[TimelineHistoryEntry] = []
    for line in content.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _HISTORY_LINE_RE.fullmatch(line)
        if not m:
            raise ValueError(f"bad timeline history line {line!r}")
        try:
            tli = int(m.group(1))
        except ValueError:
            raise ValueError(f"cannot parse timeline id in history line {line!r}") from None
        try:
            switch = parse_lsn(m.group(2))
        except ValueError:
            raise ValueError(f"cannot parse switch point in history line {line!r}") from None
        entries.append(TimelineHistoryEntry(tli, switch, m.group(3)))
    return entries


def timeline_history(conn: Connection, timeline_id: int) -> list[TimelineHistoryEntry]:
    """All entries of the history file of ``timeline_id`` (> 1), oldest first.

    Needs a replication connection.
    """
    if timeline_id <= 1:
        return []
    row = conn.execute(f"TIMELINE_HISTORY {int(timeline_id)}").fetchone()
    if row is None:
        raise QueryError(f"TIMELINE_HISTORY {timeline_id} returned no rows")
    return parse_timeline_history(text(row[1]))


def last_timeline_history(
    conn: Connection, timeline_id: int, keep: int = MAX_TIMELINES_HISTORY
) -> list[TimelineHistoryEntry]:
    """The last ``keep`` entries, as the keeper reports them."""
    entries = timeline_history(conn, timeline_id)
    return entries[-keep:] if keep > 0 else []


def standbys(conn: Connection) -> list[StandbyStatus]:
    rows = conn.execute("SELECT application_name, state, sync_state FROM pg_stat_replication").fetchall()
    return [StandbyStatus(text(r[0] or ""), text(r[1] or ""), text(r[2] or "")) for r in rows]


def sync_standbys(conn: Connection) -> list[str]:
    """DB UIDs of the standbys in ``sync`` state: ``stolon_<uid>`` names only, prefix
    stripped (other application names, e.g. an external standby, do not count)."""
    return [
        name_from_stolon_name(s.application_name)
        for s in standbys(conn)
        if s.sync_state == "sync" and is_stolon_name(s.application_name)
    ]


def config_file_parameters(conn: Connection) -> dict[str, str]:
    """Parameters set in the configuration files (``pg_file_settings``; later lines win).

    ``pg_file_settings`` keeps the real value of e.g. ``archive_command`` where
    ``pg_settings`` shows ``(disabled)``. Rows with an error (a removed restart-only
    setting) have null name/setting and are skipped.
    """
    rows = conn.execute(
        "SELECT name, setting FROM pg_file_settings"
        " WHERE name IS NOT NULL AND setting IS NOT NULL ORDER BY seqno"
    ).fetchall()
    return {text(name): text(setting) for name, setting in rows}


def user_config_parameters(conn: Connection) -> dict[str, str]:
    """:func:`config_file_parameters` without the managed ones: what the keeper reports."""
    return filter_managed(config_file_parameters(conn))


def pending_restart(conn: Connection) -> list[str]:
    """Names of the settings changed in the files that only apply after a restart."""
    rows = conn.execute("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
    return [text(r[0]) for r in rows.fetchall()]


def is_in_recovery(conn: Connection) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def checkpoint(conn: Connection) -> None:
    """``CHECKPOINT``: after a promotion, makes pg_control show the new timeline (a pg_rewind
    against a promoted server that has not checkpointed sees the old timeline and does
    nothing)."""
    conn.execute("CHECKPOINT")


@dataclass(frozen=True)
class ArchiverStats:
    """``pg_stat_archiver``: WAL archiving progress and failures since the stats reset."""

    archived_count: int
    last_archived_wal: str
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str
    last_failed_time: datetime | None


def archiver_stats(conn: Connection) -> ArchiverStats | None:
    """The archiver's statistics, or None when ``archive_mode`` is off."""
    row = conn.execute(
        "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, last_archived_time,"
        " failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver"
    ).fetchone()
    if row is None or str(row[0]) == "off":
        return None
    return ArchiverStats(
        archived_count=int(row[1] or 0),
        last_archived_wal=str(row[2] or ""),
        last_archived_time=row[3],
        failed_count=int(row[4] or 0),
        last_failed_wal=str(row[5] or ""),
        last_failed_time=row[6],
    )


#: what :func:`wal_probe` returns; compared for equality only
WalProbe = tuple[object, ...]


def wal_probe(conn: Connection) -> WalProbe:
    """Everything ``IDENTIFY_SYSTEM`` and ``TIMELINE_HISTORY`` answer from, as a normal
    (not replication) connection sees it: whether the server is in recovery, when its
    postmaster started (the system identifier cannot change under one postmaster), and the
    WAL positions IDENTIFY_SYSTEM's is made of (the flush position on a primary; received
    and replayed on a standby).

    Two equal probes bracket an unchanged identity: the positions only move forward, and
    the timeline changes only with them (a promotion writes WAL on the new timeline; a
    standby switches timeline when it replays a record past the switch point). The keeper's
    collector uses it to skip the replication connection while nothing moved
    (:class:`stolon.keeper.pgstate.StateConnections`)."""
    row = conn.execute(
        "SELECT pg_is_in_recovery(), pg_postmaster_start_time(),"
        " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn() END,"
        " pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()"
    ).fetchone()
    if row is None:
        raise QueryError("the WAL position query returned no rows")
    return tuple(row)
