"""stolon-keeper flag validation (Go Stolon's rules and messages)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from stolon.cli.common import CliError
from stolon.cli.keeper import parse_config
from stolon.keeper.config import Secret

BASE = [
    "--cluster-name",
    "c1",
    "--store-backend",
    "embedded",
    "--store-endpoints",
    "/tmp/x.db",
    "--data-dir",
    "/tmp/k1",
    "--pg-listen-address",
    "127.0.0.1",
    "--pg-repl-username",
    "repl",
    "--pg-repl-password",
    "rp",
    "--pg-su-username",
    "su",
    "--pg-su-password",
    "sp",
]


def without(args: list[str], *flags: str) -> list[str]:
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        out.append(a)
    return out


def test_valid_config() -> None:
    cfg = parse_config(BASE + ["--uid", "keeper_1", "--can-be-master=false"], env={})
    assert cfg.uid == "keeper_1"
    assert cfg.pg_advertise_address == "127.0.0.1" and cfg.pg_advertise_port == "5432"
    assert cfg.pg_su_password.reveal() == "sp"
    assert cfg.can_be_master is False and cfg.can_be_synchronous_replica is True
    assert "sp" not in repr(cfg) and "rp" not in repr(cfg)


def test_env_vars(tmp_path: Path) -> None:
    env = {"STKEEPER_PG_REPL_USERNAME": "envrepl", "STKEEPER_UID": "k_env", "STKEEPER_PG_PORT": ""}
    cfg = parse_config(without(BASE, "--pg-repl-username"), env=env)
    assert cfg.pg_repl_username == "envrepl" and cfg.uid == "k_env" and cfg.pg_port == "5432"
    cfg = parse_config(BASE, env=env)
    assert cfg.pg_repl_username == "repl"  # the flag wins


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (without(BASE, "--data-dir"), "data dir required"),
        (without(BASE, "--pg-listen-address"), "--pg-listen-address is required"),
        (without(BASE, "--pg-repl-username"), "--pg-repl-username is required"),
        (
            without(BASE, "--pg-repl-password"),
            "one of --pg-repl-password or --pg-repl-passwordfile is required",
        ),
        (without(BASE, "--pg-su-password"), "one of --pg-su-password or --pg-su-passwordfile is required"),
        (
            BASE + ["--pg-repl-passwordfile", "/etc/hostname"],
            "only one of --pg-repl-password or --pg-repl-passwordfile",
        ),
        (
            BASE + ["--pg-repl-auth-method", "password"],
            "--pg-repl-auth-method must be one of: md5, scram-sha-256, trust",
        ),
        (BASE + ["--pg-su-auth-method", "trust"], "can not utilize --pg-su-auth-method trust together with"),
        (BASE + ["--uid", "Keeper-1"], "keeper uid 'Keeper-1' not valid"),
        (BASE + ["--pg-port", "99999"], "--pg-port '99999' is not a valid port number"),
        (without(BASE, "--cluster-name"), "--cluster-name is required"),
        (
            without(BASE, "--pg-su-username", "--pg-su-password")
            + ["--pg-su-username", "repl", "--pg-su-password", "other"],
            "provided superuser name and replication user name are the same but provided passwords are different",
        ),
        (
            without(BASE, "--pg-su-username")
            + ["--pg-su-username", "repl", "--pg-su-auth-method", "scram-sha-256"],
            "do not support different auth methods when utilizing superuser for replication.",
        ),
        (BASE + ["--pg-os-user", "no_such_user_xyz"], "OS user 'no_such_user_xyz' does not exist"),
        (BASE + ["--pg-su-passwordfile", "/nonexistent"], "only one of --pg-su-password"),
    ],
)
def test_fatal_flags(args: list[str], message: str) -> None:
    if "--pg-os-user" in args and os.geteuid() != 0:
        pytest.skip("--pg-os-user is checked only when running as root")
    with pytest.raises(CliError) as err:
        parse_config(args, env={})
    assert message in str(err.value)


def test_password_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    su = tmp_path / "su"
    su.write_text("secret\n")
    su.chmod(0o600)
    repl = tmp_path / "repl"
    repl.write_text("rsecret\r\n")
    repl.chmod(0o600)
    args = without(BASE, "--pg-su-password", "--pg-repl-password") + [
        "--pg-su-passwordfile",
        str(su),
        "--pg-repl-passwordfile",
        str(repl),
    ]
    with caplog.at_level(logging.WARNING, logger="stolon.keeper"):
        cfg = parse_config(args, env={})
    assert cfg.pg_su_password == Secret("secret")
    assert cfg.pg_repl_password == Secret("rsecret")
    text = caplog.text
    assert "superuser password contain trailing new line, removing" in text
    assert "replication user password contain trailing new line, removing" in text
    assert "secret" not in text.replace("rsecret", "").replace(str(tmp_path), "")


@pytest.mark.parametrize(
    ("who", "message"),
    [
        ("su", "superuser password is empty after removing trailing new line"),
        ("repl", "replication user password is empty after removing trailing new line"),
    ],
)
def test_password_only_newline_is_fatal(tmp_path: Path, who: str, message: str) -> None:
    f = tmp_path / "pw"
    f.write_text("\n")
    f.chmod(0o600)
    args = without(BASE, f"--pg-{who}-password") + [f"--pg-{who}-passwordfile", str(f)]
    with pytest.raises(CliError, match=message):
        parse_config(args, env={})


def test_unreadable_password_file() -> None:
    args = without(BASE, "--pg-su-password") + ["--pg-su-passwordfile", "/nonexistent/pw"]
    with pytest.raises(CliError, match="cannot read pg superuser password: /nonexistent/pw"):
        parse_config(args, env={})


def test_trust_needs_no_password(caplog: pytest.LogCaptureFixture) -> None:
    args = without(BASE, "--pg-repl-password") + ["--pg-repl-auth-method", "trust"]
    with caplog.at_level(logging.WARNING, logger="stolon.keeper"):
        cfg = parse_config(args, env={})
    assert not cfg.pg_repl_password
    assert "not utilizing a password for replication between hosts is extremely dangerous" in caplog.text


def test_loopback_advertise_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stolon.keeper"):
        parse_config(BASE, env={})
    assert "is a loopback ip" in caplog.text


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
@pytest.mark.parametrize("who", ["su", "repl"])
def test_loose_password_file_is_refused(tmp_path: Path, who: str, mode: int) -> None:
    """Issue 10 item 3: like libpq's .pgpass, a password file others may access is refused."""
    f = tmp_path / "pw"
    f.write_text("secret\n")
    f.chmod(mode)
    args = without(BASE, f"--pg-{who}-password") + [f"--pg-{who}-passwordfile", str(f)]
    with pytest.raises(CliError) as err:
        parse_config(args, env={})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"--pg-{who}-passwordfile {f} has mode {mode:04o}")
    assert msg.endswith(f"run chmod 600 {f}")
    assert "secret" not in msg.replace(str(tmp_path), "")
    f.chmod(0o400)
    assert parse_config(args, env={})


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("abc\ndef\n", "a line break"),
        ("abc\r\ndef", "a line break"),
        ("abc\rdef\r\n", "a line break"),
        ("abc\x00def", "a control character"),
        ("abc\x1b[2Jdef", "a control character"),
    ],
)
@pytest.mark.parametrize("who", ["su", "repl"])
def test_password_with_an_inner_line_break_is_refused(
    tmp_path: Path, who: str, content: str, kind: str
) -> None:
    """Issue 10 item 12: refused at start (one line naming the flag), not a crash later;
    a trailing ``\\r\\n`` is still stripped as Go Stolon does."""
    f = tmp_path / "pw"
    f.write_text(content, newline="")
    f.chmod(0o600)
    what = "superuser" if who == "su" else "replication user"
    for args in (
        without(BASE, f"--pg-{who}-password") + [f"--pg-{who}-passwordfile", str(f)],
        without(BASE, f"--pg-{who}-password") + [f"--pg-{who}-password", content],
    ):
        with pytest.raises(CliError) as err:
            parse_config(args, env={})
        msg = str(err.value)
        assert "\n" not in msg and "abc" not in msg
        flag = args[-2]
        assert msg.startswith(f"{flag}: the {what} password contains {kind} before its end"), msg


def test_password_file_link_only_where_root_controls_it(tmp_path: Path) -> None:
    """Kubernetes mounts secrets as links in a root-owned directory: those are followed."""
    real = tmp_path / "..data"
    real.mkdir()
    (real / "su").write_text("secret\n")
    (real / "su").chmod(0o600)
    (tmp_path / "su").symlink_to("..data/su")
    args = without(BASE, "--pg-su-password") + ["--pg-su-passwordfile", str(tmp_path / "su")]
    assert parse_config(args, env={}).pg_su_password == Secret("secret")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    args = without(BASE, "--pg-su-password") + ["--pg-su-passwordfile", str(fifo)]
    with pytest.raises(CliError, match="not a regular file"):
        parse_config(args, env={})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pg-listen-address", "10.0.0.3/32 trust\nhost all all 0.0.0.0/0 trust #"], "--pg-listen-address"),
        (["--pg-listen-address", "10.0.0.0/8"], "--pg-listen-address '10.0.0.0/8': use '*'"),
        (["--pg-listen-address", "10.0.0.1,10.0.0.2"], "--pg-listen-address"),
        (["--pg-listen-address", "db host"], "--pg-listen-address"),
        (["--pg-advertise-address", "*"], "--pg-advertise-address '*': use an IP address or a DNS host name"),
        (["--pg-advertise-address", "10.0.0.3 trust"], "--pg-advertise-address"),
        (["--pg-advertise-address", "db\x1b]0;x\x07"], "--pg-advertise-address 'db\\\\x1b]0;x\\\\x07'"),
        (["--pg-listen-address", "*"], "--pg-listen-address '*' needs --pg-advertise-address"),
    ],
)
def test_addresses_must_be_addresses(flags: list[str], message: str) -> None:
    """Issue 10 item 9: what a keeper listens on and advertises is an IP address or a host
    name (``*`` to listen everywhere, with an advertised address): nothing that could become
    a pg_hba mask, keyword or line."""
    args = without(BASE, *[f for f in flags if f.startswith("--")]) + flags
    with pytest.raises(CliError) as err:
        parse_config(args, env={})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_good_addresses(caplog: pytest.LogCaptureFixture) -> None:
    for listen, advertise in (("*", "10.0.0.5"), ("0.0.0.0", "fd00::5"), ("::", "db-1.invalid"),
                              ("db-1.invalid", "")):  # fmt: skip
        args = without(BASE, "--pg-listen-address") + ["--pg-listen-address", listen]
        if advertise:
            args += ["--pg-advertise-address", advertise]
        with caplog.at_level(logging.WARNING, logger="stolon.keeper"):
            cfg = parse_config(args, env={})
        assert cfg.pg_listen_address == listen
        assert cfg.pg_advertise_address == (advertise or listen)
    assert "is not an ip address but a hostname" in caplog.text


@pytest.mark.parametrize("flag", ["--pg-su-username", "--pg-repl-username"])
@pytest.mark.parametrize("name", ['su"x', "su\nhost all all 0.0.0.0/0 trust", "su\x1b"])
def test_user_names_that_cannot_reach_pg_hba_are_refused(flag: str, name: str) -> None:
    with pytest.raises(CliError, match=f"^{flag} .*cannot contain a double quote or a control character$"):
        parse_config([*without(BASE, flag), flag, name], env={})


@pytest.mark.parametrize("uid", ["abc\n", "abc\r", "ab c", "Abc", "abc-1", "\nabc"])
def test_keeper_uid_rule_is_a_full_match(uid: str) -> None:
    """Issue 10 item 11: ``^[a-z0-9_]+$`` with ``re.match`` accepted ``'abc\\n'``."""
    with pytest.raises(CliError, match="not valid"):
        parse_config([*BASE, "--uid", uid], env={})
    assert parse_config([*BASE, "--uid", "abc_1"], env={}).uid == "abc_1"
