"""The topology contrib/docker/compose.yaml describes, run here without Docker: a real etcd,
as many keepers, sentinels and proxies as the compose file has, the same initial cluster
spec, the keepers' PostgreSQL settings (auth methods, users) and the proxy's read-only
listener, through the local cluster command. A write through the proxy reaches the master
and is read back through the proxy and through the read-only listener (a standby)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from stolon_store_etcd.testing import EtcdServer

from stolon.local.cluster import LocalCluster
from stolon.model.uid import new_uid
from stolon.netutil import free_port
from stolon.plugins import load_plugins

from . import cli_surface
from .test_docker import DOCKER, compose_model, services_running

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration

#: keeper settings that describe the container (addresses, paths, identity, store), not
#: the cluster: the local cluster sets its own
PER_HOST = {
    "STKEEPER_CLUSTER_NAME", "STKEEPER_STORE_BACKEND", "STKEEPER_STORE_ENDPOINTS", "STKEEPER_DATA_DIR",
    "STKEEPER_PG_LISTEN_ADDRESS", "STKEEPER_PG_ADVERTISE_ADDRESS", "STKEEPER_PG_PORT", "STKEEPER_UID",
    "STKEEPER_PG_SU_PASSWORDFILE", "STKEEPER_PG_REPL_PASSWORDFILE", "STKEEPER_METRICS_LISTEN_ADDRESS",
    "STKEEPER_PG_SU_USERNAME", "STKEEPER_PG_REPL_USERNAME",
}  # fmt: skip


@pytest.fixture
def base_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="stolon-compose-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def keeper_args() -> list[str]:
    """The compose keepers' cluster-wide settings as flags (they are the same for all)."""
    envs = [svc["environment"] for svc in services_running("stolon-keeper").values()]
    shared = {k: v for k, v in envs[0].items() if k not in PER_HOST}
    assert all({k: e[k] for k in shared} == shared for e in envs)
    args = []
    for var, value in sorted(shared.items()):
        flag = "--" + var.removeprefix("STKEEPER_").lower().replace("_", "-")
        assert cli_surface.env_var("stolon-keeper", flag) == var
        args += [flag, str(value)]
    return args


def test_compose_topology_on_a_local_cluster(base_dir: Path, etcd_server: EtcdServer) -> None:
    model = compose_model()
    ((_, proxy_svc),) = services_running("stolon-proxy").items()
    backend = proxy_svc["environment"]["STPROXY_STORE_BACKEND"]
    sentinel_env = next(iter(services_running("stolon-sentinel").values()))["environment"]
    spec_source = model["configs"][
        next(iter(services_running("stolon-sentinel").values()))["configs"][0]["source"]
    ]
    spec = json.loads((DOCKER / spec_source["file"]).read_text())
    assert sentinel_env["STSENTINEL_INITIAL_CLUSTER_SPEC"]
    extra = keeper_args()
    assert "--pg-su-auth-method" in extra

    cluster = LocalCluster.create(
        base_dir / "c",
        name=f"compose-{new_uid()}",
        keepers=len(services_running("stolon-keeper")),
        sentinels=len(services_running("stolon-sentinel")),
        store_backend=backend,
        store_endpoints=list(etcd_server.endpoints),
        spec=spec,
        extra_keeper_args=extra,
        backends=PLUGINS,
    )
    # the compose proxy's read-only listener, on a free port of this machine
    listener = proxy_svc["environment"]["STPROXY_LISTENER"]
    ro_port = free_port()
    cluster.processes["proxy"].env["STPROXY_LISTENER"] = listener.replace("port=5433", f"port={ro_port}")
    assert f"port={ro_port}" in cluster.processes["proxy"].env["STPROXY_LISTENER"]
    cluster.start()
    try:
        cluster.wait_healthy(300)
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (False,)
            conn.execute("create table compose_check (v text)")
            conn.execute("insert into compose_check values ('through the proxy')")
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            assert conn.execute("select v from compose_check").fetchall() == [("through the proxy",)]
        # the read-only listener routes to a standby once one is converged and close enough
        deadline = time.monotonic() + 120
        last: object = None
        while True:
            try:
                with psycopg.connect(cluster.dsn(port=ro_port), autocommit=True, connect_timeout=5) as conn:
                    recovery = conn.execute("select pg_is_in_recovery()").fetchone()
                    rows = conn.execute("select v from compose_check").fetchall()
                    if recovery == (True,) and rows == [("through the proxy",)]:
                        break
                    last = (recovery, rows)
            except psycopg.Error as e:
                last = e
            assert time.monotonic() < deadline, f"read-only listener never served the row: {last}"
            time.sleep(1)
    finally:
        cluster.stop()
