"""Fixtures for the pgbackrest method's tests (reusable: see stolon_backup_pgbackrest.testing).

``pgbackrest_bin``
    the pgbackrest executable; skips the test with "pgbackrest not installed" when missing.
``pgbackrest_repository``
    a fresh repository directory (``repoPath``) owned by PostgreSQL's OS user, removed after.
``pgbackrest_settings``
    ``backup.settings`` for that repository (the stanza defaults to the cluster name).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stolon_backup_pgbackrest.testing import pgbackrest_or_skip, repository

from stolon.testing.pgsandbox import pg_os_user_or_skip


@pytest.fixture
def pgbackrest_bin() -> str:
    return pgbackrest_or_skip()


@pytest.fixture
def pgbackrest_repository(pgbackrest_bin: str) -> Iterator[Path]:
    with repository(pg_os_user_or_skip()) as path:
        yield path


@pytest.fixture
def pgbackrest_settings(pgbackrest_repository: Path) -> dict[str, Any]:
    return {"repoPath": str(pgbackrest_repository)}
