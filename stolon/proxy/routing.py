"""Where a listener's connections go: the destinations it may use and the connections it has.

A :class:`RoutingTable` belongs to one listener. It holds the destinations new connections
may go to (chosen by the listener's health policy at each check) and, per destination, the
connections in flight, dials included. Changing the set closes every connection whose
destination left it; for a single-destination policy such as ``master`` that is Go
Stolon's rule exactly: *any* change of destination, to or from nothing included, closes
every connection in flight and cancels every dial in progress.

With ``--hold-connections-timeout`` (ours) a listener that routes nowhere *holds* new
connections instead of refusing them: the table keeps them, and the first change that gives
it destinations releases every one of them (:meth:`Holdable.release`), in the order they
came; the connection itself enforces the time bound.

No I/O and no asyncio here: connections are anything with :meth:`Closable.abort`, so the
table is unit-tested with plain objects.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Destination:
    """A PostgreSQL instance a connection may be forwarded to.

    ``host`` is what the cluster data says (usually an IP address); the checker resolves
    host names before a destination reaches a routing table, so tables only ever hold IP
    literals and a dial never waits for DNS.
    """

    db_uid: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_resolved(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def describe(destinations: Iterable[Destination]) -> str:
    """``host:port`` of each destination, comma-separated and sorted ("" for none)."""
    return ",".join(sorted(str(d) for d in destinations))


class Balance(enum.StrEnum):
    """How a new connection picks one of several destinations."""

    #: the destination with the fewest connections in flight; ties go round-robin
    LEAST_CONNECTIONS = "least-conn"
    #: each destination in turn
    ROUND_ROBIN = "round-robin"


class Closable(Protocol):
    def abort(self) -> None:
        """Close now, discarding buffered data (a route change: fail closed)."""


class Holdable(Closable, Protocol):
    def release(self) -> None:
        """The table has destinations again: pick one and connect."""


class RoutingTable:
    """One listener's destinations and its connections in flight, by destination."""

    __slots__ = ("_conns", "_destinations", "_held", "_next", "balance", "closed_by_route_change")

    def __init__(self, balance: Balance = Balance.LEAST_CONNECTIONS) -> None:
        self.balance = balance
        self._destinations: tuple[Destination, ...] = ()
        self._conns: dict[Destination, set[Closable]] = {}
        #: connections waiting for a destination, in arrival order (dict as ordered set)
        self._held: dict[Holdable, None] = {}
        self._next = 0
        #: connections closed because their destination left the table (a metric)
        self.closed_by_route_change = 0

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return self._destinations

    def connection_count(self, destination: Destination | None = None) -> int:
        if destination is not None:
            return len(self._conns.get(destination, ()))
        return sum(len(c) for c in self._conns.values())

    # -- the per-connection path ---------------------------------------------------------------
    def pick(self) -> Destination | None:
        """The destination for a new connection, or ``None``: refuse it."""
        dests = self._destinations
        n = len(dests)
        if n == 0:
            return None
        if n == 1:
            return dests[0]
        start = self._next
        self._next = (start + 1) % n
        if self.balance is Balance.ROUND_ROBIN:
            return dests[start % n]
        best = dests[start % n]
        best_count = len(self._conns.get(best, ()))
        for i in range(1, n):
            d = dests[(start + i) % n]
            count = len(self._conns.get(d, ()))
            if count < best_count:
                best, best_count = d, count
        return best

    def add(self, destination: Destination, conn: Closable) -> bool:
        """Register ``conn`` (just accepted, about to dial); ``False`` if ``destination``
        is no longer routed to, in which case the caller closes it."""
        conns = self._conns.get(destination)
        if conns is None:
            return False
        conns.add(conn)
        return True

    def discard(self, destination: Destination, conn: Closable) -> None:
        conns = self._conns.get(destination)
        if conns is not None:
            conns.discard(conn)

    def hold(self, conn: Holdable) -> None:
        """Keep ``conn`` until the table has a destination for it."""
        self._held[conn] = None

    def unhold(self, conn: Holdable) -> None:
        self._held.pop(conn, None)

    @property
    def held_count(self) -> int:
        return len(self._held)

    # -- changes from the checker ----------------------------------------------------------------
    def restrict(self, allowed: Iterable[Destination]) -> int:
        """Drop every destination not in ``allowed`` and close its connections.

        The checker calls this *before* it publishes its ProxyInfo, so that once the
        sentinel sees this proxy's new generation, no connection to a destination the
        cluster data no longer allows is left.
        """
        keep = set(allowed)
        return self._apply(tuple(d for d in self._destinations if d in keep))

    def set(self, destinations: Sequence[Destination]) -> int:
        """Route new connections to exactly ``destinations`` (order kept, duplicates
        dropped); close the connections of destinations that left. Returns how many
        connections were closed."""
        return self._apply(tuple(dict.fromkeys(destinations)))

    def clear(self) -> int:
        """Route to nothing: close every connection and cancel every dial."""
        return self._apply(())

    def _apply(self, new: tuple[Destination, ...]) -> int:
        if new == self._destinations:
            return 0
        removed = [d for d in self._destinations if d not in new]
        self._destinations = new
        for d in new:
            self._conns.setdefault(d, set())
        closed = 0
        for d in removed:
            conns = self._conns.pop(d, set())
            for conn in conns:
                conn.abort()
            closed += len(conns)
        self._next = 0
        self.closed_by_route_change += closed
        if new and self._held:
            waiting, self._held = list(self._held), {}
            for conn in waiting:
                conn.release()
        return closed

    def abort_all(self) -> int:
        """Close every connection, held ones too, without changing the destinations
        (shutdown)."""
        held, self._held = list(self._held), {}
        for waiting in held:
            waiting.abort()
        closed = len(held)
        for conns in self._conns.values():
            for conn in list(conns):
                conn.abort()
            closed += len(conns)
            conns.clear()
        return closed
