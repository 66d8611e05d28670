"""A whole cluster on the Kubernetes API emulator: 2 keepers (real PostgreSQL), 2 sentinels
and a proxy, each process with its own POD_NAME and a labelled pod object; kill -9 of the
master's keeper and PostgreSQL; a new master is elected and the rows written before are
there, through the proxy."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from kube_testing import NAMESPACE, EmulatorEnv, wait_until

from stolon.local.cluster import LocalCluster
from stolon.model.uid import new_uid
from stolon.plugins import load_plugins

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration

SPEC = {
    "sleepInterval": "1s",
    "failInterval": "3s",
    "requestTimeout": "3s",
    "convergenceTimeout": "30s",
    "proxyCheckInterval": "1s",
    "proxyTimeout": "3s",
    "pgParameters": {"max_connections": "50", "log_min_messages": "warning", "shared_buffers": "16MB"},
}
COMPONENT = {"keeper": "stolon-keeper", "sentinel": "stolon-sentinel", "proxy": "stolon-proxy"}


@pytest.fixture
def base_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="stolon-k8s-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def kube_cluster(base: Path, env: EmulatorEnv) -> LocalCluster:
    name = f"k8s-{new_uid()}"
    cluster = LocalCluster.create(
        base / "c",
        name=name,
        keepers=2,
        sentinels=2,
        store_backend="kubernetes",
        spec=SPEC,
        election_ttl="3s",
        backends=PLUGINS,
    )
    for process_name, proc in cluster.processes.items():
        component = COMPONENT[process_name.rstrip("0123456789")]
        pod = f"{name}-{process_name}"
        env.add_pod(pod, component, name)
        # as in a pod: POD_NAME from the downward API; the API server from a kubeconfig
        proc.env.update(POD_NAME=pod, KUBECONFIG=str(env.kubeconfig))
        proc.argv += ["--kube-resource-kind", "configmap"]
    return cluster


def rows(dsn: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM t").fetchall()}


def test_failover_on_kubernetes(
    base_dir: Path, kube_emulator: EmulatorEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_emulator.kubeconfig))  # for this process's reads
    cluster = kube_cluster(base_dir, kube_emulator)
    cluster.start()
    try:
        cluster.wait_healthy(90)
        old = cluster.master_keeper()
        assert old is not None
        (standby,) = [k for k in cluster.keeper_uids() if k != old]
        with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE TABLE t (id int primary key)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
        want = set(range(1, 101))
        standby_dsn = cluster.dsn(port=cluster.keeper_pg_port(standby))
        assert wait_until(lambda: _rows_or_empty(standby_dsn) >= want, 30), "rows did not reach the standby"

        cluster.kill_keeper_and_postgres(old)

        def failed_over() -> bool:
            cd = cluster.cluster_data()
            db = cd.master_db() if cd is not None else None
            return (
                db is not None
                and db.spec is not None
                and db.spec.keeper_uid == standby
                and db.status.healthy
                and db.status.current_generation == db.generation
            )

        started = time.monotonic()
        assert wait_until(failed_over, 60, 0.5), "no new master within 60s:\n" + _logs(cluster)
        elected_after = time.monotonic() - started
        assert wait_until(lambda: _rows_or_empty(cluster.dsn()) >= want, 30), (
            "the proxy does not reach the new master with the rows:\n" + _logs(cluster)
        )
        with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=5) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            conn.execute("INSERT INTO t VALUES (101)")
        lease = kube_emulator.emulator.get_object(
            "leases", NAMESPACE, f"stolon-cluster-{cluster.layout.name}"
        )
        assert lease is not None and lease["spec"]["holderIdentity"]
        print(f"new master elected {elected_after:.1f}s after the kill")
    finally:
        cluster.stop(timeout=30)


def _rows_or_empty(dsn: str) -> set[int]:
    try:
        return rows(dsn)
    except psycopg.Error:
        return set()


def _logs(cluster: LocalCluster) -> str:
    return "\n".join(f"== {n} ==\n{p.output(2500)}" for n, p in cluster.processes.items())
