"""The ``barman`` method against the backup contract kit: real PostgreSQL 15, real Barman
Cloud tools (run as PostgreSQL's OS user), moto's S3 server standing in for S3."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.netutil import free_port
from stolon.testing.backup_contract import BackupMethodContract

pytestmark = pytest.mark.integration


class TestBarmanMethod(BackupMethodContract):
    method_name = "barman"
    # barman-cloud-wal-archive itself overwrites; the method's archive script refuses a
    # different file under an archived name (stolon_backup_barman.commands)
    refuses_overwrite = True

    @pytest.fixture
    def backup_settings(self, barman_settings: dict[str, Any]) -> dict[str, Any]:
        return barman_settings

    @pytest.fixture
    def unreachable_settings(self, barman_settings: dict[str, Any]) -> dict[str, Any] | None:
        # nothing listens on a fresh free port: connection refused
        return {**barman_settings, "endpointUrl": f"http://127.0.0.1:{free_port()}"}
