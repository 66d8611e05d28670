"""Physical replication slots (Go Stolon's ``refreshReplicationSlots``).

Only slots named ``stolon_*`` belong to the keeper: it creates the wanted ones and drops
the others; any other slot is never touched. Temporary slots are ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from stolon.postgres.connection import Connection, text
from stolon.postgres.errors import PostgresError
from stolon.postgres.lsn import parse_lsn
from stolon.postgres.parameters import is_stolon_name, stolon_name

log = logging.getLogger(__name__)

VALID_SLOT_NAME = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class ReplicationSlot:
    """A row of ``pg_replication_slots``.

    ``wal_status`` (PostgreSQL 13+) is ``reserved``, ``extended``, ``unreserved`` or
    ``lost``; a ``lost`` slot no longer holds the WAL its standby needs (that standby must
    be resynced).
    """

    name: str
    slot_type: str
    active: bool
    restart_lsn: int | None
    wal_status: str | None

    @property
    def managed(self) -> bool:
        return is_stolon_name(self.name)

    @property
    def lost(self) -> bool:
        return self.wal_status == "lost"


def check_slot_name(name: str) -> None:
    if not VALID_SLOT_NAME.fullmatch(name) or len(name) > 63:
        raise ValueError(f"invalid replication slot name {name!r}")


def list_slots(conn: Connection) -> list[ReplicationSlot]:
    """The non-temporary slots, sorted by name."""
    rows = conn.execute(
        "SELECT slot_name, slot_type, active, restart_lsn::text, wal_status"
        " FROM pg_replication_slots WHERE NOT temporary ORDER BY slot_name"
    ).fetchall()
    return [
        ReplicationSlot(
            name=text(r[0]),
            slot_type=text(r[1]),
            active=bool(r[2]),
            restart_lsn=parse_lsn(text(r[3])) if r[3] is not None else None,
            wal_status=text(r[4]) if r[4] is not None else None,
        )
        for r in rows
    ]


def create_slot(conn: Connection, name: str) -> None:
    """Create physical slot ``name``. It reserves WAL from now (``immediately_reserve``),
    so a standby made with pg_basebackup right after finds everything it needs."""
    check_slot_name(name)
    conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))


def drop_slot(conn: Connection, name: str) -> None:
    check_slot_name(name)
    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))


def wanted_slots(
    self_uid: str, followers: Iterable[str] | None, additional: Iterable[str] | None
) -> set[str]:
    """``stolon_<uid>`` for each follower but ourselves, plus ``stolon_<name>`` for each
    additional slot of the DB spec."""
    wanted = {stolon_name(u) for u in followers or () if u != self_uid}
    wanted |= {stolon_name(n) for n in additional or ()}
    return wanted


@dataclass(frozen=True)
class SlotPlan:
    to_create: tuple[str, ...]
    to_drop: tuple[str, ...]


def plan_slots(current: Iterable[str], wanted: Iterable[str]) -> SlotPlan:
    """What to create and drop; slots without the ``stolon_`` prefix are left alone."""
    cur = set(current)
    want = set(wanted)
    return SlotPlan(
        to_create=tuple(sorted(want - cur)),
        to_drop=tuple(sorted(s for s in cur - want if is_stolon_name(s))),
    )


@dataclass
class SlotRefresh:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    #: drop failures (e.g. the slot is still in use): logged, not fatal, as in Go
    drop_errors: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)


def refresh_slots(conn: Connection, wanted: Iterable[str]) -> SlotRefresh:
    """Make the ``stolon_*`` slots match ``wanted``. A failed drop is recorded and the rest
    goes on; a failed create raises (the step must be retried)."""
    slots = list_slots(conn)
    plan = plan_slots((s.name for s in slots), wanted)
    res = SlotRefresh(lost=[s.name for s in slots if s.managed and s.lost])
    for name in plan.to_drop:
        log.info("dropping replication slot %s", name)
        try:
            drop_slot(conn, name)
            res.dropped.append(name)
        except (PostgresError, psycopg.Error) as e:
            log.error("failed to drop replication slot %s: %s", name, e)
            res.drop_errors[name] = str(e)
    for name in plan.to_create:
        log.info("creating replication slot %s", name)
        create_slot(conn, name)
        res.created.append(name)
    return res
