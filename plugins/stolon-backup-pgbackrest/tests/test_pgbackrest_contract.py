"""The pgbackrest method against stolon's backup contract kit: real PostgreSQL 15, real
pgBackRest, WAL archived by PostgreSQL through the rendered archive command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stolon.testing.backup_contract import BackupMethodContract

pytestmark = pytest.mark.integration


class TestPgBackRestContract(BackupMethodContract):
    method_name = "pgbackrest"

    @pytest.fixture
    def backup_settings(self, pgbackrest_settings: dict[str, Any]) -> dict[str, Any]:
        return pgbackrest_settings

    @pytest.fixture
    def unreachable_settings(self, pgbackrest_bin: str) -> dict[str, Any] | None:
        return {"repoPath": str(Path("/nonexistent/stolon-pgbackrest"))}
