"""The sentinel's cluster metrics the dashboard uses: DB health and replication lag from
the cluster data the leader wrote, and master changes by cause."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stolon.sentinel.daemon import SentinelMetrics
from stolon.testing.sentinel_builders import CD, MASTER


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def test_health_lag_and_master_changes() -> None:
    m = SentinelMetrics("c")
    reg = m.m.registry
    before = CD().keeper("k1").keeper("k2").keeper("k3")
    before = (
        before.db("d1", "k1", role=MASTER, xlog=5000)
        .db("d2", "k2", xlog=4000)
        .db("d3", "k3", xlog=100, healthy=False)
    )
    prev = before.master("d1").build()
    m.observe(prev, prev, switchover=False)
    assert sample(reg, "stolon_sentinel_db_healthy", keeper="k1") == 1
    assert sample(reg, "stolon_sentinel_db_healthy", keeper="k3") == 0
    assert sample(reg, "stolon_sentinel_db_lag_bytes", keeper="k2") == 1000
    assert sample(reg, "stolon_sentinel_db_lag_bytes", keeper="k3") is None  # unhealthy: unknown
    assert sample(reg, "stolon_sentinel_db_lag_bytes", keeper="k1") is None  # the master
    assert sample(reg, "stolon_sentinel_master_changes_total", cause="failover") is None

    after = (
        before.clone().db("d2", "k2", role=MASTER, xlog=4000).db("d1", "k1", xlog=5000).master("d2").build()
    )
    m.observe(prev, after, switchover=False)
    assert sample(reg, "stolon_sentinel_master_changes_total", cause="failover") == 1
    m.observe(after, prev, switchover=True)
    assert sample(reg, "stolon_sentinel_master_changes_total", cause="switchover") == 1
    # a follower exports no per-DB series
    m.observe(prev, None, switchover=False)
    assert sample(reg, "stolon_sentinel_db_healthy", keeper="k1") is None


def test_cluster_initialization_is_not_a_master_change() -> None:
    m = SentinelMetrics("c")
    cd = CD().keeper("k1").db("d1", "k1", role=MASTER)
    m.observe(cd.build(), cd.master("d1").build(), switchover=False)
    assert (
        m.m.registry.get_sample_value("stolon_sentinel_master_changes_total", {"cause": "failover"}) is None
    )
