"""stolonctl on Consul: ``stolonctl register`` (Go Stolon's Consul service registration, against
the Consul emulator's agent service and catalog endpoints and cluster data in a Consul store),
``stolonctl plugins`` listing the backend, and commands using it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest
from consul_emulator import ConsulEmulator
from stolon_store_consul.client import ConsulClient
from stolon_store_consul.register import (
    ConsulServiceDiscovery,
    RegisterError,
    ServiceInfo,
    diff,
    register_once,
    service_infos,
)

from stolon.model import ClusterData
from stolon.plugins import load_plugins
from stolon.store import open_store
from stolon.store.base import StoreConfig
from stolon.testing.store_contract import unique_cluster_name, wait_until

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


def _db(uid: str, keeper: str, port: str, healthy: bool = True, address: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "uid": uid,
        "generation": 1,
        "spec": {"keeperUID": keeper, "role": "standby"},
        "status": {"healthy": healthy, "listenAddress": address, "port": port, "currentGeneration": 1},
    }


def _cd(master: str, dbs: list[dict[str, Any]]) -> ClusterData:
    doc = {
        "formatVersion": 1,
        "cluster": {
            "uid": "c1",
            "generation": 1,
            "spec": {"initMode": "new"},
            "status": {"phase": "normal", "master": master},
        },
        "keepers": {},
        "dbs": {d["uid"]: d for d in dbs},
        "proxy": {"spec": {}, "status": {}},
    }
    return ClusterData.parse(json.dumps(doc).encode())


M, S = ("master",), ("slave",)


def test_service_infos_are_the_healthy_dbs() -> None:
    cd = _cd(
        "db0", [_db("db0", "k0", "5432"), _db("db1", "k1", "5433"), _db("db2", "k2", "5434", healthy=False)]
    )
    infos = service_infos(cd, "c1", M, S)
    assert infos == {
        "db0": ServiceInfo("c1", "db0", "127.0.0.1", 5432, M, is_master=True),
        "db1": ServiceInfo("c1", "db1", "127.0.0.1", 5433, S),
    }
    with pytest.raises(RegisterError, match="invalid database port 'x' for c1 with uid db1"):
        service_infos(_cd("db0", [_db("db1", "k1", "x")]), "c1", M, S)


def test_registration_has_a_tcp_check() -> None:
    body = ServiceInfo("c1", "db1", "10.0.0.2", 5433, ("slave", "ro")).registration()
    assert body == {
        "ID": "db1",
        "Name": "c1",
        "Address": "10.0.0.2",
        "Port": 5433,
        "Tags": ["slave", "ro"],
        "Check": {"TCP": "10.0.0.2:5433", "Interval": "10s"},
    }
    assert ServiceInfo("c1", "d", "::1", 5432, S).registration()["Check"]["TCP"] == "[::1]:5432"


def test_diff_adds_removes_and_replaces_changed() -> None:
    a = ServiceInfo("c", "a", "h", 1, S)
    b = ServiceInfo("c", "b", "h", 2, S)
    b_moved = ServiceInfo("c", "b", "h", 3, S)
    gone = ServiceInfo("c", "g", "h", 4, S)
    changes = diff({"a": a, "b": b_moved}, {"b": b, "g": gone})
    assert changes.added == {"a": a, "b": b_moved}
    assert changes.removed == {"b": b, "g": gone}
    assert diff({"a": a}, {"a": ServiceInfo("c", "a", "h", 1, S, is_master=True)}).added == {}


def test_register_once_follows_the_master(consul_emulator: ConsulEmulator) -> None:
    name = unique_cluster_name()
    client = ConsulClient(consul_emulator.endpoints, timeout=5)
    discovery = ConsulServiceDiscovery(client)
    kw: dict[str, Any] = {"register_master": False, "tag_master": M, "tag_slave": ("slave", "ro")}
    try:
        dbs = [_db("db0", "k0", "5432"), _db("db1", "k1", "5433"), _db("db2", "k2", "5434", healthy=False)]
        changes = register_once(_cd("db0", dbs), name, discovery, **kw)
        assert set(changes.added) == {"db1"} and not changes.removed
        assert set(discovery.services(name)) == {"db1"}
        svc = consul_emulator.service("db1")
        assert svc is not None and svc.tags == ["slave", "ro"] and svc.port == 5433
        assert svc.check == {"TCP": "127.0.0.1:5433", "Interval": "10s"}

        assert register_once(_cd("db0", dbs), name, discovery, **kw).added == {}  # converged

        # failover: db1 is the new master, db0 came back healthy as a standby, db2 too
        dbs = [_db("db0", "k0", "5432"), _db("db1", "k1", "5433"), _db("db2", "k2", "5434")]
        changes = register_once(_cd("db1", dbs), name, discovery, **kw)
        assert set(changes.added) == {"db0", "db2"} and set(changes.removed) == {"db1"}
        assert set(discovery.services(name)) == {"db0", "db2"}

        kw["register_master"] = True
        changes = register_once(_cd("db1", dbs), name, discovery, **kw)
        assert set(changes.added) == {"db1"}
        assert discovery.services(name)["db1"].tags == M
        assert [s["ServiceID"] for s in client.catalog_service(name)] == ["db0", "db1", "db2"]
    finally:
        for sid in ("db0", "db1", "db2"):
            client.agent_service_deregister(sid)
        client.close()


def _ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stolon.cli.stolonctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_stolonctl_register_loop(consul_emulator: ConsulEmulator) -> None:
    """The command: cluster data from a Consul store, services in the same Consul; it runs
    until SIGTERM and exits 0."""
    name = unique_cluster_name()
    config = StoreConfig(backend="consul", cluster_name=name, endpoints=consul_emulator.endpoints)
    with open_store(config, PLUGINS) as st:
        st.put_cluster_data(_cd("db0", [_db("db0", "k0", "5432"), _db("db1", "k1", "5433")]))
    argv = [
        sys.executable, "-m", "stolon.cli.stolonctl", "--cluster-name", name, "--store-backend", "consul",
        "--store-endpoints", consul_emulator.url, "register", "--register-endpoints", consul_emulator.url,
        "--sleep-interval", "1", "--tag-slave-as", "replica,ro",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: consul_emulator.service("db1") is not None, 30), "db1 was not registered"
        svc = consul_emulator.service("db1")
        assert svc is not None and svc.name == name and svc.tags == ["replica", "ro"]
        assert consul_emulator.service("db0") is None  # the master, without --register-master
        with open_store(config, PLUGINS) as st:
            st.put_cluster_data(
                _cd("db0", [_db("db0", "k0", "5432"), _db("db1", "k1", "5433", healthy=False)])
            )
        assert wait_until(lambda: consul_emulator.service("db1") is None, 30), "db1 was not deregistered"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "successfully registered" in err and "successfully deregistered" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (
            ["--register-endpoints", "http://a:8500,http://b:8500"],
            1,
            "consul does not support multiple endpoints",
        ),
        (["--register-backend", "etcd"], 1, "unknown register backend: 'etcd'"),
        (
            ["--register-endpoints", "ftp://a"],
            1,
            "--register-endpoints: endpoint 'ftp://a': the scheme must be http",
        ),
        (
            ["--register-endpoints", "https://a:8501", "--register-key", "k.pem"],
            1,
            "--register-cert-file and --register-key",
        ),
        (["--sleep-interval", "0"], 2, "must be at least 1"),
    ],
)
def test_stolonctl_register_bad_flags(flags: list[str], code: int, message: str) -> None:
    res = _ctl("--cluster-name", "c", "--store-backend", "consul", "register", *flags)
    assert res.returncode == code, res.stderr
    assert message in res.stderr.strip().splitlines()[-1]
    if code == 1:  # not a usage error: one line, no traceback
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_stolonctl_lists_and_uses_the_consul_backend(consul_emulator: ConsulEmulator) -> None:
    listing = _ctl("plugins")
    assert listing.returncode == 0
    assert any(
        line.split()[:3] == ["consul", "store", "stolon-store-consul"] for line in listing.stdout.splitlines()
    )
    common = [
        "--cluster-name",
        unique_cluster_name(),
        "--store-backend",
        "consul",
        "--store-endpoints",
        consul_emulator.url,
    ]
    assert _ctl(*common, "init", "-y").returncode == 0
    status = _ctl(*common, "status", "-f", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["cluster"]["available"] is True
    dead = _ctl(
        "--cluster-name",
        "c",
        "--store-backend",
        "consul",
        "--store-endpoints",
        "http://127.0.0.1:1",
        "status",
    )
    assert dead.returncode == 1 and "cannot reach the store" in dead.stderr
