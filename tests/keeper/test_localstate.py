"""Keeper data-dir files: atomic state files and the exclusive lock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stolon.keeper.localstate import DataDirLock, DataDirLockedError, DBLocalState, KeeperLocalState


def test_state_files_round_trip_and_are_private(tmp_path: Path) -> None:
    assert KeeperLocalState.load(tmp_path) is None
    KeeperLocalState(uid="k1", cluster_uid="c1").save(tmp_path)
    assert KeeperLocalState.load(tmp_path) == KeeperLocalState("k1", "c1")
    assert json.loads((tmp_path / "keeperstate").read_text()) == {"UID": "k1", "ClusterUID": "c1"}
    assert DBLocalState.load(tmp_path) == DBLocalState()
    DBLocalState(uid="db1", generation=3, initializing=True, init_pg_parameters={"a": "1"}).save(tmp_path)
    assert DBLocalState.load(tmp_path).generation == 3
    assert json.loads((tmp_path / "dbstate").read_text()) == {
        "UID": "db1",
        "Generation": 3,
        "Initializing": True,
        "InitPGParameters": {"a": "1"},
    }
    for name in ("keeperstate", "dbstate"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*tmp"))


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire()
    code = (
        "import sys; from pathlib import Path; from stolon.keeper.localstate import DataDirLock;"
        "DataDirLock(Path(sys.argv[1])).acquire()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0 and "cannot take exclusive lock on data dir" in proc.stderr
    lock.release()
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    with pytest.raises(DataDirLockedError):
        other = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code + ";import time; print('locked', flush=True); time.sleep(30)",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "locked"
            DataDirLock(tmp_path).acquire()
        finally:
            other.kill()
            other.wait()
