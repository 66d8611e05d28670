"""The local cluster's files (issue 10 items 2 and 3): private secrets and store, and a
postmaster.pid the PostgreSQL user could write never makes root signal another process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stolon.cli.keeper import parse_config
from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins
from stolon.store.embedded import EmbeddedStore

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


def test_secrets_and_store_are_private_and_accepted_by_the_keeper(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        cluster = LocalCluster.create(tmp_path / "c", keepers=1, sentinels=1, backends=PLUGINS)
        store = EmbeddedStore(cluster.layout.store_config())
        store.close()
    finally:
        os.umask(old)
    for who in ("su", "repl"):
        assert stat.S_IMODE((tmp_path / "c" / "secrets" / who).stat().st_mode) == 0o600
    for f in (tmp_path / "c" / "store").glob("store.db*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # the keeper's own argv, as `stolonctl local up` starts it, passes the keeper's checks
    argv = cluster.processes["keeper0"].argv
    cfg = parse_config(argv[argv.index("stolon.cli.keeper") + 1 :], env={})
    assert cfg.pg_su_password.reveal() == cluster.password("su")


def test_postmaster_pid_of_another_process_is_ignored(tmp_path: Path) -> None:
    cluster = LocalCluster.create(tmp_path / "c", keepers=1, sentinels=1, backends=PLUGINS)
    pgdata = tmp_path / "c" / "keepers" / "keeper0" / "postgres"
    pgdata.mkdir(parents=True)
    (pgdata / "postmaster.pid").write_text("1\n/x\n")
    assert cluster.postmaster_pid("keeper0") is None
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n")  # ours, and PGDATA is ours
    assert cluster.postmaster_pid("keeper0") == os.getpid()


def test_kill_leftovers_kills_what_runs_in_the_directory(tmp_path: Path) -> None:
    """What a killed postmaster leaves running in a keeper's directory is killed when the
    local cluster stops (and nothing outside it)."""
    import subprocess

    from stolon.local.processes import kill_leftovers

    inside = tmp_path / "keepers" / "keeper0" / "postgres"
    inside.mkdir(parents=True)
    outside = tmp_path / "other"
    outside.mkdir()
    left = subprocess.Popen(["sleep", "60"], cwd=inside)
    kept = subprocess.Popen(["sleep", "60"], cwd=outside)
    try:
        assert kill_leftovers(tmp_path / "keepers" / "keeper0") == [left.pid]
        assert left.wait(10) == -9
        assert kept.poll() is None
    finally:
        for p in (left, kept):
            p.kill()
            p.wait()
