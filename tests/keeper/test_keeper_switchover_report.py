"""The target of a switchover reports at once when the old master has stopped.

The sentinel promotes the target once it reports the old master's shutdown position; the
keeper's next heartbeat could be up to sleepInterval away. The daemon's cycle asks the
collector for an immediate report (once per switchover) when the cluster data says the
old master stopped (phase ``catching_up``) and its own DB is the target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stolon.cli.keeper import parse_config
from stolon.keeper.daemon import Keeper
from stolon.model import ClusterSpec
from stolon.model.cluster import (
    SWITCHOVER_CATCHING_UP,
    SWITCHOVER_PROMOTING,
    SWITCHOVER_STOPPING,
    Cluster,
    ClusterData,
    Switchover,
)
from stolon.plugins import load_plugins


def keeper(tmp_path: Path) -> Keeper:
    cfg = parse_config(
        [
            "--cluster-name", "c",
            "--store-backend", "embedded",
            "--store-endpoints", str(tmp_path / "store.db"),
            "--data-dir", str(tmp_path / "data"),
            "--pg-listen-address", "127.0.0.1",
            "--pg-repl-username", "repl",
            "--pg-repl-password", "x",
            "--pg-su-password", "y",
        ],
        env={},
    )  # fmt: skip
    return Keeper(cfg, load_plugins())


def cluster_data(phase: str, target: str, sw_id: str = "sw1") -> ClusterData:
    cd = ClusterData.new(Cluster.new(ClusterSpec()))
    assert cd.cluster is not None and cd.cluster.status is not None
    cd.cluster.status.switchover = Switchover(id=sw_id, phase=phase, target_db=target, master_db="db0")
    return cd


@pytest.mark.parametrize(
    ("phase", "target", "mine", "reports"),
    [
        (SWITCHOVER_CATCHING_UP, "db1", "db1", True),
        (SWITCHOVER_CATCHING_UP, "db2", "db1", False),  # another DB is the target
        (SWITCHOVER_STOPPING, "db1", "db1", False),  # the old master has not stopped yet
        (SWITCHOVER_PROMOTING, "db1", "db1", False),  # promotion reports by itself
        (SWITCHOVER_CATCHING_UP, "db1", "", False),  # no DB assigned
    ],
)
def test_target_reports_at_once_when_the_old_master_stopped(
    tmp_path: Path, phase: str, target: str, mine: str, reports: bool
) -> None:
    k = keeper(tmp_path)
    k._report_if_switchover_target(cluster_data(phase, target), mine)
    assert k._collect_now.is_set() is reports


def test_once_per_switchover(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k._report_if_switchover_target(cluster_data(SWITCHOVER_CATCHING_UP, "db1"), "db1")
    assert k._collect_now.is_set()
    k._collect_now.clear()
    k._report_if_switchover_target(cluster_data(SWITCHOVER_CATCHING_UP, "db1"), "db1")
    assert not k._collect_now.is_set(), "every cycle of the same switchover would report again"
    k._report_if_switchover_target(cluster_data(SWITCHOVER_CATCHING_UP, "db1", sw_id="sw2"), "db1")
    assert k._collect_now.is_set()
    k._collect_now.clear()
    k._report_if_switchover_target(None, "db1")
    assert not k._collect_now.is_set()
