"""stolon's pytest plugin (entry point ``pytest11: stolon``): fixtures for real servers.

``etcd_server``
    a session-wide etcd (:class:`stolon.testing.etcd.EtcdServer`). Tests must not stop or
    freeze it; use a fresh cluster name (key prefix) per test instead.
``etcd_server_control``
    a second, disposable etcd that a test may stop, kill, freeze or restart; after each test
    it is brought back to running and healthy (same endpoints and data).

Both skip the test, with the reason, when no etcd binary is found (``$ETCD_BIN``, then
PATH). The module imports without etcd installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stolon.testing.etcd import EtcdNotFoundError, EtcdServer, find_etcd_binary


def _etcd_binary() -> str:
    try:
        return find_etcd_binary()
    except EtcdNotFoundError as e:
        pytest.skip(f"etcd tests need etcd: {e}")


def _started(name: str) -> EtcdServer:
    server = EtcdServer(_etcd_binary(), name=name)
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """A running etcd shared by the whole session (don't stop it)."""
    server = _started("stolon-test")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def _etcd_disposable_server() -> Iterator[EtcdServer]:
    server = _started("stolon-test-disposable")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_server_control(_etcd_disposable_server: EtcdServer) -> Iterator[EtcdServer]:
    """An etcd this test may stop, kill, freeze and restart; restored afterwards."""
    server = _etcd_disposable_server
    server.ensure_running()
    yield server
    server.ensure_running()
