"""Pure functions of the PostgreSQL layer: no server needed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stolon.postgres.binaries import PgVersion, parse_binary_version, parse_version
from stolon.postgres.conninfo import (
    ConnInfo,
    parse_conninfo,
    pgpass_line,
    quote_value,
    redact_conninfo_string,
)
from stolon.postgres.credentials import AuthMethod, Credentials
from stolon.postgres.errors import UnsupportedVersionError
from stolon.postgres.hba import SUReplAccessMode, build_hba, host_cidr, quote_hba_token, render_pg_hba
from stolon.postgres.lsn import (
    format_lsn,
    is_wal_file_name,
    parse_lsn,
    strip_timeline,
    wal_file_name,
    wal_file_name_no_timeline,
    wal_file_start_lsn,
)
from stolon.postgres.parameters import (
    MANAGED_PARAMETERS,
    ParameterInputs,
    build_parameters,
    filter_managed,
    parse_synchronous_standby_names,
    quote_conf_value,
    render_postgresql_conf,
    synchronous_standby_names,
)
from stolon.postgres.recovery import (
    ArchiveRecoverySettings,
    RecoveryMode,
    RecoveryTargetSettings,
    StandbySettings,
    build_recovery_config,
    internal_standby_config,
)
from stolon.postgres.runas import child_environment, scrub
from stolon.postgres.slots import ReplicationSlot, plan_slots, wanted_slots
from stolon.postgres.state import parse_timeline_history

# ----------------------------------------------------------------------------- LSN / WAL


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/3000060", 0x3000060),
        ("1/0", 1 << 32),
        ("16/B374D848", (0x16 << 32) | 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    ],
)
def test_lsn_round_trip(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text
    assert parse_lsn(text.lower()) == value


@pytest.mark.parametrize("bad", ["", "0", "0/", "/1", "x/1", "1/2/3", "100000000/0", "0/-1"])
def test_lsn_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_lsn(bad)


@pytest.mark.parametrize(
    ("tli", "lsn", "name"),
    [
        (1, 0, "000000010000000000000000"),
        (1, parse_lsn("0/3000060"), "000000010000000000000003"),
        (2, parse_lsn("0/FFFFFFFF"), "0000000200000000000000FF"),
        (3, parse_lsn("1/0"), "000000030000000100000000"),
        (0x1A, parse_lsn("2A/5E000028"), "0000001A0000002A0000005E"),
    ],
)
def test_wal_file_name(tli: int, lsn: int, name: str) -> None:
    assert wal_file_name(tli, lsn) == name
    assert is_wal_file_name(name)
    assert strip_timeline(name) == name[8:]
    assert wal_file_name_no_timeline(lsn) == name[8:]
    assert wal_file_start_lsn(name) <= lsn < wal_file_start_lsn(name) + 16 * 1024 * 1024


def test_wal_file_name_other_segment_size() -> None:
    # 64 MiB segments: 64 segments per xlog id
    assert wal_file_name(1, parse_lsn("0/8000000"), 64 * 1024 * 1024) == ("000000010000000000000002")


@pytest.mark.parametrize(
    "name",
    ["00000001000000000000000", "000000010000000000000003.partial", "00000002.history", "a" * 24],
)
def test_not_wal_file_names(name: str) -> None:
    assert not is_wal_file_name(name)


# ----------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("out", "version"),
    [
        ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", PgVersion(15, 18)),
        ("postgres (PostgreSQL) 9.6.24\n", PgVersion(9, 6)),
        ("postgres (PostgreSQL) 16beta1\n", PgVersion(16, 0)),
        ("postgres (PostgreSQL) 17rc1", PgVersion(17, 0)),
    ],
)
def test_parse_binary_version(out: str, version: PgVersion) -> None:
    assert parse_binary_version(out) == version


def test_parse_version() -> None:
    assert parse_version("15\n") == PgVersion(15, 0)
    assert parse_version("9.6") == PgVersion(9, 6)
    with pytest.raises(UnsupportedVersionError):
        parse_version("x")
    with pytest.raises(UnsupportedVersionError):
        parse_binary_version("psql (PostgreSQL)")


# ----------------------------------------------------------------------------- parameters


def _inputs(**kw: object) -> ParameterInputs:
    base: dict[str, object] = {
        "pg_major": 15,
        "socket_dir": "/run/stolon",
        "listen_address": "10.0.0.1",
        "port": 5432,
        "max_standbys": 20,
        "additional_wal_senders": 5,
    }
    base.update(kw)
    return ParameterInputs(**base)  # type: ignore[arg-type]


def test_build_parameters_mandatory() -> None:
    p = build_parameters(_inputs())
    assert p == {
        "unix_socket_directories": "/run/stolon",
        "hot_standby": "on",
        "wal_level": "replica",
        "wal_keep_size": "128",
        "listen_addresses": "10.0.0.1",
        "port": "5432",
        "max_replication_slots": "20",
        "max_wal_senders": "47",
        "synchronous_standby_names": "",
    }


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"wal_level": "logical"}, "logical"),
        ({"wal_level": "minimal"}, "replica"),
        ({"wal_level": "archive"}, "replica"),
        ({}, "replica"),
    ],
)
def test_wal_level(user: dict[str, str], expected: str) -> None:
    assert build_parameters(_inputs(user_parameters=user))["wal_level"] == expected


@pytest.mark.parametrize(
    ("major", "user", "key", "expected"),
    [
        (13, {}, "wal_keep_size", "128"),
        (15, {"wal_keep_size": "1GB"}, "wal_keep_size", "1GB"),
        (15, {"wal_keep_size": "1"}, "wal_keep_size", "1"),  # verbatim, as in Go
        (12, {}, "wal_keep_segments", "8"),
        (12, {"wal_keep_segments": "3"}, "wal_keep_segments", "8"),
        (12, {"wal_keep_segments": "32"}, "wal_keep_segments", "32"),
        (12, {"wal_keep_segments": "many"}, "wal_keep_segments", "8"),
    ],
)
def test_wal_keep(major: int, user: dict[str, str], key: str, expected: str) -> None:
    p = build_parameters(_inputs(pg_major=major, user_parameters=user))
    assert p[key] == expected
    other = "wal_keep_segments" if key == "wal_keep_size" else "wal_keep_size"
    assert other not in p or other in user


def test_parameter_precedence() -> None:
    p = build_parameters(
        _inputs(
            init_parameters={"work_mem": "1MB", "shared_buffers": "1GB", "port": "1"},
            include_init_parameters=True,
            user_parameters={"work_mem": "4MB", "port": "9999", "max_wal_senders": "1"},
            use_pg_rewind=True,
        )
    )
    assert p["shared_buffers"] == "1GB"  # from init
    assert p["work_mem"] == "4MB"  # user beats init
    assert p["port"] == "5432"  # managed beats user
    assert p["max_wal_senders"] == "47"
    assert p["wal_log_hints"] == "on"
    # init parameters only when asked
    p2 = build_parameters(_inputs(init_parameters={"shared_buffers": "1GB"}))
    assert "shared_buffers" not in p2


@pytest.mark.parametrize(
    ("sync", "dbs", "external", "expected"),
    [
        (True, ["a1"], [], "stolon_a1"),
        (True, ["a1", "b2"], [], "2 (stolon_a1,stolon_b2)"),
        (True, ["a1", "b2"], ["stolonfakestandby"], "3 (stolon_a1,stolon_b2,stolonfakestandby)"),
        (True, [], ["ext"], "ext"),
        (True, [], [], ""),
        (False, ["a1", "b2"], [], ""),
    ],
)
def test_synchronous_standby_names(sync: bool, dbs: list[str], external: list[str], expected: str) -> None:
    p = build_parameters(
        _inputs(
            synchronous_replication=sync,
            synchronous_standbys=dbs,
            external_synchronous_standbys=external,
        )
    )
    assert p["synchronous_standby_names"] == expected
    names = parse_synchronous_standby_names(expected)
    assert names == ([f"stolon_{d}" for d in dbs] + external if sync else [])


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("", []),
        ("a", ["a"]),
        ("a, b", ["a", "b"]),
        ("2 (a,b)", ["a", "b"]),
        ("FIRST 2 (a, b, c)", ["a", "b", "c"]),
        ("any 1 (a)", ["a"]),
        ("2(a,b)", ["a", "b"]),
        ('"x y",z', ["x y", "z"]),
        ("*", ["*"]),
    ],
)
def test_parse_synchronous_standby_names(value: str, names: list[str]) -> None:
    assert parse_synchronous_standby_names(value) == names


def test_parse_synchronous_standby_names_rejects_number_without_brackets() -> None:
    with pytest.raises(ValueError):
        parse_synchronous_standby_names("2 a,b")


def test_synchronous_standby_names_helper() -> None:
    assert synchronous_standby_names([]) == ""
    assert synchronous_standby_names(["x"]) == "x"
    assert synchronous_standby_names(["x", "y"]) == "2 (x,y)"


def test_filter_managed() -> None:
    params = {"work_mem": "4MB", "port": "5432", "primary_conninfo": "x", "wal_level": "replica"}
    assert filter_managed(params) == {"work_mem": "4MB", "wal_level": "replica"}
    assert "recovery_target_action" in MANAGED_PARAMETERS
    assert "wal_level" not in MANAGED_PARAMETERS


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("on", "'on'"),
        ("", "''"),
        ("it's", "'it''s'"),
        ("C:\\dir", "'C:\\\\dir'"),
        ("a\nb", "'a\\nb'"),
        ("cp %p /arch/%f", "'cp %p /arch/%f'"),
    ],
)
def test_quote_conf_value(value: str, quoted: str) -> None:
    assert quote_conf_value(value) == quoted


def test_render_postgresql_conf() -> None:
    text = render_postgresql_conf(
        {"work_mem": "4MB", "archive_command": "test ! -f '/a/%f'"},
        recovery_parameters={"primary_slot_name": "stolon_a"},
        include="postgresql.conf",
    )
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [
        "include 'postgresql.conf'",
        "archive_command = 'test ! -f ''/a/%f'''",
        "work_mem = '4MB'",
        "primary_slot_name = 'stolon_a'",
    ]
    with pytest.raises(ValueError):
        render_postgresql_conf({"bad key": "x"})
    with pytest.raises(ValueError):
        render_postgresql_conf({"x\ny": "x"})


# ----------------------------------------------------------------------------- pg_hba

_MD5 = AuthMethod.MD5
_SCRAM = AuthMethod.SCRAM_SHA_256


def _hba(**kw: object) -> list[str]:
    base: dict[str, object] = {
        "su_user": "su",
        "su_auth": _MD5,
        "repl_user": "repl",
        "repl_auth": _MD5,
    }
    base.update(kw)
    return build_hba(**base)  # type: ignore[arg-type]


LOCAL = ["local postgres su md5", "local replication repl md5"]
ALL = [
    "host all su 0.0.0.0/0 md5",
    "host all su ::0/0 md5",
    "host replication repl 0.0.0.0/0 md5",
    "host replication repl ::0/0 md5",
]
DEFAULT_USER = ["host all all 0.0.0.0/0 md5", "host all all ::0/0 md5"]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, LOCAL + ALL + DEFAULT_USER),
        ({"user_entries": None}, LOCAL + ALL + DEFAULT_USER),
        ({"user_entries": []}, LOCAL + ALL),
        ({"user_entries": ["host all app 10.0.0.0/8 scram-sha-256"]},
         [*LOCAL, *ALL, "host all app 10.0.0.0/8 scram-sha-256"]),
        ({"only_internal": True}, LOCAL + ALL),
        ({"only_internal": True, "user_entries": ["host all all 0.0.0.0/0 trust"]}, LOCAL + ALL),
        ({"access_mode": SUReplAccessMode.STRICT, "is_master_type": False}, LOCAL + DEFAULT_USER),
        (
            {
                "access_mode": SUReplAccessMode.STRICT,
                "is_master_type": True,
                "other_db_addresses": ["10.0.0.3", "10.0.0.2", "fd00::5", ""],
            },
            [
                *LOCAL,
                "host all su 10.0.0.2/32 md5",
                "host replication repl 10.0.0.2/32 md5",
                "host all su 10.0.0.3/32 md5",
                "host replication repl 10.0.0.3/32 md5",
                "host all su fd00::5/128 md5",
                "host replication repl fd00::5/128 md5",
                *DEFAULT_USER,
            ],
        ),
        (
            {"access_mode": SUReplAccessMode.STRICT, "is_master_type": True, "only_internal": True},
            LOCAL,
        ),
    ],
)  # fmt: skip
def test_build_hba(kw: dict[str, object], expected: list[str]) -> None:
    assert _hba(**kw) == expected


def test_hba_auth_methods() -> None:
    lines = _hba(su_auth=_SCRAM, repl_auth=AuthMethod.TRUST, user_entries=[])
    assert lines == [
        "local postgres su scram-sha-256",
        "local replication repl trust",
        "host all su 0.0.0.0/0 scram-sha-256",
        "host all su ::0/0 scram-sha-256",
        "host replication repl 0.0.0.0/0 trust",
        "host replication repl ::0/0 trust",
    ]
    # strict mode: the superuser line uses the superuser's method (Go used repl's)
    strict = _hba(
        su_auth=_SCRAM,
        access_mode=SUReplAccessMode.STRICT,
        is_master_type=True,
        other_db_addresses=["10.1.1.1"],
        user_entries=[],
    )
    assert "host all su 10.1.1.1/32 scram-sha-256" in strict


def test_hba_rejects_newlines_and_quotes_names() -> None:
    with pytest.raises(ValueError):
        _hba(user_entries=["host all all 0.0.0.0/0 md5\nlocal all all trust"])
    assert quote_hba_token("postgres") == "postgres"
    assert quote_hba_token("all") == '"all"'
    assert quote_hba_token("my user") == '"my user"'
    assert quote_hba_token("+group") == '"+group"'
    assert _hba(su_user="replication")[0] == 'local postgres "replication" md5'
    assert host_cidr("db.example") == '"db.example"'
    assert host_cidr("::1") == "::1/128"


INJECTION = "10.0.0.3/32 trust\nhost all all 0.0.0.0/0 trust #"


@pytest.mark.parametrize(
    "address",
    [INJECTION, "10.0.0.0/8", "0.0.0.0/0", "10.0.0.3 trust", "fe80::1%eth0", "-bad.example", "a..b", "1.2.3",
     "db\x1b]0;x\x07", "", "*", "db example"],
)  # fmt: skip
def test_strict_hba_takes_only_addresses(address: str) -> None:
    """Issue 10 item 9: a published address is an IP (full mask) or a host name (quoted:
    ``all``/``samenet`` stay names); anything else makes no line at all."""
    entries = _hba(
        access_mode=SUReplAccessMode.STRICT, is_master_type=True, other_db_addresses=[address, "10.0.0.9"]
    )
    assert entries == [
        *LOCAL,
        "host all su 10.0.0.9/32 md5",
        "host replication repl 10.0.0.9/32 md5",
        "host all all 0.0.0.0/0 md5",
        "host all all ::0/0 md5",
    ]


def test_strict_hba_quotes_host_names() -> None:
    entries = _hba(
        access_mode=SUReplAccessMode.STRICT,
        is_master_type=True,
        other_db_addresses=["all", "samenet", "db-1.example.com", "2001:db8::1"],
        user_entries=[],
    )
    assert entries[2:] == [
        "host all su 2001:db8::1/128 md5",
        "host replication repl 2001:db8::1/128 md5",
        'host all su "all" md5',
        'host replication repl "all" md5',
        'host all su "db-1.example.com" md5',
        'host replication repl "db-1.example.com" md5',
        'host all su "samenet" md5',
        'host replication repl "samenet" md5',
    ]


@pytest.mark.parametrize("bad", ["\n", "\r", "\x00", "\x1b", "\x85", "\x7f"])
def test_no_control_character_reaches_a_config_file(bad: str) -> None:
    """Issue 10 item 9: hba entries, user names, parameter names and values, recovery
    settings and conninfo parts are refused with a control character (a tab is fine)."""
    with pytest.raises(ValueError, match="control character"):
        _hba(user_entries=[f"host all all 0.0.0.0/0 md5{bad}"])
    with pytest.raises(ValueError, match="control character"):
        _hba(su_user=f"su{bad}")
    with pytest.raises(ValueError, match="control character"):
        render_pg_hba([f"local all all trust{bad}"])
    with pytest.raises(ValueError, match="control character"):
        render_postgresql_conf({"work_mem": f"4MB{bad}"})
    with pytest.raises(ValueError):
        render_postgresql_conf({f"work{bad}mem": "4MB"})
    with pytest.raises(ValueError, match="control character"):
        render_postgresql_conf({}, recovery_parameters={"restore_command": f"cp %f %p{bad}"})
    with pytest.raises(ValueError, match="control character"):
        ConnInfo(host=f"db{bad}", port="5432")
    assert _hba(user_entries=["host\tall\tall\t0.0.0.0/0\tmd5"])[-1] == "host\tall\tall\t0.0.0.0/0\tmd5"


# ----------------------------------------------------------------------------- recovery


def test_standby_recovery_config() -> None:
    cfg = build_recovery_config(
        RecoveryMode.STANDBY,
        StandbySettings(primary_conninfo="host=a", primary_slot_name="stolon_x"),
    )
    assert cfg.mode.signal_file == "standby.signal"
    assert cfg.parameters == {
        "primary_conninfo": "host=a",
        "primary_slot_name": "stolon_x",
        "recovery_target_timeline": "latest",
    }


def test_pitr_recovery_config() -> None:
    cfg = build_recovery_config(
        RecoveryMode.RECOVERY,
        archive=ArchiveRecoverySettings(restore_command="cp /arch/%f %p"),
        targets=RecoveryTargetSettings(recovery_target_time="2024-01-01 00:00:00+00"),
    )
    assert cfg.mode.signal_file == "recovery.signal"
    assert cfg.parameters == {
        "restore_command": "cp /arch/%f %p",
        "recovery_target_time": "2024-01-01 00:00:00+00",
        "recovery_target_action": "promote",
    }
    # empty targets still mean "stop and promote"; no timeline "latest"
    cfg2 = build_recovery_config(RecoveryMode.RECOVERY, targets=RecoveryTargetSettings())
    assert cfg2.parameters == {"recovery_target_action": "promote"}
    # archive settings with an empty command still set restore_command (as Go does)
    cfg3 = build_recovery_config(RecoveryMode.STANDBY, archive=ArchiveRecoverySettings())
    assert cfg3.parameters == {"restore_command": "", "recovery_target_timeline": "latest"}


def test_no_recovery_writes_nothing() -> None:
    cfg = build_recovery_config(RecoveryMode.NONE, StandbySettings(primary_conninfo="x"))
    assert cfg.mode.signal_file is None
    assert cfg.conf_parameters == {}


def test_internal_standby_config() -> None:
    cfg = internal_standby_config(
        host="10.0.0.1", port=5432, user="repl", password="p w'd", db_uid="abcd1234"
    )
    conninfo = parse_conninfo(cfg.parameters["primary_conninfo"])
    assert dict(conninfo) == {
        "application_name": "stolon_abcd1234",
        "host": "10.0.0.1",
        "password": "p w'd",
        "port": "5432",
        "sslmode": "prefer",
        "user": "repl",
    }
    assert cfg.parameters["primary_slot_name"] == "stolon_abcd1234"
    assert "p w'd" not in repr(cfg)


# ----------------------------------------------------------------------------- conninfo


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("abc", "abc"),
        ("", "''"),
        ("a b", "'a b'"),
        ("it's", "'it\\'s'"),
        ("back\\slash", "'back\\\\slash'"),
        ("-c synchronous_commit=off", "'-c synchronous_commit=off'"),
    ],
)
def test_quote_conninfo_value(value: str, quoted: str) -> None:
    assert quote_value(value) == quoted
    assert parse_conninfo(f"k={quoted}")["k"] == value


def test_conninfo_string_and_redaction() -> None:
    ci = ConnInfo(host="h", port="5432", user="u", password="s3cr3t pw", dbname="")
    assert ci.to_string() == "host=h password='s3cr3t pw' port=5432 user=u"
    assert "s3cr3t" not in str(ci)
    assert "s3cr3t" not in repr(ci)
    assert "s3cr3t" not in f"{ci}"
    assert parse_conninfo(ci.to_string()) == ci.without("dbname")
    assert ci.with_params(port="1")["port"] == "1"
    assert redact_conninfo_string("host=a password=zz") == "host=a password=********"
    assert redact_conninfo_string("host='a") == "<unparsable conninfo>"


def test_parse_conninfo_libpq_rules() -> None:
    assert dict(parse_conninfo("  a = 1  b='x y'  c=d\\ e ")) == {"a": "1", "b": "x y", "c": "d e"}
    assert dict(parse_conninfo("a=")) == {"a": ""}
    with pytest.raises(ValueError):
        parse_conninfo("novalue")
    with pytest.raises(ValueError):
        parse_conninfo("a='open")
    with pytest.raises(ValueError):
        ConnInfo({"bad key": "x"})


def test_pgpass_line() -> None:
    assert pgpass_line("repl", "p:w\\d") == "*:*:*:repl:p\\:w\\\\d\n"
    assert pgpass_line("u", "x", host="h:1", port="5432") == "h\\:1:5432:*:u:x\n"


# ----------------------------------------------------------------------------- credentials


def test_credentials() -> None:
    c = Credentials("su", "hunter2", AuthMethod.SCRAM_SHA_256)
    assert "hunter2" not in repr(c)
    assert c.login_password == "hunter2"
    assert Credentials("su", "x", AuthMethod.TRUST).login_password is None
    with pytest.raises(ValueError):
        Credentials("su", None, AuthMethod.MD5)
    with pytest.raises(ValueError, match="line break"):
        Credentials("su", "a\nb", AuthMethod.MD5)
    assert AuthMethod.MD5.password_encryption == "md5"
    assert AuthMethod.SCRAM_SHA_256.password_encryption == "scram-sha-256"
    assert AuthMethod.TRUST.password_encryption is None


# ----------------------------------------------------------------------------- timelines


def test_parse_timeline_history() -> None:
    content = (
        "1\t0/3000060\tno recovery target specified\n"
        "\n"
        '2\t0/5000000\tat restore point "rp 1"\n'
        "# comment\n"
        "3\t1/A0\tbefore 2024-01-01 00:00:00+00\n"
    )
    entries = parse_timeline_history(content)
    assert [(e.timeline_id, format_lsn(e.switch_point), e.reason) for e in entries] == [
        (1, "0/3000060", "no recovery target specified"),
        (2, "0/5000000", 'at restore point "rp 1"'),
        (3, "1/A0", "before 2024-01-01 00:00:00+00"),
    ]
    assert parse_timeline_history("") == []
    with pytest.raises(ValueError):
        parse_timeline_history("x\t0/1\treason\n")
    with pytest.raises(ValueError):
        parse_timeline_history("1\tnotanlsn\treason\n")


# ----------------------------------------------------------------------------- slots


def test_slot_planning() -> None:
    wanted = wanted_slots("me", ["a", "me", "b"], ["backup"])
    assert wanted == {"stolon_a", "stolon_b", "stolon_backup"}
    plan = plan_slots(["stolon_a", "stolon_old", "external_slot", "stolonish"], wanted)
    assert plan.to_create == ("stolon_b", "stolon_backup")
    assert plan.to_drop == ("stolon_old",)
    assert wanted_slots("me", None, None) == set()
    lost = ReplicationSlot(
        name="stolon_a", slot_type="physical", active=False, restart_lsn=None, wal_status="lost"
    )
    assert lost.lost and lost.managed


# ----------------------------------------------------------------------------- environment


def test_child_environment_drops_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "x")
    monkeypatch.setenv("PGHOST", "elsewhere")
    monkeypatch.setenv("STKEEPER_PG_SU_PASSWORD", "x")
    monkeypatch.setenv("MY_DB_PASSWORD", "x")
    monkeypatch.setenv("API_TOKEN", "x")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = child_environment(None, {"PGPASSFILE": "/tmp/f"})
    for k in ("PGPASSWORD", "PGHOST", "STKEEPER_PG_SU_PASSWORD", "MY_DB_PASSWORD", "API_TOKEN"):
        assert k not in env
    assert env["LANG"] == "C.UTF-8"
    assert env["PGPASSFILE"] == "/tmp/f"


def test_scrub() -> None:
    assert scrub("password authentication failed for pw123", ["pw123", None, ""]) == (
        "password authentication failed for ********"
    )


def test_secret_file_is_private_and_removed(tmp_path: Path) -> None:
    from stolon.postgres.runas import OSUser, secret_file

    me = OSUser.current()
    with secret_file("hunter2\n", me, prefix="t-", directory=tmp_path) as p:
        st = os.stat(p)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert p.read_text() == "hunter2\n"
    assert not p.exists()


def test_anchored_patterns_do_not_accept_a_trailing_newline() -> None:
    """Issue 10 item 11: ``re.match`` with ``$`` accepts ``'abc\\n'``; every rule is a full match."""
    from stolon.model.gotime import parse_go_time
    from stolon.model.uid import is_valid_keeper_uid
    from stolon.postgres.slots import check_slot_name

    assert is_valid_keeper_uid("abc") and not is_valid_keeper_uid("abc\n")
    check_slot_name("stolon_abc")
    with pytest.raises(ValueError):
        check_slot_name("stolon_abc\n")
    assert is_wal_file_name("000000010000000000000003")
    assert not is_wal_file_name("000000010000000000000003\n")
    with pytest.raises(ValueError):
        parse_lsn("0/30000\n60")
    assert parse_go_time("2024-01-02T03:04:05Z") is not None
    with pytest.raises(ValueError):
        parse_go_time("2024-01-02T03:04:05Z\n")
    with pytest.raises(ValueError):
        parse_go_time("\uff12\uff10\uff12\uff14-01-02T03:04:05Z")  # full-width digits
