"""The routing table: picking destinations and closing connections on route changes."""

from __future__ import annotations

from collections import Counter

from stolon.proxy.routing import Balance, Destination, RoutingTable, describe

A = Destination("a", "127.0.0.1", 5432)
B = Destination("b", "127.0.0.1", 5433)
C = Destination("c", "::1", 5434)


class Conn:
    def __init__(self) -> None:
        self.aborted = 0

    def abort(self) -> None:
        self.aborted += 1


def test_destination_text() -> None:
    assert str(A) == "127.0.0.1:5432"
    assert str(C) == "[::1]:5434"
    assert describe([B, A]) == "127.0.0.1:5432,127.0.0.1:5433"
    assert describe([]) == ""
    assert A.is_resolved and not Destination("x", "db.example", 1).is_resolved


def test_no_destination_refuses_and_registration_fails() -> None:
    t = RoutingTable()
    assert t.pick() is None
    assert not t.add(A, Conn())


def test_any_change_closes_every_connection_of_the_old_destination() -> None:
    t = RoutingTable()
    t.set([A])
    conns = [Conn() for _ in range(3)]
    for c in conns:
        assert t.add(t.pick() or B, c)
    assert t.connection_count() == 3
    # same destination again: nothing happens
    assert t.set([A]) == 0 and all(c.aborted == 0 for c in conns)
    # to another master: all closed
    assert t.set([B]) == 3
    assert all(c.aborted == 1 for c in conns)
    assert t.connection_count() == 0 and t.closed_by_route_change == 3
    # a connection still dialing the old destination can't register any more
    late = Conn()
    assert not t.add(A, late)


def test_nil_phase_closes_even_if_the_same_master_comes_back() -> None:
    t = RoutingTable()
    t.set([A])
    c = Conn()
    t.add(A, c)
    assert t.clear() == 1 and c.aborted == 1
    t.set([A])
    assert t.connection_count() == 0
    c2 = Conn()
    t.add(A, c2)
    assert t.connection_count(A) == 1
    t.discard(A, c2)
    assert t.connection_count() == 0


def test_restrict_only_removes() -> None:
    t = RoutingTable()
    t.set([A, B])
    ca, cb = Conn(), Conn()
    t.add(A, ca)
    t.add(B, cb)
    assert t.restrict([B, C]) == 1
    assert t.destinations == (B,)
    assert ca.aborted == 1 and cb.aborted == 0
    assert t.set([B, C]) == 0 and cb.aborted == 0


def test_least_connections_spreads_and_prefers_the_emptiest() -> None:
    t = RoutingTable(Balance.LEAST_CONNECTIONS)
    t.set([A, B, C])
    for _ in range(9):
        d = t.pick()
        assert d is not None
        t.add(d, Conn())
    assert [t.connection_count(d) for d in (A, B, C)] == [3, 3, 3]
    # B loses two connections: the next two go to B
    for c in list(t._conns[B])[:2]:
        t.discard(B, c)
    picks = []
    for _ in range(2):
        d = t.pick()
        assert d is not None
        t.add(d, Conn())
        picks.append(d)
    assert picks == [B, B]


def test_round_robin() -> None:
    t = RoutingTable(Balance.ROUND_ROBIN)
    t.set([A, B])
    t.add(A, Conn())
    t.add(A, Conn())
    assert Counter(t.pick() for _ in range(4)) == {A: 2, B: 2}


def test_abort_all_keeps_destinations() -> None:
    t = RoutingTable()
    t.set([A])
    c = Conn()
    t.add(A, c)
    assert t.abort_all() == 1 and c.aborted == 1
    assert t.destinations == (A,)
