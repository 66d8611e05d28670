"""Pure pieces of the backup contract: command rendering, cron slots, backup choice for a
recovery target, settings, private files (table tests, no PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stolon.backup.base import (
    BackupConfigError,
    BackupError,
    BackupInfo,
    BackupNotFoundError,
    RecoveryTarget,
    RecoveryTargetError,
    parse_target_time,
    select_backup,
)
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.commands import expand_placeholders as substitute
from stolon.backup.files import read_env_file, write_private
from stolon.backup.settings import Settings
from stolon.model.cron import CronError, CronSchedule
from stolon.postgres.runas import OSUser

# -- commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["wal-g", "wal-push", "%p"], "wal-g wal-push %p"),
        (["tool", "--conf", "/a b/c.json", "%p"], "tool --conf '/a b/c.json' %p"),
        (["tool", "it's"], "tool 'it'\"'\"'s'"),
        (["tool", "50%"], "tool 50%%"),
        (["printf", "%s %d %%"], "printf '%%s %%d %%%%'"),
        (["tool", "--file=%f", "%p"], "tool --file=%f %p"),
        (["cp", "/wal/%f", "%p"], "cp /wal/%f %p"),
        (["tool", ""], "tool ''"),
        (["tool", "$(reboot)", ";rm", "`x`"], "tool '$(reboot)' ';rm' '`x`'"),
    ],
)
def test_render(argv: list[str], want: str) -> None:
    assert archive_command(argv) == want


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        ([], "empty"),
        (["tool", "a\nb"], "control character"),
        (["tool", "%r"], "does not replace"),
    ],
)
def test_render_refused(argv: list[str], why: str) -> None:
    with pytest.raises(BackupConfigError, match=why):
        archive_command(argv)


def test_restore_placeholders() -> None:
    assert restore_command(["get", "%f", "%p", "%r"]) == "get %f %p %r"


@pytest.mark.parametrize("value", ["plain", "a b", "it's", "100%", "%s %d %%", "x;y", "$HOME", "\\", "é"])
def test_rendered_command_passes_values_through_the_shell_unchanged(value: str) -> None:
    """What sh receives after PostgreSQL's substitution is exactly the argv."""
    line = archive_command(["printf", "%s|", value, "%f"])
    out = subprocess.run(
        ["/bin/sh", "-c", substitute(line, {"%p": "pg_wal/X", "%f": "000000010000000000000001"})],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == f"{value}|000000010000000000000001|"


# -- cron ---------------------------------------------------------------------------------------

T = datetime(2026, 12, 1, 20, 7, 30, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expr", "latest", "nxt"),
    [
        ("0 3 * * *", datetime(2026, 12, 1, 3, 0), datetime(2026, 12, 2, 3, 0)),
        ("@hourly", datetime(2026, 12, 1, 20, 0), datetime(2026, 12, 1, 21, 0)),
        ("*/15 * * * *", datetime(2026, 12, 1, 20, 0), datetime(2026, 12, 1, 20, 15)),
        ("7 20 * * *", datetime(2026, 12, 1, 20, 7), datetime(2026, 12, 2, 20, 7)),
        ("0 0 * * sun", datetime(2026, 11, 29, 0, 0), datetime(2026, 12, 6, 0, 0)),
        ("0 0 * * 7", datetime(2026, 11, 29, 0, 0), datetime(2026, 12, 6, 0, 0)),
        ("0 12 1 jan *", datetime(2026, 1, 1, 12, 0), datetime(2027, 1, 1, 12, 0)),
        ("0 0 29 2 *", datetime(2024, 2, 29, 0, 0), datetime(2028, 2, 29, 0, 0)),
        ("30 2 1-7 * mon", datetime(2026, 12, 1, 2, 30), datetime(2026, 12, 2, 2, 30)),  # dom OR dow
        ("0 9-17/4 * * 1-5", datetime(2026, 12, 1, 17, 0), datetime(2026, 12, 2, 9, 0)),
    ],
)
def test_cron(expr: str, latest: datetime, nxt: datetime) -> None:
    c = CronSchedule.parse(expr)
    assert c.latest(T) == latest.replace(tzinfo=UTC)
    assert c.next_after(T) == nxt.replace(tzinfo=UTC)
    assert c.matches(latest.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("0 3 * *", "has 4 fields"),
        ("60 * * * *", "out of range"),
        ("* * 0 * *", "out of range"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("x * * * *", "not a number"),
        ("1,,2 * * * *", "empty list item"),
    ],
)
def test_cron_refused(expr: str, why: str) -> None:
    with pytest.raises(CronError, match=why):
        CronSchedule.parse(expr)


def test_cron_never() -> None:
    assert CronSchedule.parse("0 0 31 2 *").latest(T) is None


# -- choosing a backup ---------------------------------------------------------------------------


def info(bid: str, end: datetime, end_lsn: int = 0) -> BackupInfo:
    return BackupInfo(
        id=bid,
        start_time=end - timedelta(minutes=1),
        end_time=end,
        start_lsn=end_lsn,
        end_lsn=end_lsn,
        timeline=1,
        size=1,
    )


B1 = info("b1", datetime(2026, 12, 1, 1, tzinfo=UTC), 100)
B2 = info("b2", datetime(2026, 12, 1, 2, tzinfo=UTC), 200)
B3 = info("b3", datetime(2026, 12, 1, 3, tzinfo=UTC), 300)


@pytest.mark.parametrize(
    ("backup_id", "target", "want"),
    [
        ("latest", RecoveryTarget(), "b3"),
        ("", RecoveryTarget(), "b3"),
        ("latest", RecoveryTarget("time", "2026-12-01 02:30:00+00"), "b2"),
        ("latest", RecoveryTarget("time", "2026-12-01T02:00:00Z"), "b2"),
        ("latest", RecoveryTarget("lsn", "0/FA"), "b2"),
        ("latest", RecoveryTarget("xid", "1234"), "b3"),
        ("b1", RecoveryTarget("time", "2026-12-01 02:30:00+00"), "b1"),
        ("b2", RecoveryTarget("immediate"), "b2"),
    ],
)
def test_select_backup(backup_id: str, target: RecoveryTarget, want: str) -> None:
    assert select_backup([B3, B1, B2], backup_id, target).id == want


@pytest.mark.parametrize(
    ("backups", "backup_id", "target", "error", "text"),
    [
        ([B1], "nope", RecoveryTarget(), BackupNotFoundError, "not in the repository"),
        ([], "latest", RecoveryTarget(), BackupNotFoundError, "has no backup"),
        (
            [B2],
            "latest",
            RecoveryTarget("time", "2026-12-01 01:30:00+00"),
            RecoveryTargetError,
            "before the end",
        ),
        ([B2], "b2", RecoveryTarget("lsn", "0/10"), RecoveryTargetError, "before the end of backup b2"),
    ],
)
def test_select_backup_refused(
    backups: list[BackupInfo], backup_id: str, target: RecoveryTarget, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text) as e:
        select_backup(backups, backup_id, target)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-12-01T15:04:05", datetime(2026, 12, 1, 15, 4, 5, tzinfo=UTC)),
        ("2026-12-01 15:04:05+00", datetime(2026, 12, 1, 15, 4, 5, tzinfo=UTC)),
        ("2026-12-01 17:04:05+02", datetime(2026, 12, 1, 15, 4, 5, tzinfo=UTC)),
        ("2026-12-01 15:04:05.25 UTC", datetime(2026, 12, 1, 15, 4, 5, 250000, tzinfo=UTC)),
    ],
)
def test_target_time(text: str, want: datetime) -> None:
    assert parse_target_time(text) == want


def test_target_time_refused() -> None:
    with pytest.raises(RecoveryTargetError, match="cannot read"):
        parse_target_time("yesterday")


def test_backup_info_round_trip() -> None:
    b = BackupInfo(
        id="20261201T010203Z",
        start_time=datetime(2026, 12, 1, 1, tzinfo=UTC),
        end_time=datetime(2026, 12, 1, 1, 2, tzinfo=UTC),
        start_lsn=0x3000028,
        end_lsn=0x3000100,
        timeline=2,
        size=1234,
        pg_major=15,
        system_id="7000",
        details={"k": "v"},
    )
    obj = b.to_obj()
    assert obj["startLSN"] == "0/3000028" and obj["endTime"] == "2026-12-01T01:02:00Z"
    assert BackupInfo.from_obj(obj) == b


@pytest.mark.parametrize("bad", ["", "../etc", "a b", "x" * 200, "-rf"])
def test_backup_id_refused(bad: str) -> None:
    with pytest.raises(BackupError):
        info(bad, datetime(2026, 1, 1, tzinfo=UTC))


# -- settings ------------------------------------------------------------------------------------


def test_settings() -> None:
    s = Settings(
        "m", {"path": "/x", "n": 3, "on": True, "env": {"A": "b"}}, known=("path", "n", "on", "env", "c")
    )
    assert s.abs_path("path") == Path("/x")
    assert s.integer("n", default=1, minimum=1) == 3
    assert s.boolean("on", default=False) is True
    assert s.string_map("env") == {"A": "b"}
    assert s.choice("c", ("gzip", "none"), default="none") == "none"


@pytest.mark.parametrize(
    ("raw", "call", "text"),
    [
        ({"pth": "/x"}, lambda s: None, "backup.settings.pth: unknown setting (did you mean 'path'?)"),
        ({}, lambda s: s.string("path", required=True), "backup.settings.path: is required"),
        ({"path": 3}, lambda s: s.string("path"), "must be a string"),
        ({"path": "a\nb"}, lambda s: s.string("path"), "control characters"),
        ({"path": "rel"}, lambda s: s.abs_path("path"), "absolute path"),
        ({"n": "3"}, lambda s: s.integer("n", default=1), "must be an integer"),
        ({"n": True}, lambda s: s.integer("n", default=1), "must be an integer"),
        ({"n": 0}, lambda s: s.integer("n", default=1, minimum=1), "at least 1"),
        ({"on": "yes"}, lambda s: s.boolean("on", default=False), "true or false"),
        ({"c": "lz"}, lambda s: s.choice("c", ("gzip",), default="gzip"), "unknown value 'lz'"),
        ({"env": {"A": 1}}, lambda s: s.string_map("env"), "object of strings"),
    ],
)
def test_settings_refused(raw: dict[str, object], call: object, text: str) -> None:
    with pytest.raises(BackupConfigError) as e:
        s = Settings("m", raw, known=("path", "n", "on", "c", "env"))
        call(s)  # type: ignore[operator]
    assert text in str(e.value)


# -- files ---------------------------------------------------------------------------------------


def test_env_file(tmp_path: Path) -> None:
    f = tmp_path / "creds"
    f.write_text("# comment\nexport AWS_ACCESS_KEY_ID=abc\nAWS_SECRET_ACCESS_KEY='s e c'\n\nREGION=\"eu\"\n")
    f.chmod(0o600)
    assert read_env_file(str(f), "backup.settings.envFile", owner=OSUser.current()) == {
        "AWS_ACCESS_KEY_ID": "abc",
        "AWS_SECRET_ACCESS_KEY": "s e c",
        "REGION": "eu",
    }
    f.chmod(0o644)
    with pytest.raises(BackupConfigError, match="chmod 600"):
        read_env_file(str(f), "backup.settings.envFile", owner=OSUser.current())
    f.chmod(0o600)
    f.write_text("not a pair\n")
    with pytest.raises(BackupConfigError, match="line 1 is not KEY=VALUE"):
        read_env_file(str(f), "backup.settings.envFile", owner=OSUser.current())
    # issue 10: a FIFO named by the spec must not block the keeper
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    errors: list[Exception] = []

    def read() -> None:
        try:
            read_env_file(str(fifo), "backup.settings.envFile", owner=OSUser.current())
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # blocked opening the FIFO: open its other end to let the thread end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(20)
        pytest.fail("read_env_file blocked on a FIFO")
    assert len(errors) == 1 and isinstance(errors[0], BackupConfigError)
    assert "not a regular file" in str(errors[0])


def test_write_private_replaces_a_link_without_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    work = tmp_path / "work"
    work.mkdir()
    (work / "conf.json").symlink_to(victim)
    me = OSUser.current()
    write_private(work / "conf.json", "{}", me)
    assert victim.read_text() == "precious"
    assert not (work / "conf.json").is_symlink()
    assert (work / "conf.json").read_text() == "{}"
    assert (os.stat(work / "conf.json").st_mode & 0o777) == 0o600
    write_private(work / "conf.json", "{}", me)  # unchanged: no rewrite, no error


def test_env_file_of_another_user_is_refused(tmp_path: Path) -> None:
    """Whoever writes the spec can't make the keeper (root) read a file of someone else:
    the credentials file must belong to the user the tools run as."""
    f = tmp_path / "creds"
    f.write_text("AWS_SECRET_ACCESS_KEY=x\n")
    f.chmod(0o600)
    other = OSUser("someone", os.geteuid() + 4242, os.getegid(), "/", ())
    with pytest.raises(BackupConfigError, match=r"belongs to uid \d+, not to 'someone'.*chown someone"):
        read_env_file(str(f), "backup.settings.envFile", owner=other)
    assert read_env_file(str(f), "backup.settings.envFile", owner=OSUser.current()) == {
        "AWS_SECRET_ACCESS_KEY": "x"
    }
