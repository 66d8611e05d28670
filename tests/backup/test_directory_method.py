"""The built-in ``directory`` backup method against the backup contract kit (real
PostgreSQL, real pg_basebackup, WAL archived by PostgreSQL through the rendered command)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stolon.testing.backup_contract import BackupMethodContract
from stolon.testing.pgsandbox import pg_os_user_or_skip

pytestmark = pytest.mark.integration


@pytest.fixture
def repository() -> Iterator[Path]:
    """An empty directory the PostgreSQL user owns (removed afterwards)."""
    user = pg_os_user_or_skip()
    base = Path(tempfile.mkdtemp(prefix="stolon-dirrepo-", dir="/tmp"))
    os.chmod(base, 0o700)
    user.chown(base)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


class TestDirectoryMethod(BackupMethodContract):
    method_name = "directory"

    @pytest.fixture
    def backup_settings(self, repository: Path) -> dict[str, Any]:
        return {"path": str(repository)}

    @pytest.fixture
    def unreachable_settings(self) -> dict[str, Any] | None:
        return {"path": "/nonexistent/stolon-backups"}
