"""Rendering the ``barman`` method's commands (no tools or servers needed)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from stolon_backup_barman import commands
from stolon_backup_barman.method import BarmanMethod

from stolon.backup.base import BackupConfigError, BackupContext
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.commands import expand_placeholders as substitute
from stolon.postgres.runas import OSUser

BASE: dict[str, Any] = {
    "destinationUrl": "s3://my-bucket/stolon",
    "endpointUrl": "http://127.0.0.1:9000",
    "toolDir": "/opt/barman/bin",
}


def ctx(work_dir: Path, pg_major: int = 15, cluster: str = "c1") -> BackupContext:
    return BackupContext(
        cluster_name=cluster,
        pgdata=work_dir / "pgdata",
        pg_bin_dir=Path("/usr/lib/postgresql/15/bin"),
        pg_major=pg_major,
        os_user=OSUser.current(),
        work_dir=work_dir,
    )


def words(command: str, name: str = "000000010000000000000003") -> list[str]:
    """What the shell would pass to the program once PostgreSQL expanded ``command``."""
    return shlex.split(substitute(command, {"%p": f"pg_wal/{name}", "%f": name}))


@pytest.mark.parametrize(
    ("extra", "expected_args", "aws_files"),
    [
        ({}, ["", "--cloud-provider", "aws-s3", "--endpoint-url", "http://127.0.0.1:9000"], "ambient"),
        ({"compression": "gzip"}, ["--gzip", "--cloud-provider", "aws-s3"], "ambient"),
        ({"envFile": "/etc/s3.env"}, ["--cloud-provider"], "aws-files"),
        ({"addressingStyle": "path"}, ["--addressing-style", "path"], "ambient"),
    ],
)
def test_archive_command(
    tmp_path: Path, extra: dict[str, Any], expected_args: list[str], aws_files: str
) -> None:
    m = BarmanMethod({**BASE, **extra})
    argv = words(archive_command(m.archive_command(ctx(tmp_path))))
    assert argv[:2] == ["/bin/sh", str(tmp_path / commands.SCRIPT_FILE)]
    assert argv[2:5] == ["pg_wal/000000010000000000000003", "000000010000000000000003", aws_files]
    assert argv[5:7] == [
        "/opt/barman/bin/barman-cloud-wal-restore",
        "/opt/barman/bin/barman-cloud-wal-archive",
    ]
    tail = argv[7:]
    for i, word in enumerate(expected_args):
        assert word in tail, (word, tail)
        if i:
            assert tail.index(word) > tail.index(expected_args[i - 1]) or word == ""
    assert tail[-2:] == ["s3://my-bucket/stolon", "c1"]
    assert "/usr/bin/env" not in argv  # credentials are set up by the script itself


@pytest.mark.parametrize(
    ("extra", "prefix"),
    [
        ({}, []),
        ({"envFile": "/etc/s3.env"}, ["/usr/bin/env"]),
    ],
)
def test_restore_command(tmp_path: Path, extra: dict[str, Any], prefix: list[str]) -> None:
    m = BarmanMethod({**BASE, "serverName": "srv", **extra})
    argv = words(restore_command(m.restore_command(ctx(tmp_path))))
    if prefix:
        assert argv[0] == "/usr/bin/env"
        assert f"AWS_SHARED_CREDENTIALS_FILE={tmp_path}/aws-credentials" in argv
        assert f"AWS_CONFIG_FILE={tmp_path}/aws-config" in argv
        argv = argv[argv.index("/opt/barman/bin/barman-cloud-wal-restore") :]
    assert argv[0] == "/opt/barman/bin/barman-cloud-wal-restore"
    assert argv[1:4] == ["--no-partial", "--spool-dir", str(tmp_path / "wal-spool")]
    assert argv[-4:] == [
        "s3://my-bucket/stolon",
        "srv",
        "000000010000000000000003",
        "pg_wal/000000010000000000000003",
    ]


def test_values_reach_the_shell_quoted(tmp_path: Path) -> None:
    work = tmp_path / "it's $(here) `x` 100% sure"
    m = BarmanMethod({**BASE, "toolDir": "/opt/b a$r;/bin", "serverName": "s"})
    argv = words(archive_command(m.archive_command(ctx(work))))
    assert argv[1] == f"{work}/{commands.SCRIPT_FILE}"
    assert argv[5] == "/opt/b a$r;/bin/barman-cloud-wal-restore"


def test_no_secret_in_commands(tmp_path: Path) -> None:
    env = tmp_path / "s3.env"
    env.write_text("AWS_ACCESS_KEY_ID=AKIDEXAMPLE\nAWS_SECRET_ACCESS_KEY=verysecret\n")
    env.chmod(0o600)
    c = ctx(tmp_path / "work")
    c.work_dir.mkdir(mode=0o700)
    m = BarmanMethod({**BASE, "envFile": str(env)})
    m.prepare(c)
    for rendered in (archive_command(m.archive_command(c)), restore_command(m.restore_command(c))):
        assert "verysecret" not in rendered and "AKIDEXAMPLE" not in rendered
    cred = c.work_dir / "aws-credentials"
    assert cred.stat().st_mode & 0o777 == 0o600
    assert "aws_secret_access_key = verysecret" in cred.read_text()
    assert (c.work_dir / commands.SCRIPT_FILE).read_text() == commands.ARCHIVE_SCRIPT


def test_too_long_archive_command_is_refused_before_postgresql_16(tmp_path: Path) -> None:
    long_prefix = "/".join(["p" * 60] * 14)
    m = BarmanMethod({**BASE, "destinationUrl": f"s3://my-bucket/{long_prefix}"})
    with pytest.raises(BackupConfigError) as e:
        m.archive_command(ctx(tmp_path, pg_major=15))
    assert "1023" in str(e.value) and "shorten" in str(e.value)
    assert m.archive_command(ctx(tmp_path, pg_major=16))


def test_tool_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "barman-cloud-backup"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    m = BarmanMethod({"destinationUrl": "s3://my-bucket"})
    monkeypatch.setenv("PATH", str(bin_dir))
    assert m.tool("barman-cloud-backup") == "barman-cloud-backup"  # on PATH: by name
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(bin_dir))
    assert m.tool("barman-cloud-backup") == str(tool)  # next to this Python
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path / "empty"))
    assert m.tool("barman-cloud-backup") == "barman-cloud-backup"  # not found: check() says so


def test_unusable_cluster_name_fails_in_prepare(tmp_path: Path) -> None:
    m = BarmanMethod({"destinationUrl": "s3://my-bucket"})
    with pytest.raises(BackupConfigError) as e:
        m.prepare(ctx(tmp_path, cluster="my cluster"))
    assert "serverName" in str(e.value)
