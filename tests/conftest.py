"""Fixtures shared by the core's tests.

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
