"""The pgbackrest method beyond the contract kit, against real PostgreSQL 15 and pgBackRest:
a master and a standby archiving the same segments (``archive_mode = always``), a failover
to a new timeline, a server reached over TCP, a stanza of
another database system, an encrypted repository, a backup whose WAL is never archived, a
restore into a non-empty directory, and pgbackrest missing from PATH."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stolon_backup_pgbackrest.method import NOT_INSTALLED

from stolon.backup.base import BackupConfigError, BackupError, RecoveryTarget
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.registry import open_method
from stolon.plugins import load_plugins
from stolon.postgres import slots
from stolon.postgres.instance import Instance
from stolon.postgres.recovery import NO_RECOVERY, internal_standby_config
from stolon.postgres.replication import SourceServer, basebackup
from stolon.testing.backup_contract import (
    BackupMethodContract,
    KitEnv,
    sql,
    substitute,
    switch_and_wait_archived,
)
from stolon.testing.pgsandbox import REPL_PASSWORD, PgSandbox, find_binaries_or_skip, pg_os_user_or_skip
from stolon.testing.store_contract import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def kit_for(pgbackrest_bin: str) -> Iterator[Any]:
    """Build a :class:`KitEnv` (sandbox + method) from settings; everything is closed after."""
    sandboxes: list[PgSandbox] = []

    def make(settings: dict[str, Any]) -> KitEnv:
        method = open_method(load_plugins(), "pgbackrest", settings)
        sandbox = PgSandbox(find_binaries_or_skip(), pg_os_user_or_skip(), prefix="stolon-pgbackrest-")
        sandboxes.append(sandbox)
        return KitEnv(sandbox, method, "pgbackrest")

    yield make
    for sandbox in sandboxes:
        sandbox.close()


def _archiver(inst: Instance) -> tuple[int, str | None, int, str | None]:
    row = sql(
        inst, "SELECT archived_count, last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver"
    )
    return (int(row[0][0]), row[0][1], int(row[0][2]), row[0][3])


def _standby(kit: KitEnv, primary: Instance, name: str) -> Instance:
    """A streaming standby of ``primary`` archiving through the method too."""
    uid = "pgbr" + name
    with primary.connect_admin(30) as conn:
        slots.create_slot(conn, f"stolon_{uid}")
    inst = kit.sandbox.instance(name)
    source = SourceServer(host="127.0.0.1", port=primary.port, user="repl", password=REPL_PASSWORD)
    basebackup(inst, source, db_uid=uid, fast_checkpoint=True, timeout=120)
    ctx = kit.context(inst, work=f"work-{name}")
    kit.method.prepare(ctx)
    inst.set_config(
        parameters=kit.sandbox.parameters(
            inst,
            {"archive_mode": "always", "archive_command": archive_command(kit.method.archive_command(ctx))},
        ),
        recovery=internal_standby_config(
            host="127.0.0.1", port=primary.port, user="repl", password=REPL_PASSWORD, db_uid=uid
        ),
    )
    inst.start()
    inst.wait_ready(60)
    return inst


def test_master_and_standby_archive_the_same_segments(
    kit_for: Any, pgbackrest_settings: dict[str, Any]
) -> None:
    """With archive_mode = always both push every segment at about the same moment: each
    segment ends up archived once, and neither archiver records a failure (the archive
    command retries the rename race of two identical pushes)."""
    kit = kit_for(pgbackrest_settings)
    primary, ctx = kit.archiving_primary()
    standby = _standby(kit, primary, "standby")
    sql(primary, "CREATE TABLE t (id int)")
    last = ""
    for n in range(6):
        sql(primary, "INSERT INTO t SELECT generate_series(1, %s)", 1000 * (n + 1))
        last = switch_and_wait_archived(primary)

    def standby_archived() -> bool:
        _count, wal, _failed, _fwal = _archiver(standby)
        return wal is not None and wal >= last

    assert wait_until(standby_archived, 120, 0.2), f"the standby did not archive {last}: {_archiver(standby)}"
    assert _archiver(primary)[2] == 0, f"the master's archiver failed: {_archiver(primary)}"
    assert _archiver(standby)[2] == 0, f"the standby's archiver failed: {_archiver(standby)}"
    # and the archive serves the last segment through the restore command
    fetched = kit.sandbox.path("fetched")
    command = restore_command(kit.method.restore_command(ctx))
    got = kit.run_shell(substitute(command, {"%f": last, "%p": f"{fetched}/{last}"}), primary.data_dir)
    assert got.returncode == 0, got.stderr
    assert (fetched / last).stat().st_size == (primary.data_dir / "pg_wal" / last).stat().st_size


def test_failover_new_master_archives_and_backs_up_a_new_timeline(
    kit_for: Any, pgbackrest_settings: dict[str, Any]
) -> None:
    """The master dies, its standby is promoted: the new master archives timeline 2 (the
    history file too) into the same stanza and takes backups there; a restore of the old
    timeline-1 backup replays across the switch to the end of the archive."""
    kit = kit_for(pgbackrest_settings)
    old, old_ctx = kit.archiving_primary("old")
    sql(old, "CREATE TABLE t (id int)")
    sql(old, "INSERT INTO t VALUES (1)")
    before = kit.method.create_backup(old_ctx, lambda *a: None)
    new = _standby(kit, old, "new")
    sql(old, "INSERT INTO t VALUES (2)")
    switch_and_wait_archived(old)
    assert wait_until(lambda: bool(sql(new, "SELECT count(*) FROM t WHERE id = 2")[0][0]), 60, 0.1)
    old.stop("immediate")

    new.set_config(recovery=NO_RECOVERY)
    new.promote()
    sql(new, "INSERT INTO t VALUES (3)")
    switch_and_wait_archived(new)
    new_ctx = kit.context(new, work="work-new")
    after = kit.method.create_backup(new_ctx, lambda *a: None)
    assert (before.timeline, after.timeline) == (1, 2)
    assert [b.id for b in kit.method.list_backups(new_ctx)] == [before.id, after.id]
    command = restore_command(kit.method.restore_command(new_ctx))
    fetched = kit.sandbox.path("fetched")
    got = kit.run_shell(substitute(command, {"%f": "00000002.history", "%p": f"{fetched}/h"}), new.data_dir)
    assert got.returncode == 0, got.stderr

    sql(new, "INSERT INTO t VALUES (4)")
    switch_and_wait_archived(new)
    restored = BackupMethodContract()._restore(kit, new_ctx, before, RecoveryTarget(), "restored")
    assert [r[0] for r in sql(restored, "SELECT id FROM t ORDER BY id")] == [1, 2, 3, 4]


def test_backup_through_a_tcp_host(kit_for: Any, pgbackrest_settings: dict[str, Any]) -> None:
    """A server given as a TCP host (no socket directory): pgbackrest.conf has no
    pg1-socket-path and libpq takes the host from PGHOST."""
    kit = kit_for(pgbackrest_settings)
    _inst, ctx = kit.archiving_primary()
    assert ctx.server is not None
    tcp = dataclasses.replace(ctx, server=dataclasses.replace(ctx.server, host="127.0.0.1"))
    info = kit.method.create_backup(tcp, lambda *a: None)
    assert "pg1-socket-path" not in (ctx.work_dir / "pgbackrest.conf").read_text()
    assert [b.id for b in kit.method.list_backups(ctx)] == [info.id]


def test_stanza_of_another_database_system_is_refused(
    kit_for: Any, pgbackrest_settings: dict[str, Any]
) -> None:
    kit = kit_for(pgbackrest_settings)
    _first, _ctx = kit.archiving_primary("first")
    other = kit.sandbox.primary("other")
    with pytest.raises(BackupError) as e:
        kit.method.ensure_repository(kit.context(other, work="work-other"))
    message = str(e.value)
    assert "\n" not in message
    assert "another database system" in message and "backup.settings.stanza" in message


def test_encrypted_repository(kit_for: Any, pgbackrest_repository: Path) -> None:
    """cipherType aes-256-cbc with the passphrase from an envFile: it reaches pgbackrest.conf
    (0600) only, never a command line; backups and WAL are unreadable without it."""
    secret = "correct horse battery staple 42"
    env_file = pgbackrest_repository.parent / (pgbackrest_repository.name + ".env")
    env_file.write_text(f"# repository passphrase\nPGBACKREST_REPO1_CIPHER_PASS='{secret}'\n")
    os.chmod(env_file, 0o600)
    pg_os_user_or_skip().chown(env_file)  # the tools' user's, as envFile requires
    try:
        settings = {
            "repoPath": str(pgbackrest_repository),
            "cipherType": "aes-256-cbc",
            "envFile": str(env_file),
        }
        kit = kit_for(settings)
        inst, ctx = kit.archiving_primary()
        conf = ctx.work_dir / "pgbackrest.conf"
        assert secret in conf.read_text()
        assert conf.stat().st_mode & 0o777 == 0o600
        rendered = archive_command(kit.method.archive_command(ctx)) + restore_command(
            kit.method.restore_command(ctx)
        )
        assert secret not in rendered
        sql(inst, "CREATE TABLE t (id int)")
        sql(inst, "INSERT INTO t VALUES (1), (2)")
        info = kit.method.create_backup(ctx, lambda *a: None)
        sql(inst, "INSERT INTO t VALUES (3)")
        switch_and_wait_archived(inst)
        assert [b.id for b in kit.method.list_backups(ctx)] == [info.id]
        assert secret.encode() not in b"".join(
            p.read_bytes() for p in pgbackrest_repository.rglob("*") if p.is_file()
        )
        restored = BackupMethodContract()._restore(kit, ctx, info, RecoveryTarget(), "restored")
        assert [r[0] for r in sql(restored, "SELECT id FROM t ORDER BY id")] == [1, 2, 3]

        # a wrong passphrase: a one-line error that points at the setting
        env_file.write_text("PGBACKREST_REPO1_CIPHER_PASS=wrong\n")
        wrong = open_method(load_plugins(), "pgbackrest", settings)
        with pytest.raises(BackupError) as e:
            wrong.list_backups(kit.context(inst, work="work-wrong"))
        assert "\n" not in str(e.value) and "wrong" not in str(e.value)
        assert "cipher" in str(e.value).lower()
    finally:
        env_file.unlink(missing_ok=True)


def test_backup_fails_cleanly_when_wal_is_not_archived(
    kit_for: Any, pgbackrest_settings: dict[str, Any]
) -> None:
    kit = kit_for({**pgbackrest_settings, "archiveTimeout": 3})
    # pgBackRest checks that archive_command mentions pgbackrest: this one does, and fails
    inst = kit.sandbox.primary("broken", {"archive_mode": "on", "archive_command": "test pgbackrest = no"})
    ctx = kit.context(inst)
    kit.method.ensure_repository(ctx)
    with pytest.raises(BackupError) as e:
        kit.method.create_backup(ctx, lambda *a: None)
    message = str(e.value)
    assert "\n" not in message and "archive_command" in message
    assert kit.method.list_backups(ctx) == []


def test_restore_into_a_non_empty_directory_changes_nothing(
    kit_for: Any, pgbackrest_settings: dict[str, Any]
) -> None:
    kit = kit_for(pgbackrest_settings)
    _inst, ctx = kit.archiving_primary()
    info = kit.method.create_backup(ctx, lambda *a: None)
    target = kit.sandbox.path("target")
    keep = target / "keep-me"
    keep.write_text("operator's file\n")
    kit.sandbox.os_user.chown(keep)
    with pytest.raises(BackupError) as e:
        kit.method.restore_backup(ctx, info, target, lambda *a: None)
    assert "\n" not in str(e.value) and "not an empty directory" in str(e.value)
    assert sorted(os.listdir(target)) == ["keep-me"]


def test_missing_pgbackrest_is_a_config_error(
    kit_for: Any, pgbackrest_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kit = kit_for(pgbackrest_settings)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupConfigError) as e:
        kit.method.check(kit.context())
    assert str(e.value) == NOT_INSTALLED
