"""Fast tests of the pgbackrest method without PostgreSQL: settings validation, the rendered
pgbackrest.conf, the archive/restore commands, and reading pgBackRest's output (samples
captured from pgBackRest 2.45)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from stolon_backup_pgbackrest.config import Target, render_config
from stolon_backup_pgbackrest.info import one_line, parse_info, tool_error
from stolon_backup_pgbackrest.method import ARCHIVE_SCRIPT, RESTORE_SCRIPT, PgBackRestMethod
from stolon_backup_pgbackrest.options import Options, parse_options

from stolon.backup.base import BackupConfigError, BackupContext, BackupError, PgServer
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.commands import expand_placeholders as substitute
from stolon.backup.registry import open_method
from stolon.plugins import load_plugins
from stolon.postgres.lsn import parse_lsn
from stolon.postgres.runas import OSUser

# -- settings ------------------------------------------------------------------------------------


def test_defaults() -> None:
    assert parse_options({"repoPath": "/srv/pgbackrest"}) == Options(repo_path=Path("/srv/pgbackrest"))


def test_every_setting() -> None:
    opts = parse_options(
        {
            "repoPath": "/srv/repo",
            "stanza": "main-1",
            "compressType": "zst",
            "processMax": 4,
            "startFast": False,
            "archiveTimeout": 120,
            "cipherType": "aes-256-cbc",
            "envFile": "/etc/stolon/pgbackrest.env",
            "logLevelFile": "detail",
        }
    )
    assert opts == Options(
        repo_path=Path("/srv/repo"),
        stanza="main-1",
        compress_type="zst",
        process_max=4,
        start_fast=False,
        archive_timeout=120,
        cipher_type="aes-256-cbc",
        env_file="/etc/stolon/pgbackrest.env",
        log_level_file="detail",
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "backup.settings.repoPath: is required"),
        ({"repoPath": ""}, "backup.settings.repoPath: must not be empty"),
        ({"repoPath": "relative/dir"}, "backup.settings.repoPath: must be an absolute path"),
        ({"repoPath": "/srv/repo "}, "backup.settings.repoPath: '/srv/repo ' starts or ends with a space"),
        ({"repoPath": "/srv/a\nb"}, "backup.settings.repoPath: must not contain control characters"),
        ({"repoPath": "/r", "repo1Path": "/x"}, "backup.settings.repo1Path: unknown setting"),
        (
            {"repoPath": "/r", "stanza": "has space"},
            "backup.settings.stanza: 'has space' is not a valid stanza",
        ),
        ({"repoPath": "/r", "stanza": "a:b"}, "backup.settings.stanza: 'a:b' is not a valid stanza"),
        ({"repoPath": "/r", "stanza": ".."}, "backup.settings.stanza: '..' is not a valid stanza"),
        ({"repoPath": "/r", "stanza": 5}, "backup.settings.stanza: must be a string"),
        ({"repoPath": "/r", "compressType": "xz"}, "backup.settings.compressType: unknown value 'xz'"),
        ({"repoPath": "/r", "processMax": 0}, "backup.settings.processMax: must be at least 1"),
        ({"repoPath": "/r", "processMax": 65}, "backup.settings.processMax: must be at most 64"),
        ({"repoPath": "/r", "processMax": True}, "backup.settings.processMax: must be an integer"),
        ({"repoPath": "/r", "startFast": "yes"}, "backup.settings.startFast: must be true or false"),
        ({"repoPath": "/r", "archiveTimeout": 0}, "backup.settings.archiveTimeout: must be at least 1"),
        ({"repoPath": "/r", "cipherType": "aes"}, "backup.settings.cipherType: unknown value 'aes'"),
        (
            {"repoPath": "/r", "cipherType": "aes-256-cbc"},
            "backup.settings.envFile: cipherType aes-256-cbc needs",
        ),
        ({"repoPath": "/r", "envFile": "creds.env"}, "backup.settings.envFile: must be an absolute path"),
        ({"repoPath": "/r", "logLevelFile": "trace"}, "backup.settings.logLevelFile: unknown value 'trace'"),
    ],
)
def test_bad_settings(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(BackupConfigError) as e:
        parse_options(settings)
    assert str(e.value).startswith(expected), str(e.value)
    assert "\n" not in str(e.value)


def test_bad_settings_through_the_registry() -> None:
    with pytest.raises(BackupConfigError) as e:
        open_method(load_plugins(), "pgbackrest", {"repoPath": "/r", "retentionFull": 2})
    assert str(e.value).startswith("backup.settings.retentionFull: unknown setting")


@pytest.mark.parametrize(
    ("stanza", "cluster", "expected"),
    [
        ("", "kube-stolon", "kube-stolon"),
        ("", "c1.prod_2", "c1.prod_2"),
        ("main", "any name at all", "main"),
    ],
)
def test_stanza(stanza: str, cluster: str, expected: str) -> None:
    assert Options(repo_path=Path("/r"), stanza=stanza).stanza_for(cluster) == expected


@pytest.mark.parametrize("cluster", ["my cluster", "a/b", "-x", "x" * 65, ""])
def test_cluster_name_that_is_no_stanza(cluster: str) -> None:
    with pytest.raises(BackupConfigError) as e:
        Options(repo_path=Path("/r")).stanza_for(cluster)
    assert str(e.value).startswith("backup.settings.stanza: the cluster name")
    assert str(e.value).endswith("set backup.settings.stanza")


# -- pgbackrest.conf -----------------------------------------------------------------------------

WORK = Path("/var/lib/stolon/keeper/backup/archive")
PGDATA = Path("/var/lib/stolon/keeper/postgres")


def test_config_for_a_running_server() -> None:
    text = render_config(
        parse_options({"repoPath": "/srv/repo"}),
        "c1",
        WORK,
        Target(PGDATA, port=5433, socket_dir="/run/stolon", user="stolon", database="postgres"),
    )
    assert text.splitlines()[2:] == [
        "[global]",
        "repo1-type=posix",
        "repo1-path=/srv/repo",
        "repo1-retention-full=9999999",
        "compress-type=gz",
        "process-max=1",
        "start-fast=y",
        "archive-timeout=60",
        "archive-mode-check=n",
        "expire-auto=n",
        f"lock-path={WORK}/lock",
        f"log-path={WORK}/log",
        f"spool-path={WORK}/spool",
        "log-level-file=off",
        "",
        "[c1]",
        f"pg1-path={PGDATA}",
        "pg1-port=5433",
        "pg1-socket-path=/run/stolon",
        "pg1-user=stolon",
        "pg1-database=postgres",
    ]
    assert text.startswith("#") and text.endswith("\n")


def test_config_without_a_server_names_only_the_data_directory() -> None:
    text = render_config(
        parse_options({"repoPath": "/srv/repo", "startFast": False}), "c1", WORK, Target(PGDATA)
    )
    section = text.split("[c1]\n", 1)[1]
    assert section == f"pg1-path={PGDATA}\n"
    assert "start-fast=n\n" in text


def test_config_with_a_cipher() -> None:
    opts = parse_options({"repoPath": "/r", "cipherType": "aes-256-cbc", "envFile": "/etc/pgbr.env"})
    text = render_config(opts, "c1", WORK, Target(PGDATA), cipher_pass="s3cret pass")
    assert "repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=s3cret pass\n" in text
    with pytest.raises(BackupConfigError) as e:
        render_config(opts, "c1", WORK, Target(PGDATA), cipher_pass=None)
    assert str(e.value).startswith(
        "backup.settings.envFile: /etc/pgbr.env holds no PGBACKREST_REPO1_CIPHER_PASS"
    )


def test_config_refuses_values_that_would_break_the_file() -> None:
    opts = parse_options({"repoPath": "/r", "cipherType": "aes-256-cbc", "envFile": "/etc/pgbr.env"})
    with pytest.raises(BackupConfigError) as e:
        render_config(opts, "c1", WORK, Target(PGDATA), cipher_pass="pass\n[evil]")
    assert "evil" not in str(e.value)
    with pytest.raises(BackupConfigError):
        render_config(opts, "c1", WORK, Target(Path("/data\nrepo1-path=/elsewhere")), cipher_pass="p")


# -- the archive and restore commands ------------------------------------------------------------


def _ctx(work_dir: Path, cluster: str = "c1") -> BackupContext:
    return BackupContext(
        cluster_name=cluster,
        pgdata=PGDATA,
        pg_bin_dir=Path("/usr/lib/postgresql/15/bin"),
        pg_major=15,
        os_user=OSUser.current(),
        work_dir=work_dir,
        server=PgServer(host="/run/stolon", port=5433, user="stolon", password="pw"),
    )


def test_rendered_commands() -> None:
    method = PgBackRestMethod({"repoPath": "/srv/repo"})
    ctx = _ctx(WORK)
    conf = f"--config={WORK}/pgbackrest.conf"
    assert archive_command(method.archive_command(ctx)) == (
        f"/bin/sh -c '{ARCHIVE_SCRIPT}' stolon-pgbackrest-archive pgbackrest {conf} --stanza=c1 archive-push %p"
    )
    assert restore_command(method.restore_command(ctx)) == (
        f"/bin/sh -c '{RESTORE_SCRIPT}' stolon-pgbackrest-restore pgbackrest {conf} --stanza=c1 archive-get %f %p"
    )


def test_rendered_commands_quote_odd_paths() -> None:
    method = PgBackRestMethod({"repoPath": "/srv/repo", "stanza": "s"})
    ctx = _ctx(Path("/data/it's 100%/backup"))
    rendered = archive_command(method.archive_command(ctx))
    assert "'--config=/data/it'\"'\"'s 100%%/backup/pgbackrest.conf'" in rendered


@pytest.fixture
def fake_pgbackrest(tmp_path: Path) -> Path:
    """A stand-in for the pgbackrest binary that records its argv and working directory and
    fails as many times as ``fail-count`` says: it exercises the retry and ``--pg1-path``
    logic of the sh scripts, not pgBackRest."""
    script = tmp_path / "pgbackrest"
    script.write_text(
        "#!/bin/sh\n"
        'dir=$(dirname "$0")\n'
        'echo "$PWD|$*" >> "$dir/calls"\n'
        'n=$(cat "$dir/fail-count" 2>/dev/null || echo 0)\n'
        'if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$dir/fail-count"; echo "ERROR: [074]: boom" >&2; exit 74; fi\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _run_rendered(
    command: str, fake: Path, cwd: Path, values: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    command = substitute(command, values)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("failures", "returncode", "calls"),
    [(0, 0, 1), (1, 0, 2), (2, 74, 2)],
)
def test_archive_script_retries_once(
    fake_pgbackrest: Path, tmp_path: Path, failures: int, returncode: int, calls: int
) -> None:
    (tmp_path / "fail-count").write_text(str(failures))
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    method = PgBackRestMethod({"repoPath": "/srv/repo"})
    command = archive_command(method.archive_command(_ctx(tmp_path / "work")))
    res = _run_rendered(command, fake_pgbackrest, pgdata, {"%p": "pg_wal/000000010000000000000001"})
    assert res.returncode == returncode
    lines = (tmp_path / "calls").read_text().splitlines()
    assert len(lines) == calls
    assert lines[0] == (
        f"{pgdata}|--pg1-path={pgdata} --config={tmp_path}/work/pgbackrest.conf --stanza=c1"
        " archive-push pg_wal/000000010000000000000001"
    )


def test_restore_script_passes_the_exit_status(fake_pgbackrest: Path, tmp_path: Path) -> None:
    (tmp_path / "fail-count").write_text("1")
    method = PgBackRestMethod({"repoPath": "/srv/repo"})
    command = restore_command(method.restore_command(_ctx(tmp_path / "work")))
    values = {"%f": "000000010000000000000002", "%p": "pg_wal/RECOVERYXLOG"}
    assert _run_rendered(command, fake_pgbackrest, tmp_path, values).returncode == 74  # no retry
    assert _run_rendered(command, fake_pgbackrest, tmp_path, values).returncode == 0
    assert (tmp_path / "calls").read_text().splitlines()[1] == (
        f"{tmp_path}|--pg1-path={tmp_path} --config={tmp_path}/work/pgbackrest.conf --stanza=c1"
        " archive-get 000000010000000000000002 pg_wal/RECOVERYXLOG"
    )


# -- info --output=json --------------------------------------------------------------------------

INFO = (
    '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000003",'
    '"min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002",'
    '"stop":"000000010000000000000003"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,'
    '"repo-key":1},"error":false,"info":{"delta":22958764,"repository":{"delta":3033258,"size":3033258},'
    '"size":22958764},"label":"20261201-202806F","lsn":{"start":"0/2000028","stop":"0/3000050"},'
    '"prior":null,"reference":null,"timestamp":{"start":1796156886,"stop":1796156891},"type":"full"}],'
    '"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7714435061474823394,"version":"15"}],'
    '"name":"s1","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],'
    '"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]'
)


def test_info_with_a_backup() -> None:
    st = parse_info(INFO, "s1")
    assert (st.code, st.created, st.readable) == (0, True, True)
    [b] = st.backups
    assert b.id == "20261201-202806F"
    assert b.start_time == datetime.fromtimestamp(1796156886, UTC)
    assert b.end_time == datetime.fromtimestamp(1796156891, UTC)
    assert (b.start_lsn, b.end_lsn) == (parse_lsn("0/2000028"), parse_lsn("0/3000050"))
    assert (b.timeline, b.size, b.pg_major, b.system_id) == (1, 3033258, 15, "7714435061474823394")
    assert b.details == {
        "type": "full",
        "walStart": "000000010000000000000002",
        "walStop": "000000010000000000000003",
        "databaseSize": "22958764",
        "pgbackrestVersion": "2.45",
    }


def test_info_orders_backups_and_skips_unusable_entries() -> None:
    base: dict[str, Any] = {
        "archive": {"start": "000000020000000000000007", "stop": "000000020000000000000007"},
        "info": {"size": 10, "repository": {"size": 4}},
        "lsn": {"start": "0/7000028", "stop": "0/7000100"},
        "database": {"id": 1, "repo-key": 1},
        "type": "full",
    }
    newer = {**base, "label": "20261201-120000F", "timestamp": {"start": 200, "stop": 300}}
    older = {**base, "label": "20261201-110000F", "timestamp": {"start": 100, "stop": 150}}
    no_lsn = {k: v for k, v in newer.items() if k != "lsn"} | {"label": "20261201-130000F"}
    text = json.dumps(
        [{"name": "s", "status": {"code": 0, "message": "ok"}, "backup": [newer, no_lsn, older]}]
    )
    st = parse_info(text, "s")
    assert [b.id for b in st.backups] == ["20261201-110000F", "20261201-120000F"]
    assert st.backups[0].timeline == 2 and st.backups[0].size == 4 and st.backups[0].pg_major == 0


@pytest.mark.parametrize(
    ("text", "code", "created", "readable"),
    [
        ("[]", 1, False, True),
        (
            '[{"name":"s","backup":[],"db":[],"repo":[{"key":1,"status":{"code":1,"message":"missing stanza path"}}],'
            '"status":{"code":1,"message":"missing stanza path"}}]',
            1,
            False,
            True,
        ),
        ('[{"name":"s","backup":[],"status":{"code":2,"message":"no valid backups"}}]', 2, True, True),
        ('[{"name":"s","backup":[],"status":{"code":6,"message":"backup/expire running"}}]', 6, True, True),
        (
            '[{"name":"s","repo":[{"key":1,"status":{"code":99,"message":"[PathOpenError] unable to list file'
            ' info for path \'/srv/backup\': [13] Permission denied"}}],"status":{"code":99,"message":"other"}}]',
            99,
            True,
            False,
        ),
    ],
)
def test_info_status(text: str, code: int, created: bool, readable: bool) -> None:
    st = parse_info(text, "s")
    assert (st.code, st.created, st.readable, st.backups) == (code, created, readable, [])


def test_info_status_with_garbage_from_a_wrong_passphrase() -> None:
    text = (
        '[{"name":"s","cipher":"aes-256-cbc","repo":[{"key":1,"status":{"code":99,"message":'
        "\"[FormatError] unable to load info file '/r/backup/s/backup.info':\\nFormatError: key/value"
        ' found outside of section at line 1: \x19\x1b\x05garbage"}}],"status":{"code":99,"message":"other"}}]'
    )
    st = parse_info(text, "s")
    assert st.undecryptable and not st.readable
    assert st.describe() == (
        "stanza s: repo1: [FormatError] unable to load info file '/r/backup/s/backup.info': (code 99)"
    )


@pytest.mark.parametrize("text", ["", "not json", '{"name": "s"}'])
def test_info_that_is_not_pgbackrest_output(text: str) -> None:
    with pytest.raises(BackupError):
        parse_info(text, "s")


# -- error output --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "WARN: something first\n"
            "ERROR: [055]: repo1: unable to load info file '/r/backup/x/backup.info' or '/r/backup/x/backup.info.copy':\n"
            "       FileMissingError: unable to open missing file '/r/backup/x/backup.info' for read\n"
            "       HINT: backup.info cannot be opened and is required to perform a backup.\n"
            "       HINT: has a stanza-create been performed?\n"
            "ERROR: [104]: expire command encountered 1 error(s), check the log file for details",
            "[55] repo1: unable to load info file '/r/backup/x/backup.info' or '/r/backup/x/backup.info.copy'"
            " (hint: backup.info cannot be opened and is required to perform a backup.)",
        ),
        (
            "ERROR: [104]: archive-push command encountered error(s):\n"
            "       repo1: [FileMoveError] unable to move '/r/x.tmp' to '/r/x': [2] No such file or directory",
            "[104] archive-push command encountered error(s)",
        ),
        (
            "2026-12-01 20:28:50.933 P00  ERROR: [045]: WAL file '000000010000000000000001' already exists"
            " in the repo1 archive with a different checksum",
            "[45] WAL file '000000010000000000000001' already exists in the repo1 archive with a different checksum",
        ),
        ("just a line\nand the last one\n", "and the last one"),
        ("", "no output"),
    ],
)
def test_error_output(output: str, expected: str) -> None:
    assert one_line(output) == expected


def test_tool_error_code() -> None:
    err = tool_error(
        "ERROR: [028]: backup and archive info files exist but do not match the database\nHINT: x"
    )
    assert err is not None and (err.code, err.hint) == (28, "x")
    assert tool_error("INFO: fine") is None
