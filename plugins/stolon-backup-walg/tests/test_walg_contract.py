"""The ``walg`` method against the backup contract kit: real PostgreSQL 15, WAL archived by
PostgreSQL through the rendered ``archive_command``, base backups, point-in-time restore
replayed through the rendered ``restore_command``, retention.

The binary is WAL-G's stand-in (``walg_standin/wal-g``: WAL-G's file-storage CLI contract,
see its docstring) and, when ``wal-g`` is on PATH, the real WAL-G with the same tests.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from stolon_backup_walg.method import CONFIG_NAME
from walg_testing import walg_settings

from stolon.backup.base import BackupConfigError, BackupError, StorageUnreachableError
from stolon.backup.registry import open_method
from stolon.plugins import load_plugins
from stolon.testing.backup_contract import BackupMethodContract, KitEnv, sql, switch_and_wait_archived
from stolon.testing.pgsandbox import pg_os_user_or_skip

pytestmark = pytest.mark.integration


class WalgContract(BackupMethodContract):
    method_name = "walg"

    @pytest.fixture
    def walg_binary(self) -> Path:
        raise NotImplementedError

    @pytest.fixture
    def backup_settings(self, walg_binary: Path, walg_repository: Path) -> dict[str, Any]:
        return walg_settings(walg_binary, walg_repository)

    @pytest.fixture
    def unreachable_settings(self, walg_binary: Path) -> dict[str, Any] | None:
        return walg_settings(walg_binary, Path("/nonexistent/stolon-walg-repository"))

    # -- beyond the kit: what the WAL-G method adds ----------------------------------------

    def test_config_file_is_private_and_complete(self, kit: KitEnv, walg_repository: Path) -> None:
        ctx = kit.context()
        kit.method.prepare(ctx)
        path = ctx.work_dir / CONFIG_NAME
        st = os.lstat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600
        if kit.sandbox.os_user.switches:
            assert st.st_uid == kit.sandbox.os_user.uid
        doc = json.loads(path.read_text())
        assert doc["WALG_FILE_PREFIX"] == str(walg_repository)
        assert doc["WALG_PREVENT_WAL_OVERWRITE"] == "true"
        assert doc["WALG_COMPRESSION_METHOD"] == "lz4"

    def test_compression_setting_reaches_walg(self, walg_binary: Path, walg_repository: Path) -> None:
        """With ``compression: lzma`` PostgreSQL's archiving stores ``.lzma`` WAL files, and a
        backup made with it restores (its tar partitions are ``.tar.lzma``)."""
        settings = walg_settings(walg_binary, walg_repository, compression="lzma")
        env = self._kit_for(settings)
        try:
            inst, ctx = env.archiving_primary()
            sql(inst, "CREATE TABLE t (id int)")
            sql(inst, "INSERT INTO t VALUES (1), (2)")
            name = switch_and_wait_archived(inst)
            assert (walg_repository / "wal_005" / f"{name}.lzma").is_file()
            info = env.method.create_backup(ctx, lambda *a: None)
            parts = sorted(
                p.name for p in (walg_repository / "basebackups_005" / info.id / "tar_partitions").iterdir()
            )
            assert parts and all(p.endswith(".tar.lzma") for p in parts), parts
        finally:
            env.sandbox.close()

    def test_env_file_credentials_reach_the_config(
        self, walg_binary: Path, walg_repository: Path, tmp_path: Path
    ) -> None:
        env_file = tmp_path / "walg.env"
        env_file.write_text(
            "# credentials\nexport AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY='s3cr3t/value'\n"
        )
        os.chmod(env_file, 0o600)
        pg_os_user_or_skip().chown(env_file)  # the tools' user's, as envFile requires
        env = self._kit_for(walg_settings(walg_binary, walg_repository, envFile=str(env_file)))
        try:
            ctx = env.context()
            env.method.prepare(ctx)
            doc = json.loads((ctx.work_dir / CONFIG_NAME).read_text())
            assert doc["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
            assert doc["AWS_SECRET_ACCESS_KEY"] == "s3cr3t/value"
            # the secret is in the 0600 file only: not in the rendered commands
            assert "s3cr3t" not in " ".join(env.method.archive_command(ctx) + env.method.restore_command(ctx))
            assert env.method.check(ctx).startswith("wal-g ")
            os.chmod(env_file, 0o644)
            with pytest.raises(BackupConfigError, match="chmod 600"):
                env.method.prepare(ctx)
            env_file.write_text(f"WALG_FILE_PREFIX={tmp_path}\n")
            os.chmod(env_file, 0o600)
            with pytest.raises(BackupConfigError, match="WALG_FILE_PREFIX"):
                env.method.prepare(ctx)
        finally:
            env.sandbox.close()

    def test_walg_found_on_path(
        self, walg_binary: Path, walg_repository: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without ``walgPath`` the commands say ``wal-g`` and PostgreSQL finds it on the PATH
        it inherited (the keeper's)."""
        monkeypatch.setenv("PATH", f"{walg_binary.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        env = self._kit_for({"filePrefix": str(walg_repository)})
        try:
            inst, ctx = env.archiving_primary()
            assert env.method.archive_command(ctx)[0] == "wal-g"
            name = switch_and_wait_archived(inst)
            assert (walg_repository / "wal_005" / f"{name}.lz4").is_file()
        finally:
            env.sandbox.close()

    def test_repository_errors_are_one_line(self, kit: KitEnv, walg_repository: Path) -> None:
        """WAL-G's own failure (here: its backups folder is a file) comes back as one line."""
        ctx = kit.context()
        (walg_repository / "basebackups_005").write_text("not a folder")
        with pytest.raises(StorageUnreachableError) as e:
            kit.method.check(ctx)
        message = str(e.value)
        assert "\n" not in message and "WAL-G cannot use the repository" in message, message
        with pytest.raises(StorageUnreachableError):
            kit.method.list_backups(ctx)

    def test_backup_push_failure_is_one_line(self, kit: KitEnv) -> None:
        _inst, ctx = kit.archiving_primary()
        elsewhere = replace(ctx, pgdata=kit.sandbox.path("not-the-data-directory"))
        with pytest.raises(BackupError) as e:
            kit.method.create_backup(elsewhere, lambda *a: None)
        message = str(e.value)
        assert message.startswith("wal-g backup-push failed: ") and "\n" not in message, message
        assert kit.method.list_backups(ctx) == []

    def test_failed_restore_leaves_an_empty_directory(self, kit: KitEnv, walg_repository: Path) -> None:
        _inst, ctx = kit.archiving_primary()
        info = kit.method.create_backup(ctx, lambda *a: None)
        parts = walg_repository / "basebackups_005" / info.id / "tar_partitions"
        part = next(p for p in sorted(parts.iterdir()) if p.name.startswith("part_"))
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])
        target = kit.sandbox.path("restore-target")
        with pytest.raises(BackupError) as e:
            kit.method.restore_backup(ctx, info, target, lambda *a: None)
        assert str(e.value).startswith(f"wal-g backup-fetch {info.id} failed: ")
        assert "\n" not in str(e.value)
        assert list(target.iterdir()) == [], "a half-restored data directory was left behind"

    def _kit_for(self, settings: dict[str, Any]) -> KitEnv:
        from stolon.testing.pgsandbox import PgSandbox, find_binaries_or_skip, pg_os_user_or_skip

        method = open_method(load_plugins(), self.method_name, settings)
        sandbox = PgSandbox(find_binaries_or_skip(), pg_os_user_or_skip(), prefix="stolon-backup-walg-")
        return KitEnv(sandbox, method, self.method_name)


class TestWalgStandin(WalgContract):
    """Against WAL-G's stand-in (this machine has no WAL-G)."""

    @pytest.fixture
    def walg_binary(self, walg_standin: Path) -> Path:
        return walg_standin


class TestWalgReal(WalgContract):
    """The same tests against the real ``wal-g`` on PATH (skipped when there is none)."""

    @pytest.fixture
    def walg_binary(self, walg_real: Path) -> Path:
        return walg_real


def test_a_hanging_walg_is_stopped(walg_repository: Path) -> None:
    """A WAL-G that never answers (an S3 endpoint that swallows requests; here a script
    standing in for it that sleeps) is killed at the context's time bound, and a check
    reports the storage as unreachable in one line."""
    from stolon.backup.base import BackupContext
    from stolon.backup.files import ensure_private_dir
    from stolon.testing.pgsandbox import pg_os_user_or_skip

    user = pg_os_user_or_skip()
    base = Path(tempfile.mkdtemp(prefix="stolon-walg-hang-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        tool = base / "wal-g"
        tool.write_text(
            '#!/bin/sh\nif [ "$1" = --version ]; then echo "wal-g version hang"; exit 0; fi\nexec sleep 60\n'
        )
        os.chmod(tool, 0o755)
        work = base / "work"
        work.mkdir()
        ensure_private_dir(work, user)
        ctx = BackupContext(
            cluster_name="c",
            pgdata=base / "pgdata",
            pg_bin_dir=Path("/usr/lib/postgresql/15/bin"),
            pg_major=15,
            os_user=user,
            work_dir=work,
            short_timeout=1.0,
        )
        method = open_method(load_plugins(), "walg", walg_settings(tool, walg_repository))
        with pytest.raises(StorageUnreachableError) as e:
            method.check(ctx)
        assert "did not finish within 1s" in str(e.value) and "\n" not in str(e.value)
    finally:
        shutil.rmtree(base, ignore_errors=True)
