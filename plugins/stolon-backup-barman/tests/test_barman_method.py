"""What the contract kit does not cover: compressed base backups and the guard against two
database systems under one server name (real PostgreSQL 15, Barman Cloud, moto)."""

from __future__ import annotations

from typing import Any

import pytest
from stolon_backup_barman.testing import MotoS3Server

from stolon.backup.base import BackupConfigError
from stolon.backup.registry import open_method
from stolon.plugins import load_plugins
from stolon.testing.backup_contract import KitEnv, sql
from stolon.testing.pgsandbox import PgSandbox, find_binaries_or_skip, pg_os_user_or_skip

pytestmark = pytest.mark.integration


def test_compressed_backup_and_another_system_refused(
    barman_settings: dict[str, Any], moto_s3: MotoS3Server, s3_bucket: str
) -> None:
    method = open_method(load_plugins(), "barman", {**barman_settings, "compression": "gzip"})
    with PgSandbox(find_binaries_or_skip(), pg_os_user_or_skip(), prefix="stolon-barman-method-") as sandbox:
        kit = KitEnv(sandbox, method, "barman")
        inst, ctx = kit.archiving_primary()
        sql(inst, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id")
        reports: list[str] = []
        info = method.create_backup(ctx, lambda detail, done, total: reports.append(detail))
        # backup.info leaves "compression" null for barman-cloud-backup: the object says it
        assert f"stolon/contract/base/{info.id}/data.tar.gz" in moto_s3.list_keys(s3_bucket)
        assert info.system_id and info.pg_major == 15
        assert reports and reports[-1].startswith(f"backup {info.id} done")
        method.ensure_repository(ctx)  # same system: fine

        restored = sandbox.path("restored")
        method.restore_backup(ctx, info, restored, lambda *a: None)
        assert (restored / "PG_VERSION").read_text().strip() == "15"
        assert (restored / "backup_label").exists()

        other = sandbox.instance("other")
        other.initdb(no_sync=True)  # a different database system identifier
        other_ctx = kit.context(other, work="other-work")
        with pytest.raises(BackupConfigError) as e:
            method.ensure_repository(other_ctx)
        message = str(e.value)
        assert "holds backups of another database system" in message and info.system_id in message
        assert "\n" not in message
