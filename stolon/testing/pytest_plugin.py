"""stolon's pytest plugin (entry point ``pytest11: stolon``): what the contract kits need.

Installing stolon adds only this to a pytest session:

* the ``integration`` marker (the backup kit's tests start real PostgreSQL and are marked
  with it), so that ``--strict-markers`` runs accept the kits;
* a check of ``STOLON_TESTS_REQUIRE`` at start-up (:mod:`stolon.testing.requirements`): an
  unknown tool name is a usage error, and the required tools are shown in the header.

The contract kits themselves are classes to subclass
(:mod:`stolon.testing.store_contract`, :mod:`stolon.testing.backup_contract`,
:mod:`stolon.testing.fencing_contract`, :mod:`stolon.testing.proxy_health_contract`). Fixtures
for real servers live with what they serve: etcd's in the etcd plugin
(:mod:`stolon_store_etcd.fixtures`), imported by the conftest.py of the tests that use it.
"""

from __future__ import annotations

import pytest

from stolon.testing.requirements import ENV, UnknownToolError, required

INTEGRATION_MARKER = "integration: starts real external processes (PostgreSQL, etcd, backup tools)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", INTEGRATION_MARKER)
    try:
        required()
    except UnknownToolError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_report_header(config: pytest.Config) -> str | None:
    tools = required()
    return f"{ENV}: {', '.join(sorted(tools))} (missing ones fail)" if tools else None
