"""Fixtures shared by the core's tests, and the rule that tests with real servers are marked.

Every test that starts a real PostgreSQL or etcd is marked ``integration`` (so that
``-m "not integration"`` runs without them). Collection fails when a test uses one of the
fixtures of :data:`REAL_SERVER_FIXTURES` without the mark.

The etcd fixtures (``etcd_server``, ``etcd_server_control``) come from the etcd plugin's test
support, :mod:`stolon_store_etcd.fixtures`; stolon's own pytest plugin carries only the
contract kits' needs. Without the etcd plugin installed, tests that use them skip (or fail
under ``STOLON_TESTS_REQUIRE=etcd``).
"""

from __future__ import annotations

from typing import Any

import pytest

from stolon.testing.requirements import tool_missing

try:
    from stolon_store_etcd.fixtures import (  # noqa: F401 - fixtures, found by name
        etcd_server,
        etcd_server_control,
        etcd_server_disposable,
    )
except ImportError as e:  # the etcd plugin is not installed
    _why = f"the tests with etcd need the stolon-store-etcd plugin: {e}"

    @pytest.fixture(scope="session")
    def etcd_server() -> Any:
        tool_missing("etcd", _why)

    @pytest.fixture
    def etcd_server_control() -> Any:
        tool_missing("etcd", _why)


#: Fixtures that start (or hand out) a real PostgreSQL or etcd: name → where it is defined
#: (pytest's ``baseid``: the directory of its conftest.py, or its test module).
REAL_SERVER_FIXTURES = {
    "etcd_server": "tests",
    "etcd_server_control": "tests",
    "pg": "tests/postgres",
    "cluster": "tests/keeper",
    "servers": "tests/proxy/test_proxy_postgres.py",
    "make_ha": "tests/integration/test_ha.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked: list[str] = []
    for item in items:
        if item.get_closest_marker("integration") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        for name in getattr(item, "fixturenames", ()):
            want = REAL_SERVER_FIXTURES.get(name)
            defs = info.name2fixturedefs.get(name, ()) if info is not None else ()
            if want is not None and any(d.baseid == want for d in defs):
                unmarked.append(f"{item.nodeid} (uses {name})")
                break
    if unmarked:
        raise pytest.UsageError(
            "tests with a real PostgreSQL or etcd must be marked integration: " + ", ".join(unmarked)
        )
