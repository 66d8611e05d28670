"""The built-in ``directory`` backup method against the backup contract kit (real
PostgreSQL, real pg_basebackup, WAL archived by PostgreSQL through the rendered command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stolon.testing.backup_contract import BackupMethodContract

pytestmark = pytest.mark.integration


class TestDirectoryMethod(BackupMethodContract):
    method_name = "directory"

    @pytest.fixture
    def backup_settings(self, repository: Path) -> dict[str, Any]:
        return {"path": str(repository)}

    @pytest.fixture
    def unreachable_settings(self) -> dict[str, Any] | None:
        return {"path": "/nonexistent/stolon-backups"}
