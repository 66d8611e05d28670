"""contrib/systemd: the unit files pass ``systemd-analyze verify`` without a warning, stay
hardened (``systemd-analyze security --offline``), keep the keeper -> PostgreSQL shutdown
path (KillMode=mixed), and every setting they and the example env files pass is a flag our
daemons have."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stolon.sentinel.daemon import load_initial_spec
from stolon.testing.requirements import tool_missing

from . import cli_surface
from .paths import CONTRIB

SYSTEMD = CONTRIB / "systemd"
UNITS = {
    "stolon-keeper.service": "stolon-keeper",
    "stolon-sentinel.service": "stolon-sentinel",
    "stolon-proxy.service": "stolon-proxy",
}
ENV_EXAMPLES = {
    "keeper.env.example": "stolon-keeper",
    "sentinel.env.example": "stolon-sentinel",
    "proxy.env.example": "stolon-proxy",
}
#: where the README installs stolon; the tests point it at this environment's scripts
INSTALL_BIN = "/opt/stolon/bin/"
#: systemd-analyze security's exposure scale: 0 (locked down) to 10 (unprotected)
MAX_EXPOSURE = 2.5


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order (keys may repeat)."""
    entries = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(path: Path, key: str) -> list[str]:
    return [v for _, k, v in unit_entries(path) if k == key]


def one(path: Path, key: str) -> str:
    found = values(path, key)
    assert len(found) == 1, f"{path.name}: expected one {key}=, found {found}"
    return found[0]


def env_file_vars(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        tool_missing(
            "contrib",
            "systemd-analyze not installed (Debian package systemd; scripts/setup --tests installs it as root)",
        )
    return tool


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this environment's console scripts
    (systemd-analyze verify checks that the binary exists)."""
    bindir = str(Path(sys.executable).parent) + "/"
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        assert INSTALL_BIN in text
        (tmp_path / name).write_text(text.replace(INSTALL_BIN, bindir))
    return tmp_path


def test_units_verify_without_warnings(installed_units: Path) -> None:
    tool = systemd_analyze()
    units = [str(installed_units / n) for n in UNITS]
    res = subprocess.run(
        [tool, "verify", "--man=no", *units], capture_output=True, text=True, timeout=120, check=False
    )
    # verify exits 0 on unknown keys and unparsable values (it only logs them): any output
    # is a defect.
    assert res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(), res.stderr


def test_units_stay_hardened(installed_units: Path) -> None:
    tool = systemd_analyze()
    for name in UNITS:
        res = subprocess.run(
            [tool, "security", "--offline=yes", "--no-pager", str(installed_units / name)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", res.stdout)
        assert m, res.stdout[-2000:] + res.stderr
        assert float(m.group(1)) <= MAX_EXPOSURE, f"{name}: exposure {m.group(1)}\n{res.stdout}"


def test_verify_catches_a_bad_setting(installed_units: Path) -> None:
    """The check above is meaningful: a misspelt key does produce output."""
    tool = systemd_analyze()
    bad = installed_units / "stolon-proxy.service"
    bad.write_text(bad.read_text().replace("KillMode=mixed", "KillMode=mixd"))
    res = subprocess.run([tool, "verify", "--man=no", str(bad)], capture_output=True, text=True, check=False)
    assert "kill mode" in res.stderr.lower()


def test_each_unit_runs_its_daemon_with_restart_and_ordering() -> None:
    for name, command in UNITS.items():
        path = SYSTEMD / name
        assert one(path, "ExecStart") == INSTALL_BIN + command
        assert one(path, "Restart") == "always"
        assert one(path, "KillMode") == "mixed"
        assert "network-online.target" in one(path, "After").split()
        assert "network-online.target" in one(path, "Wants").split()
        assert one(path, "NoNewPrivileges") == "yes"
        assert one(path, "EnvironmentFile") == f"/etc/stolon/{command.removeprefix('stolon-')}.env"
        assert one(path, "WantedBy") == "multi-user.target"


def test_keeper_shutdown_path_and_user() -> None:
    """SIGTERM to the keeper alone (it stops PostgreSQL with a fast shutdown itself, within
    its 60 s pg_ctl timeout), then SIGKILL for leftovers; PostgreSQL's user, no capability."""
    keeper = SYSTEMD / "stolon-keeper.service"
    assert one(keeper, "KillMode") == "mixed"
    assert one(keeper, "KillSignal") == "SIGTERM"
    stop = one(keeper, "TimeoutStopSec")
    assert stop.endswith("s") and int(stop[:-1]) >= 75
    assert one(keeper, "User") == "postgres"
    assert one(keeper, "CapabilityBoundingSet") == ""
    assert one(keeper, "StateDirectory") == "stolon/keeper"
    assert one(keeper, "StateDirectoryMode") == "0700"


def test_passwords_only_as_files() -> None:
    keeper_env = dict(v.split("=", 1) for v in values(SYSTEMD / "stolon-keeper.service", "Environment"))
    assert keeper_env["STKEEPER_PG_SU_PASSWORDFILE"].startswith("/etc/stolon/secrets/")
    assert keeper_env["STKEEPER_PG_REPL_PASSWORDFILE"].startswith("/etc/stolon/secrets/")
    for name in ENV_EXAMPLES:
        assert not [k for k in env_file_vars(SYSTEMD / name) if k.endswith("_PASSWORD")], name


def test_settings_are_flags_of_the_daemon() -> None:
    for name, command in UNITS.items():
        for assignment in values(SYSTEMD / name, "Environment"):
            var = assignment.split("=", 1)[0]
            assert cli_surface.command_for_env(var) == command, (name, var)
            assert not cli_surface.unknown_env([var]), f"{name}: {var} is not a {command} flag"
    for name, command in ENV_EXAMPLES.items():
        names = env_file_vars(SYSTEMD / name)
        assert names, name
        for var in names:
            if var.startswith("OTEL_"):
                continue
            assert cli_surface.command_for_env(var) == command, (name, var)
        assert not cli_surface.unknown_env(names), f"{name}: not flags of {command}"


def test_initial_cluster_spec_is_valid() -> None:
    """The sentinel's own loader (strict keys, validation), as at start-up."""
    load_initial_spec(str(SYSTEMD / "cluster-spec.json"))
