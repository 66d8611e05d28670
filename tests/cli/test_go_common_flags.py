"""Flags every binary shares with Go Stolon: ``--version``, the environment variables of
aliases and deprecated flags, stolonctl's ``--log-level`` default (issue 15, item 4)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

import pytest

from stolon import __version__
from stolon.cli import keeper, proxy, sentinel, stolonctl
from stolon.cli.common import CliError, apply_env_defaults, normalize_bool_flags
from stolon.plugins import load_plugins

from .test_keeper_flags import BASE as KEEPER_BASE

PLUGINS = load_plugins()
STORE = ["--cluster-name", "c1", "--store-backend", "embedded", "--store-endpoints", "/tmp/x.db"]


@pytest.mark.parametrize(
    ("binary", "main"),
    [
        ("stolon-keeper", keeper.main),
        ("stolon-sentinel", sentinel.main),
        ("stolon-proxy", proxy.main),
        ("stolonctl", lambda argv: stolonctl.main(argv, PLUGINS)),
    ],
)
def test_version_prints_what_cobra_prints(
    binary: str, main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Go: each command sets ``Version: cmd.Version`` (cmd/*/cmd/*.go); cobra v0.0.5 adds
    ``--version`` and prints its default template ``{{with .Name}}{{printf "%s " .}}{{end}}
    {{printf "version %s" .Version}}\\n`` on stdout, exit 0, even without the required flags."""
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"{binary} version {__version__}\n", "")


def test_version_of_the_installed_console_script() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "stolon.cli.keeper", "--version"], capture_output=True, text=True, check=False
    )
    assert (res.returncode, res.stdout) == (0, f"stolon-keeper version {__version__}\n")


def test_every_alias_has_its_environment_variable() -> None:
    """Go: internal/flagutil SetFlagsFromEnv visits every flag of the set, so ``--id`` (the
    deprecated name of ``--uid``, cmd/keeper/cmd/keeper.go, both bound to ``cfg.uid``) is set
    by ``STKEEPER_ID``. Flags are visited sorted, ``id`` before ``uid``: with both variables,
    ``STKEEPER_UID`` wins. A flag on the command line wins over both."""
    args = list(KEEPER_BASE)
    assert keeper.parse_config(args, env={"STKEEPER_ID": "k_from_id"}).uid == "k_from_id"
    both = {"STKEEPER_ID": "k_from_id", "STKEEPER_UID": "k_from_uid"}
    assert keeper.parse_config(args, env=both).uid == "k_from_uid"
    assert keeper.parse_config([*args, "--id", "k_flag"], env=both).uid == "k_flag"
    with pytest.raises(CliError, match="keeper uid 'Not-Valid!' not valid"):
        keeper.parse_config(args, env={"STKEEPER_ID": "Not-Valid!"})


def _parse(
    parser: argparse.ArgumentParser, prefix: str, env: dict[str, str], argv: list[str]
) -> argparse.Namespace:
    apply_env_defaults(parser, prefix, env)
    return parser.parse_args(normalize_bool_flags(argv))


def test_deprecated_debug_flags_have_their_variables() -> None:
    """Go: ``--debug`` (MarkDeprecated in keeper.go, sentinel.go, proxy.go) is still a flag
    of the set: ``STKEEPER_DEBUG``, ``STSENTINEL_DEBUG``, ``STPROXY_DEBUG``."""
    assert keeper.parse_config(KEEPER_BASE, env={"STKEEPER_DEBUG": "true"}).log_level == "debug"
    assert proxy.parse_config(STORE, env={"STPROXY_DEBUG": "true"}).log_level == "debug"
    assert _parse(sentinel.build_parser(), "STSENTINEL", {"STSENTINEL_DEBUG": "true"}, STORE).debug is True


def test_stolonctl_log_level_defaults_to_info() -> None:
    """Go: cmd/common.go AddCommonFlags, stolonctl branch: ``--log-level`` default ``info``."""
    parser = stolonctl.build_parser(PLUGINS)
    assert parser.parse_args([*STORE, "status"]).log_level == "info"
    parser = stolonctl.build_parser(PLUGINS)
    assert (
        _parse(parser, "STOLONCTL", {"STOLONCTL_LOG_LEVEL": "warn"}, [*STORE, "status"]).log_level == "warn"
    )


def test_stolonctl_accepts_metrics_listen_address() -> None:
    """Go: a common flag, on stolonctl too (which serves no metrics)."""
    args = stolonctl.build_parser(PLUGINS).parse_args(
        ["--metrics-listen-address", "0.0.0.0:8080", *STORE, "status"]
    )
    assert args.metrics_listen_address == "0.0.0.0:8080"
