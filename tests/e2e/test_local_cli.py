"""``stolonctl local``: the per-user base directory, a base directory that belongs to someone
else, the store flags accepted after ``local up``, and ``local stop|start NAME`` on a real
cluster (the README's "watch a node leave and come back")."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stolon.cli import stolonctl
from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stolon.cli.stolonctl", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def base_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="stolon-localcli-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_default_base_dir_is_per_user(capsys: pytest.CaptureFixture[str]) -> None:
    name = f"nosuch{os.getpid()}"
    assert stolonctl.main(["local", "status", "--name", name]) == 1
    err = capsys.readouterr().err
    assert (
        f"no local cluster in /tmp/stolon-{getpass.getuser()}-{name} " in err and "stolonctl local up" in err
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_someone_elses_base_dir_is_one_line_and_untouched(
    base_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = base_dir / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)  # nobody
    for args in (["up", "--check"], ["status"], ["down", "--purge"], ["start", "keeper0"]):
        assert stolonctl.main(["local", *args, "--base-dir", str(theirs)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"base directory {theirs} belongs to user " in err and "--base-dir" in err
    assert theirs.is_dir() and not any(theirs.iterdir())


def test_store_flags_after_local_up(base_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Accepted after `local up` (the README used to show them there and got
    "unrecognized arguments"); same meaning as before `local`."""
    for argv in (
        ["local", "up", "--base-dir", str(base_dir / "a"), "--store-endpoints", "http://127.0.0.1:1"],
        ["--store-endpoints", "http://127.0.0.1:1", "local", "up", "--base-dir", str(base_dir / "a")],
    ):
        assert stolonctl.main(argv) == 1
        assert "--store-endpoints: the local cluster keeps its embedded store" in capsys.readouterr().err
    assert not (base_dir / "a").exists()


@pytest.mark.integration
def test_stop_and_start_one_process(base_dir: Path) -> None:
    base = base_dir / "c"
    up = run("local", "up", "--detach", "--keepers", "2", "--sentinels", "1", "--base-dir", str(base))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        cluster = LocalCluster.load(base, backends=load_plugins())
        master = cluster.master_keeper()
        standby = next(k for k in cluster.keeper_uids() if k != master)
        res = run("local", "stop", standby, "--base-dir", str(base))
        assert res.returncode == 0 and f"stopped {standby} (and its PostgreSQL)" in res.stdout, res.stderr
        assert f"{standby:<10} stopped" in run("local", "status", "--base-dir", str(base)).stdout
        res = run("local", "stop", standby, "--base-dir", str(base))
        assert res.returncode == 1 and res.stderr == f"stolonctl: {standby} is not running\n"
        res = run("local", "start", "keeper9", "--base-dir", str(base))
        assert res.returncode == 1 and "no process 'keeper9' in this local cluster: use one of" in res.stderr
        res = run("local", "start", standby, "--base-dir", str(base))
        assert res.returncode == 0 and f"started {standby} (pid " in res.stdout, res.stderr
        res = run("local", "start", standby, "--base-dir", str(base))
        assert res.returncode == 1 and "is already running" in res.stderr
        deadline = time.monotonic() + 120
        while not cluster.healthy()[0] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert cluster.healthy()[0], cluster.healthy()[1]
        assert f"{standby:<10} running" in run("local", "status", "--base-dir", str(base)).stdout
    finally:
        down = run("local", "down", "--base-dir", str(base))
        assert down.returncode == 0, down.stderr
    assert not [p for p in (base / "pids").glob("*.pid")]


def test_up_again_is_healthy_only_once_this_runs_processes_report(base_dir: Path) -> None:
    """A stopped local cluster started again: its stored cluster data still says healthy
    from the last run; `up --check` must wait for this run's keepers and proxy (it used to
    report "healthy (0s)" and then fail to connect through a proxy not yet listening)."""
    base = base_dir / "c"
    for attempt in range(2):
        res = run("local", "up", "--check", "--keepers", "2", "--sentinels", "1", "--base-dir", str(base))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "check passed" in res.stdout, res.stdout
        if attempt:
            assert "waiting for the keepers of this run to report" in res.stdout, res.stdout
    run("local", "down", "--base-dir", str(base))
