"""The backup-method contract test kit, importable by third-party backup plugins.

It checks a method end to end against a real PostgreSQL: WAL archived through the rendered
``archive_command``, a base backup taken from a running server, the backup listed with its
LSNs and times, a point-in-time restore into an empty directory replayed through the
rendered ``restore_command`` to a recovery time (exactly the rows committed before it),
retention, idempotent archiving, errors for a missing backup and unreachable storage, and
private files in the method's work directory.

Use it from a test module of your plugin::

    from stolon.testing.backup_contract import BackupMethodContract

    class TestMyMethod(BackupMethodContract):
        method_name = "mymethod"          # your stolon.backup entry-point name

        @pytest.fixture
        def backup_settings(self, tmp_path_factory) -> dict:
            return {"repository": str(...)}   # a fresh, empty repository per test

        @pytest.fixture
        def unreachable_settings(self) -> dict | None:
            return {"repository": "s3://no-such-host..."}  # or None to skip that test

The method is built through the plugin registry (``stolon.backup`` entry points), so the
kit also checks that the plugin is installed and discoverable. Tests skip, with the reason,
when PostgreSQL is not installed. Each test makes its own sandbox under ``/tmp`` and stops
every server it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stolon.backup.base import (
    BackupConfigError,
    BackupContext,
    BackupError,
    BackupInfo,
    BackupMethod,
    BackupNotFoundError,
    PgServer,
    RecoveryTarget,
    select_backup,
    standby_archiving,
)
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.commands import expand_placeholders as substitute
from stolon.backup.files import ensure_private_dir
from stolon.backup.registry import open_method
from stolon.plugins import load_plugins
from stolon.postgres.instance import Instance
from stolon.postgres.recovery import (
    ArchiveRecoverySettings,
    RecoveryMode,
    RecoveryTargetSettings,
    build_recovery_config,
    internal_standby_config,
)
from stolon.postgres.replication import SourceServer, basebackup
from stolon.postgres.runas import child_environment
from stolon.testing.pgsandbox import PgSandbox, find_binaries_or_skip, pg_os_user_or_skip
from stolon.testing.store_contract import wait_until


@dataclass
class KitEnv:
    """One test's PostgreSQL sandbox and the method under test."""

    sandbox: PgSandbox
    method: BackupMethod
    method_name: str

    def context(self, inst: Instance | None = None, *, work: str = "work") -> BackupContext:
        work_dir = self.sandbox.dir / work
        ensure_private_dir(work_dir, self.sandbox.os_user)
        server = replication = None
        pgdata = self.sandbox.dir / "none"
        if inst is not None:
            pgdata = inst.data_dir
            server = PgServer(
                host=str(inst.socket_dir),
                port=inst.port,
                user=inst.superuser.username,
                password=inst.superuser.password,
            )
            replication = PgServer(
                host=str(inst.socket_dir),
                port=inst.port,
                user=inst.replication.username,
                password=inst.replication.password,
                database="replication",
            )
        return BackupContext(
            cluster_name="contract",
            pgdata=pgdata,
            pg_bin_dir=self.sandbox.binaries.bin_dir,
            pg_major=self.sandbox.pg_major,
            os_user=self.sandbox.os_user,
            work_dir=work_dir,
            server=server,
            replication=replication,
            timeout=600.0,
            short_timeout=120.0,
        )

    def archiving_primary(self, name: str = "primary") -> tuple[Instance, BackupContext]:
        """A running primary archiving through the method (``archive_mode = always``)."""
        inst = self.sandbox.instance(name)
        ctx = self.context(inst)
        self.method.prepare(ctx)
        inst.initdb(no_sync=True)
        inst.set_config(
            parameters=self.sandbox.parameters(
                inst,
                {
                    "archive_mode": "always",
                    "archive_command": archive_command(self.method.archive_command(ctx)),
                },
            )
        )
        inst.start()
        inst.wait_ready(60)
        inst.setup_roles()
        self.method.ensure_repository(ctx)
        return inst, ctx

    def run_shell(self, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run a rendered command through ``sh`` as PostgreSQL would (its OS user, its data
        directory as the working directory)."""
        return subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=child_environment(self.sandbox.os_user),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            **self.sandbox.os_user.popen_kwargs(),
        )


def sql(inst: Instance, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with inst.connect_admin(30) as conn:
        cur = conn.execute(query, args or None)
        return list(cur.fetchall()) if cur.description else []


def switch_and_wait_archived(inst: Instance, timeout: float = 120.0) -> str:
    """Close the current WAL segment and wait until it is archived; return its name. A WAL
    record is written first: a switch with nothing written since the last one is a no-op."""
    sql(inst, "SELECT pg_logical_emit_message(false, 'stolon', 'switch')")
    (name,) = sql(inst, "SELECT pg_walfile_name(pg_switch_wal())")[0]

    def archived() -> bool:
        row = sql(inst, "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")[0]
        return row[0] is not None and str(row[0]) >= str(name)

    if not wait_until(archived, timeout, 0.2):
        row = sql(inst, "SELECT * FROM pg_stat_archiver")
        raise AssertionError(f"WAL segment {name} was not archived within {timeout:g}s: {row}")
    return str(name)


class BackupMethodContract:
    """The behaviour every backup method must have (see the module docstring)."""

    #: the ``stolon.backup`` entry-point name of the method under test
    method_name: str = ""
    #: pushing a different file under an archived WAL name must fail (set False only for a
    #: tool that cannot tell, and say why in your plugin's README)
    refuses_overwrite: bool = True

    @pytest.fixture
    def backup_settings(self) -> dict[str, Any]:
        raise NotImplementedError("override the backup_settings fixture: settings for a fresh repository")

    @pytest.fixture
    def unreachable_settings(self) -> dict[str, Any] | None:
        return None

    @pytest.fixture
    def kit(self, backup_settings: dict[str, Any]) -> Iterator[KitEnv]:
        if not self.method_name:
            raise AssertionError("set method_name to the stolon.backup entry-point name")
        binaries = find_binaries_or_skip()
        os_user = pg_os_user_or_skip()
        pm = load_plugins()
        method = open_method(pm, self.method_name, backup_settings)
        with PgSandbox(binaries, os_user, prefix=f"stolon-backup-{self.method_name}-") as sandbox:
            yield KitEnv(sandbox, method, self.method_name)

    # -- configuration -----------------------------------------------------------------------

    def test_discoverable_and_unknown_setting_refused(self, backup_settings: dict[str, Any]) -> None:
        pm = load_plugins()
        assert self.method_name in pm.backup_methods(), f"{self.method_name} is not a stolon.backup plugin"
        with pytest.raises(BackupConfigError) as e:
            open_method(pm, self.method_name, {**backup_settings, "noSuchSetting": "x"})
        assert "noSuchSetting" in str(e.value)
        assert "\n" not in str(e.value)

    def test_check_and_private_files(self, kit: KitEnv) -> None:
        ctx = kit.context()
        kit.method.prepare(ctx)
        detail = kit.method.check(ctx)
        assert isinstance(detail, str) and detail
        for root, _dirs, files in os.walk(ctx.work_dir):
            for f in files:
                st = os.lstat(os.path.join(root, f))
                assert st.st_mode & 0o077 == 0, f"{f} in the work dir is readable by others"
                if kit.sandbox.os_user.switches:
                    assert st.st_uid == kit.sandbox.os_user.uid, f"{f} is not owned by the PostgreSQL user"

    def test_commands_render(self, kit: KitEnv) -> None:
        ctx = kit.context()
        kit.method.prepare(ctx)
        arch = archive_command(kit.method.archive_command(ctx))
        rest = restore_command(kit.method.restore_command(ctx))
        assert "%p" in arch
        assert "%f" in rest and "%p" in rest
        if kit.sandbox.pg_major < 16:
            # PostgreSQL 15 and older expand archive_command into a MAXPGPATH buffer and
            # silently cut it at 1023 bytes (the shell then fails on the truncated text)
            name = "000000010000000000000001.partial"
            expanded = substitute(arch, {"%p": f"pg_wal/{name}", "%f": name})
            assert len(expanded) <= 1023, (
                f"the archive command is {len(expanded)} bytes once expanded: PostgreSQL"
                f" {kit.sandbox.pg_major} truncates it at 1023 (keep long scripts in a file)"
            )

    def test_unreachable_storage(self, unreachable_settings: dict[str, Any] | None) -> None:
        if unreachable_settings is None:
            pytest.skip("the plugin gives no unreachable_settings")
        binaries = find_binaries_or_skip()
        os_user = pg_os_user_or_skip()
        method = open_method(load_plugins(), self.method_name, unreachable_settings)
        with PgSandbox(binaries, os_user, prefix="stolon-backup-unreachable-") as sandbox:
            kit = KitEnv(sandbox, method, self.method_name)
            ctx = kit.context()
            method.prepare(ctx)
            with pytest.raises(BackupError) as e:
                method.check(ctx)
            assert "\n" not in str(e.value).strip()

    # -- archiving -------------------------------------------------------------------------

    def test_archive_is_idempotent(self, kit: KitEnv) -> None:
        inst, _ctx = kit.archiving_primary()
        sql(inst, "CREATE TABLE t (id int)")
        first = switch_and_wait_archived(inst)
        sql(inst, "INSERT INTO t SELECT generate_series(1, 1000)")
        second = switch_and_wait_archived(inst)
        command = str(sql(inst, "SHOW archive_command")[0][0])
        segment = inst.data_dir / "pg_wal" / first
        if not segment.exists():
            pytest.skip(f"segment {first} was already recycled")
        again = kit.run_shell(substitute(command, {"%p": f"pg_wal/{first}", "%f": first}), inst.data_dir)
        assert again.returncode == 0, f"archiving {first} a second time failed: {again.stderr[-2000:]}"
        if not self.refuses_overwrite:
            return
        other = inst.data_dir / "pg_wal" / second
        if not other.exists():
            pytest.skip(f"segment {second} was already recycled")
        fake_dir = kit.sandbox.path("fake")
        fake = fake_dir / first
        shutil.copyfile(other, fake)
        kit.sandbox.os_user.chown(fake)
        clash = kit.run_shell(substitute(command, {"%p": str(fake), "%f": first}), inst.data_dir)
        assert clash.returncode != 0, f"a different file was archived over {first}"

    def test_standby_archives_the_same_wal_concurrently(self, kit: KitEnv) -> None:
        """With ``archive_mode = always`` on the master and a streaming standby, both push the
        same segments at about the same moment: no failure on either side."""
        if not standby_archiving(kit.method):
            pytest.skip("the method archives from the master only (standby_archiving = False)")
        inst, _ctx = kit.archiving_primary()
        standby = kit.sandbox.instance("standby")
        repl = inst.replication
        sql(inst, "SELECT pg_create_physical_replication_slot('stolon_standby')")
        basebackup(
            standby,
            SourceServer(str(inst.socket_dir), inst.port, repl.username, repl.password),
            db_uid="standby",
            use_slot=False,
            fast_checkpoint=True,
            timeout=300,
        )
        recovery = internal_standby_config(
            host=str(inst.socket_dir),
            port=inst.port,
            user=repl.username,
            password=repl.password,
            db_uid="standby",
        )
        params = kit.sandbox.parameters(
            standby,
            {"archive_mode": "always", "archive_command": str(sql(inst, "SHOW archive_command")[0][0])},
        )
        standby.set_config(parameters=params, recovery=recovery)
        standby.start()
        standby.wait_ready(120)
        sql(inst, "CREATE TABLE t (id int)")
        last = ""
        for i in range(6):
            sql(inst, "INSERT INTO t SELECT generate_series(1, 1000)")
            last = switch_and_wait_archived(inst)
            del i

        def standby_archived() -> bool:
            row = sql(standby, "SELECT last_archived_wal FROM pg_stat_archiver")[0]
            return row[0] is not None and str(row[0]) >= last

        if not wait_until(standby_archived, 120, 0.3):
            row = sql(standby, "SELECT * FROM pg_stat_archiver")
            raise AssertionError(
                f"the standby did not archive {last}: {row}\n{kit.sandbox.log('standby')[-3000:]}"
            )
        for who in (inst, standby):
            failed = sql(who, "SELECT failed_count, last_failed_wal FROM pg_stat_archiver")[0]
            assert failed[0] == 0, f"archiving failed on {who}: {failed}"

    # -- base backup, list, point-in-time restore -------------------------------------------

    def test_backup_list_and_point_in_time_restore(self, kit: KitEnv) -> None:
        inst, ctx = kit.archiving_primary()
        sql(inst, "CREATE TABLE t (id int primary key)")
        sql(inst, "CREATE TABLE dropped (id int)")
        sql(inst, "INSERT INTO t SELECT generate_series(1, 10)")
        reports: list[str] = []

        def progress(detail: str, done: int | None, total: int | None) -> None:
            reports.append(detail)

        info = kit.method.create_backup(ctx, progress)
        assert isinstance(info, BackupInfo)
        assert info.timeline == 1
        assert info.start_lsn <= info.end_lsn
        assert info.start_time <= info.end_time
        assert info.size > 0
        listed = kit.method.list_backups(ctx)
        assert [b.id for b in listed] == [info.id]
        assert listed[0].end_lsn == info.end_lsn

        sql(inst, "INSERT INTO t SELECT generate_series(11, 20)")
        (target,) = sql(inst, "SELECT clock_timestamp()")[0]
        assert isinstance(target, datetime)
        sql(inst, "INSERT INTO t SELECT generate_series(21, 30)")
        sql(inst, "DROP TABLE dropped")
        switch_and_wait_archived(inst)

        rt = RecoveryTarget("time", target.isoformat(sep=" "))
        chosen = select_backup(listed, "latest", rt)
        assert chosen.id == info.id
        restored = self._restore(kit, ctx, chosen, rt, "restored")
        rows = [r[0] for r in sql(restored, "SELECT id FROM t ORDER BY id")]
        assert rows == list(range(1, 21)), "the restore did not stop at the recovery target time"
        assert sql(restored, "SELECT to_regclass('dropped') IS NOT NULL")[0][0] is True

    def test_restore_latest_and_retention(self, kit: KitEnv) -> None:
        inst, ctx = kit.archiving_primary()
        sql(inst, "CREATE TABLE t (id int)")
        ids = []
        for n in range(3):
            sql(inst, "INSERT INTO t VALUES (%s)", n)
            ids.append(kit.method.create_backup(ctx, lambda *a: None).id)
        assert len(set(ids)) == 3
        assert [b.id for b in kit.method.list_backups(ctx)] == ids
        sql(inst, "INSERT INTO t VALUES (99)")
        switch_and_wait_archived(inst)

        deleted = kit.method.delete_backups(ctx, 1)
        assert sorted(deleted) == sorted(ids[:2])
        remaining = kit.method.list_backups(ctx)
        assert [b.id for b in remaining] == ids[2:]
        with pytest.raises(BackupNotFoundError):
            select_backup(remaining, ids[0], RecoveryTarget())

        restored = self._restore(kit, ctx, remaining[-1], RecoveryTarget(), "latest")
        assert [r[0] for r in sql(restored, "SELECT id FROM t ORDER BY id")] == [0, 1, 2, 99]

    def test_restore_of_a_missing_backup_fails_cleanly(self, kit: KitEnv) -> None:
        _inst, ctx = kit.archiving_primary()
        real = kit.method.create_backup(ctx, lambda *a: None)
        ghost = BackupInfo(
            id="stolon-no-such-backup",
            start_time=real.start_time,
            end_time=real.end_time,
            start_lsn=real.start_lsn,
            end_lsn=real.end_lsn,
            timeline=real.timeline,
            size=1,
        )
        target = kit.sandbox.path("ghost")
        with pytest.raises(BackupError) as e:
            kit.method.restore_backup(ctx, ghost, target, lambda *a: None)
        assert "\n" not in str(e.value).strip()

    # -- helpers ----------------------------------------------------------------------------

    def _restore(
        self, kit: KitEnv, ctx: BackupContext, backup: BackupInfo, target: RecoveryTarget, name: str
    ) -> Instance:
        restored = kit.sandbox.instance(name)
        restored.data_dir.mkdir(mode=0o700)
        kit.sandbox.os_user.chown(restored.data_dir)
        kit.method.restore_backup(ctx, backup, restored.data_dir, lambda *a: None)
        assert (restored.data_dir / "PG_VERSION").exists(), "the restore left no data directory"
        for leftover in ("recovery.signal", "standby.signal"):
            assert not (restored.data_dir / leftover).exists(), f"the method wrote {leftover}"
        targets = None
        if target.kind == "time":
            targets = RecoveryTargetSettings(recovery_target_time=target.value)
        recovery = build_recovery_config(
            RecoveryMode.RECOVERY,
            None,
            ArchiveRecoverySettings(restore_command(kit.method.restore_command(ctx))),
            targets,
        )
        kit.sandbox.os_user.chown(restored.data_dir)
        restored.set_config(parameters=kit.sandbox.parameters(restored), recovery=recovery)
        restored.start()
        try:
            restored.wait_recovery_done(300)
            restored.wait_ready(120)
        except Exception:
            raise AssertionError(
                f"the restored instance did not recover:\n{kit.sandbox.log(name)[-4000:]}"
            ) from None
        return restored
