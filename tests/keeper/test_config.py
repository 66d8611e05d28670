"""stolon-keeper flag validation (Go Stolon's rules and messages)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from stolon.cli.common import CliError
from stolon.keeper.config import Secret, parse_config

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
    su.chmod(0o644)
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
    assert "password file permissions are too open" in text and str(su) in text
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
