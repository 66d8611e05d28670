"""The namespaces of the partition faults, on real network namespaces (needs root): a cut
link drops traffic between the two namespaces both ways and nothing else, mending it
restores it, and removing the bridge leaves no namespace, link or route behind."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from stolon.testing.netns import Bridge, in_netns

pytestmark = pytest.mark.integration


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with Bridge(3) as b:
        yield b


@contextlib.contextmanager
def listener(ns: str | None, address: str) -> Iterator[int]:
    """A TCP listener on ``address`` in ``ns`` accepting (and closing) every connection."""
    with in_netns(ns):
        srv = socket.create_server((address, 0))
    port = int(srv.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = srv.accept()
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield port
    finally:
        stop.set()
        t.join()
        srv.close()


def reaches(ns: str | None, address: str, port: int) -> bool:
    with in_netns(ns):
        s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_cut_drops_only_the_links_between_the_two_sides(bridge: Bridge) -> None:
    ns = [bridge.namespace(i) for i in range(3)]
    addr = [bridge.address(i) for i in range(3)]
    with (
        listener(ns[0], addr[0]) as p0,
        listener(ns[1], addr[1]) as p1,
        listener(ns[2], addr[2]) as p2,
        listener(None, bridge.host_address) as ph,
    ):
        assert reaches(ns[0], addr[1], p1) and reaches(ns[1], addr[0], p0)
        bridge.cut(0, [1, 2])
        # the master's side and the standbys' no longer reach each other, either way
        assert not reaches(ns[0], addr[1], p1)
        assert not reaches(ns[0], addr[2], p2)
        assert not reaches(ns[1], addr[0], p0)
        assert not reaches(ns[2], addr[0], p0)
        # everything else still works: the root namespace (store, sentinels, proxy) from
        # both sides and to both sides, the standbys between themselves, the master locally
        assert reaches(ns[0], bridge.host_address, ph) and reaches(ns[1], bridge.host_address, ph)
        assert reaches(None, addr[0], p0) and reaches(None, addr[1], p1)
        assert reaches(ns[1], addr[2], p2) and reaches(ns[2], addr[1], p1)
        assert reaches(ns[0], addr[0], p0)
        bridge.mend()
        assert bridge.cuts == set()
        assert reaches(ns[0], addr[1], p1) and reaches(ns[2], addr[0], p0)
        bridge.mend()  # twice is harmless


def test_cut_refuses_a_namespace_cut_from_itself_and_changes_nothing(bridge: Bridge) -> None:
    with pytest.raises(ValueError, match="cut from itself"):
        bridge.cut(1, [0, 1])
    assert bridge.cuts == set()
    routes = subprocess.run(
        ["ip", "-n", bridge.namespace(1), "route", "show", "type", "blackhole"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert routes.stdout.strip() == ""


def test_remove_undoes_a_cut_and_leaves_nothing(bridge: Bridge) -> None:
    bridge.cut(2, [0])
    bridge.remove()
    assert bridge.cuts == set()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(bridge.namespace(i) in names for i in range(3))
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert bridge.bridge not in links
