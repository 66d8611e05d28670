"""stolon-proxy's flags: Go Stolon's names and defaults, STPROXY_* variables, --listener,
and one-line errors for malformed input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stolon.cli.common import CliError
from stolon.cli.proxy import parse_config
from stolon.proxy.config import ListenerConfig
from stolon.proxy.forwarder import SocketOptions

BASE = ["--cluster-name", "c1", "--store-backend", "etcdv3"]


def test_go_defaults() -> None:
    cfg = parse_config(BASE, env={})
    assert cfg.listeners == (ListenerConfig("default", "master", "127.0.0.1", 5432),)
    assert cfg.stop_listening is True
    assert cfg.socket_options == SocketOptions(0, 0, 0)
    assert cfg.metrics_listen_address == ""
    assert cfg.log_level == "info"
    assert cfg.store.cluster_name == "c1" and cfg.store.timeout == 5.0


def test_flags_and_env() -> None:
    cfg = parse_config(
        [
            *BASE,
            "--listen-address",
            "0.0.0.0",
            "--port",
            "6432",
            "--stop-listening=false",
            "--tcp-keepalive-idle",
            "30",
            "--tcp-keepalive-count",
            "3",
            "--tcp-keepalive-interval",
            "5",
            "--metrics-listen-address",
            "127.0.0.1:9100",
            "--debug",
        ],
        env={},
    )
    assert cfg.listeners[0] == ListenerConfig("default", "master", "0.0.0.0", 6432)
    assert cfg.stop_listening is False
    assert cfg.socket_options == SocketOptions(30, 3, 5)
    assert cfg.metrics_listen_address == "127.0.0.1:9100"
    assert cfg.log_level == "debug"
    env = {
        "STPROXY_CLUSTER_NAME": "fromenv",
        "STPROXY_STORE_BACKEND": "etcdv3",
        "STPROXY_PORT": "7000",
        "STPROXY_STOP_LISTENING": "false",
        "STPROXY_TCP_KEEPALIVE_IDLE": "12",
        "STPROXY_LISTENER": "policy=readonly,port=7001;name=r2,policy=readonly,port=7002,max-lag=1MiB",
    }
    cfg = parse_config(["--port", "7100"], env=env)  # the command line wins over the environment
    assert cfg.store.cluster_name == "fromenv"
    assert cfg.listeners[0].port == 7100
    assert cfg.stop_listening is False
    assert cfg.socket_options.keepalive_idle == 12
    assert [(lc.name, lc.port, lc.settings) for lc in cfg.listeners[1:]] == [
        ("readonly", 7001, {}),
        ("r2", 7002, {"max-lag": "1MiB"}),
    ]


def test_listener_spec() -> None:
    cfg = parse_config(
        [
            *BASE,
            "--listener",
            "policy=readonly,port=25433,address=127.0.0.2,max-lag=1MiB,balance=round-robin",
        ],
        env={},
    )
    assert cfg.listeners[1] == ListenerConfig(
        "readonly", "readonly", "127.0.0.2", 25433, {"max-lag": "1MiB", "balance": "round-robin"}
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tcp-keepalive-idle", "-1"], "tcp keepalive idle value must be greater or equal to 0"),
        (["--tcp-keepalive-count", "-2"], "tcp keepalive count value must be greater or equal to 0"),
        (["--tcp-keepalive-interval", "-3"], "tcp keepalive interval value must be greater or equal to 0"),
        (["--tcp-keepalive-idle", "soon"], "argument --tcp-keepalive-idle: invalid int value: 'soon'"),
        (["--port", "http"], "--port 'http' is not a valid port number (1-65535)"),
        (["--port", "70000"], "--port '70000' is not a valid port number"),
        (["--stop-listening=maybe"], "--stop-listening: invalid boolean 'maybe'"),
        (["--log-level", "loud"], "invalid log level 'loud'"),
        (["--metrics-listen-address", "9100"], "--metrics-listen-address '9100': use HOST:PORT"),
        (["--store-timeout", "5"], "invalid duration '5'"),
        (["--listener", "port=1"], "policy=NAME is required"),
        (["--listener", "policy=readonly"], "port=PORT is required"),
        (["--listener", "policy=readonly,port=1,oops"], "'oops' is not KEY=VALUE"),
        (["--listener", "policy=readonly,port=1,port=2"], "port given twice"),
        (["--listener", "policy=master,port=5432,name=default"], "two listeners are named 'default'"),
        (["--listener", "policy=readonly,port=5432"], "127.0.0.1:5432 is already used by listener default"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_malformed_flags(args: list[str], message: str) -> None:
    with pytest.raises(CliError) as ei:
        parse_config([*BASE, *args], env={})
    assert message in str(ei.value)
    assert ei.value.exit_code != 0


def test_missing_store_flags() -> None:
    with pytest.raises(CliError, match="--cluster-name is required"):
        parse_config([], env={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(CliError, match="STPROXY_TCP_KEEPALIVE_COUNT"):
        parse_config(BASE, env={"STPROXY_TCP_KEEPALIVE_COUNT": "x"})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stolon.cli.proxy", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*BASE, "--tcp-keepalive-idle", "-5"], "tcp keepalive idle value must be greater or equal to 0"),
        ([*BASE, "--port", "x"], "--port 'x' is not a valid port number (1-65535)"),
        (["--store-backend", "etcdv3"], "--cluster-name is required"),
        ([*BASE, "--listener", "policy=nearest,port=6000"], "unknown proxy health policy 'nearest'"),
        ([*BASE, "--listener", "policy=readonly,port=6000,max-lag=far"], "max-lag='far'"),
        (["--cluster-name", "c", "--store-backend", "zookeeper"], "unknown store backend 'zookeeper'"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    out = _cli(*args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("stolon-proxy: ") and message in lines[0]


def test_cli_help() -> None:
    out = _cli("--help")
    assert out.returncode == 0
    for flag in ("--listen-address", "--port", "--stop-listening", "--tcp-keepalive-idle", "--listener"):
        assert flag in out.stdout
