"""pytest fixtures for tests that need a real etcd: import them into a ``conftest.py``::

    from stolon_store_etcd.fixtures import etcd_server, etcd_server_control  # noqa: F401

``etcd_server``
    a session-wide etcd (:class:`stolon_store_etcd.testing.EtcdServer`). Tests must not stop
    or freeze it; use a fresh cluster name (key prefix) per test instead.
``etcd_server_control``
    a second, disposable etcd that a test may stop, kill, freeze or restart; after each test
    it is brought back to running and healthy (same endpoints and data).

Both skip the test, with the reason, when no etcd binary is found (``$ETCD_BIN``, then
PATH), or fail it when ``STOLON_TESTS_REQUIRE`` includes ``etcd``
(:mod:`stolon.testing.requirements`). They are not a pytest plugin of their own: installing
stolon or this plugin adds nothing to other projects' pytest sessions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stolon.testing.requirements import tool_missing
from stolon_store_etcd.testing import EtcdNotFoundError, EtcdServer, find_etcd_binary

__all__ = ["etcd_server", "etcd_server_control", "etcd_server_disposable"]


def _etcd_binary() -> str:
    try:
        return find_etcd_binary()
    except EtcdNotFoundError as e:
        tool_missing("etcd", f"etcd tests need etcd: {e}")


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
def etcd_server_disposable() -> Iterator[EtcdServer]:
    """The session's second etcd (use :func:`etcd_server_control`, which restores it)."""
    server = _started("stolon-test-disposable")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_server_control(etcd_server_disposable: EtcdServer) -> Iterator[EtcdServer]:
    """An etcd this test may stop, kill, freeze and restart; restored afterwards."""
    server = etcd_server_disposable
    server.ensure_running()
    yield server
    server.ensure_running()
