"""The chaos matrix's table of faults and how benchmarks/chaos.py picks them (no cluster)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stolon.testing.chaos_faults import BY_NAME, FAULTS

ROOT = Path(__file__).resolve().parents[2]
STORES = {"embedded", "etcd", "etcd3", "netns"}


def test_fault_names_are_unique_and_stores_known() -> None:
    names = [f.name for f in FAULTS]
    assert len(names) == len(set(names)) == len(BY_NAME)
    assert {f.store for f in FAULTS} <= STORES


def test_both_partitions_run_with_every_keeper_in_its_own_namespace() -> None:
    # same store and tmpfs: benchmarks/chaos.py runs them on one cluster, one after the other
    a, b = BY_NAME["partition"], BY_NAME["partition-standbys"]
    assert (a.store, a.tmpfs_mb) == (b.store, b.tmpfs_mb) == ("netns", 0)
    assert [f.name for f in FAULTS].index("partition-standbys") == [f.name for f in FAULTS].index(
        "partition"
    ) + 1


def test_an_unknown_fault_is_refused_naming_the_known_ones() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--faults", "partition-standby"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()[-1]
    assert "--faults: unknown partition-standby" in err and "partition-standbys" in err
