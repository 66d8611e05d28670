"""What the contract does not cover: Go Stolon's objects, info staleness, the Go lock guard,
watches, RBAC, limits, configuration and the command-line flags."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_emulator import KubeEmulator
from kube_testing import NAMESPACE, EmulatorEnv, rbac_rules, wait_until
from stolon_store_kubernetes import GO_LEADER_ANNOTATION
from stolon_store_kubernetes.api import KubeApi, KubeApiError, load_client
from stolon_store_kubernetes.store import FOREIGN_INFO_TTL, InfoTracker, KubernetesStore, micro_time

from stolon.cli import stolonctl
from stolon.model import ClusterData
from stolon.model.uid import new_uid
from stolon.plugins import load_plugins
from stolon.store import ClusterStore, open_backend
from stolon.store.base import (
    InfoKind,
    NotLeaderError,
    StoreConfig,
    StoreConfigError,
    StoreError,
    UnreachableError,
)
from stolon.testing.store_contract import unique_cluster_name

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

GO_FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "go_clusterdata.json"


def kube_store(env: EmulatorEnv, cluster: str, **options: str) -> KubernetesStore:
    st = open_backend(env.store_config(cluster, **options), PLUGINS)
    assert isinstance(st, KubernetesStore)
    return st


@pytest.fixture
def cluster() -> str:
    return unique_cluster_name()


# -- Go Stolon's objects -------------------------------------------------------------------------
def go_record(holder: str, duration: int) -> str:
    """client-go's LeaderElectionRecord as Go Stolon's ConfigMap lock stores it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(
        {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": now,
            "renewTime": now + f"#{new_uid()}",  # only changes matter to observers
            "leaderTransitions": 3,
        }
    )


def add_go_cluster(env: EmulatorEnv, cluster: str, leader_duration: int) -> None:
    """A namespace as Go Stolon leaves it: the ConfigMap (no labels, no data field, the
    cluster data and the ConfigMap lock as annotations) and pods annotated by Go daemons."""
    env.emulator.put_object(
        "configmaps",
        NAMESPACE,
        {
            "metadata": {
                "name": f"stolon-cluster-{cluster}",
                "annotations": {
                    "stolon-clusterdata": GO_FIXTURE.read_text(),
                    GO_LEADER_ANNOTATION: go_record("gosentinel", leader_duration),
                },
            }
        },
    )
    keeper_info = {
        "infoUID": "a1b2c3d4",
        "uid": "keeper0",
        "clusterUID": "8a3b1c2d",
        "bootUUID": "0b1c2d3e-aaaa-bbbb-cccc-ddddeeeeffff",
        "postgresBinaryVersion": {"Maj": 15, "Min": 4},
        "postgresState": {"uid": "db000001", "generation": 2, "listenAddress": "10.0.0.5", "port": "5432",
                          "healthy": True, "systemID": "7012345678901234567", "timelineID": 1, "xLogPos": 50331800,
                          "timelinesHistory": None, "pgParameters": {}, "synchronousStandbys": [], "olderWalFile": ""},
        "canBeMaster": True,
        "canBeSynchronousReplica": True,
    }  # fmt: skip
    pods = [
        ("stolon-keeper-0", "stolon-keeper", json.dumps(keeper_info)),
        ("stolon-sentinel-5d8f-x2", "stolon-sentinel", json.dumps({"UID": "gosent"})),
        (
            "stolon-proxy-7c9b-q1",
            "stolon-proxy",
            json.dumps({"infoUID": "e5f6a7b8", "UID": "p1", "Generation": 3, "ProxyTimeout": 15000000000}),
        ),
    ]
    for name, component, status in pods:
        env.emulator.put_object(
            "pods",
            NAMESPACE,
            {
                "metadata": {
                    "name": name,
                    "labels": {"component": component, "stolon-cluster": cluster, "app": "stolon"},
                    "annotations": {"stolon-status": status},
                }
            },
        )


def test_go_stolon_objects_are_read_and_managed(
    kube_emulator: EmulatorEnv,
    cluster: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_go_cluster(kube_emulator, cluster, leader_duration=3)
    st = ClusterStore(kube_store(kube_emulator, cluster))
    try:
        cd, _ = st.get_cluster_data()
        assert cd is not None and cd.cluster is not None and cd.cluster.uid == "8a3b1c2d"
        assert set(cd.keepers or {}) == {"keeper0", "keeper1"}
        assert set(st.keepers_info()) == {"keeper0"}
        assert st.keepers_info()["keeper0"].postgres_state is not None
        assert set(st.sentinels_info()) == {"gosent"}
        assert set(st.proxies_info()) == {"p1"}

        # A Go sentinel renewing its ConfigMap lock keeps ours from leading ...
        renewing = threading.Event()
        renewing.set()
        stop = threading.Event()

        def go_sentinel() -> None:
            while not stop.wait(0.2):
                if renewing.is_set():
                    kube_emulator.emulator.put_object(
                        "configmaps", NAMESPACE, _with_go_record(kube_emulator, cluster)
                    )

        t = threading.Thread(target=go_sentinel, daemon=True)
        t.start()
        election = st.election("pysentinel", 2.0)
        election.start()
        try:
            time.sleep(3.5)  # longer than the lease TTL and the Go record's duration
            assert election.leadership() is None, "took the leadership from a live Go sentinel"
            # ... until the Go sentinels are gone (their record stops changing).
            renewing.clear()
            lead = election.wait_leadership(3 + 2 + 3)
            assert lead is not None
            assert st.get_leader() == "pysentinel"

            # The Go record keeps moving the ConfigMap's resourceVersion (say, one last
            # renewal): a leadership-conditioned CAS against the cluster data read before
            # still succeeds, because the cluster data itself did not change.
            cd, rev = st.get_cluster_data()
            assert cd is not None
            kube_emulator.emulator.put_object(
                "configmaps", NAMESPACE, _with_go_record(kube_emulator, cluster)
            )
            assert cd.proxy is not None
            cd.proxy.spec.enabled_proxies = ["p1"]
            st.cas_cluster_data(cd, rev, leadership=lead)
        finally:
            stop.set()
            t.join()
            election.resign()
        cm = kube_emulator.emulator.get_object("configmaps", NAMESPACE, f"stolon-cluster-{cluster}")
        assert cm is not None
        assert GO_LEADER_ANNOTATION in cm["metadata"]["annotations"]
        stored = ClusterData.parse(cm["metadata"]["annotations"]["stolon-clusterdata"])
        assert stored.proxy is not None and stored.proxy.spec.enabled_proxies == ["p1"]
    finally:
        st.close()

    # stolonctl manages it too, with the kubectl-like flags
    for k in [k for k in __import__("os").environ if k.startswith("STOLONCTL_")]:
        monkeypatch.delenv(k)
    flags = [
        "--cluster-name", cluster, "--store-backend", "kubernetes", "--kube-resource-kind", "configmap",
        "--kubeconfig", str(kube_emulator.kubeconfig), "--kube-namespace", NAMESPACE, "--kube-context", "emulator",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert stolonctl.main([*flags, "update", "--patch", '{"failInterval": "7s"}']) == 0
    assert stolonctl.main([*flags, "status"]) == 0
    out = capsys.readouterr().out
    assert "Master Keeper: keeper0" in out and "gosent" in out and "p1" in out
    cm = kube_emulator.emulator.get_object("configmaps", NAMESPACE, f"stolon-cluster-{cluster}")
    assert cm is not None
    assert (
        json.loads(cm["metadata"]["annotations"]["stolon-clusterdata"])["cluster"]["spec"]["failInterval"]
        == "7s"
    )


def _with_go_record(env: EmulatorEnv, cluster: str) -> dict[str, object]:
    cm = env.emulator.get_object("configmaps", NAMESPACE, f"stolon-cluster-{cluster}")
    assert cm is not None
    cm["metadata"]["annotations"][GO_LEADER_ANNOTATION] = go_record("gosentinel", 3)
    return cm


# -- infos ------------------------------------------------------------------------------------------
def pod(uid: str, status: str | None, meta: dict[str, object] | str | None = None) -> dict[str, object]:
    ann: dict[str, str] = {}
    if status is not None:
        ann["stolon-status"] = status
    if meta is not None:
        ann["stolon-status-meta"] = meta if isinstance(meta, str) else json.dumps(meta)
    return {"metadata": {"name": f"pod-{uid}", "uid": f"pod-uid-{uid}", "annotations": ann}}


def our_meta(status: str, uid: str, ttl: float, nonce: str, kind: str = "keepers") -> dict[str, object]:
    import hashlib

    return {
        "kind": kind,
        "uid": uid,
        "ttl": ttl,
        "digest": hashlib.sha256(status.encode()).hexdigest()[:16],
        "nonce": nonce,
    }


def test_infos_expire_ttl_after_their_last_change() -> None:
    t = InfoTracker()
    k = InfoKind.KEEPER
    s1 = '{"uid":"k1"}'
    p = pod("a", s1, our_meta(s1, "k1", 10, "n1"))
    assert t.fresh(k, [p], now=100.0) == {"k1": s1.encode()}  # first seen: fresh
    assert t.fresh(k, [p], now=109.9) == {"k1": s1.encode()}
    assert t.fresh(k, [p], now=110.0) == {}  # unchanged for its ttl
    refreshed = pod("a", s1, our_meta(s1, "k1", 10, "n2"))  # same content, new put
    assert t.fresh(k, [refreshed], now=111.0) == {"k1": s1.encode()}
    assert t.fresh(k, [refreshed], now=120.9) == {"k1": s1.encode()}
    assert t.fresh(k, [], now=121.0) == {}  # pod gone
    assert t.fresh(k, [refreshed], now=121.5) == {"k1": s1.encode()}  # back: seen anew


def test_infos_written_by_go_stolon() -> None:
    t = InfoTracker()
    keeper = '{"infoUID":"i1","uid":"keeper0"}'
    proxy = '{"infoUID":"i2","UID":"p1"}'
    assert t.fresh(InfoKind.KEEPER, [pod("k", keeper)], 0.0) == {"keeper0": keeper.encode()}
    assert t.fresh(InfoKind.PROXY, [pod("p", proxy)], 0.0) == {"p1": proxy.encode()}
    assert t.fresh(InfoKind.KEEPER, [pod("k", keeper)], FOREIGN_INFO_TTL - 0.1) != {}
    assert t.fresh(InfoKind.KEEPER, [pod("k", keeper)], FOREIGN_INFO_TTL) == {}
    newer = '{"infoUID":"i3","uid":"keeper0"}'  # Go changes infoUID on every publish
    assert t.fresh(InfoKind.KEEPER, [pod("k", newer)], FOREIGN_INFO_TTL + 1) == {"keeper0": newer.encode()}
    # a Go daemon overwrote the status our meta described: the meta no longer applies
    stale = pod("k", newer, our_meta('{"uid":"other"}', "other", 1000, "n"))
    assert t.fresh(InfoKind.KEEPER, [stale], FOREIGN_INFO_TTL + 2) == {"keeper0": newer.encode()}
    # unreadable annotations are skipped, as are pods without one ([QUIRK] of Go: empty sentinels)
    assert t.fresh(InfoKind.SENTINEL, [pod("x", "not json"), pod("y", None), pod("z", "[]")], 0.0) == {}


def test_two_pods_claiming_one_uid_the_latest_change_wins() -> None:
    t = InfoTracker()
    old, new = '{"uid":"k1","v":1}', '{"uid":"k1","v":2}'
    assert t.fresh(InfoKind.KEEPER, [pod("old", old)], 0.0) == {"k1": old.encode()}
    got = t.fresh(InfoKind.KEEPER, [pod("old", old), pod("new", new)], 5.0)
    assert got == {"k1": new.encode()}


def test_put_info_needs_its_own_labelled_pod(
    kube_emulator: EmulatorEnv, cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    with kube_store(kube_emulator, cluster) as st, pytest.raises(StoreConfigError, match="POD_NAME"):
        st.put_info(InfoKind.KEEPER, "k1", b"{}", 20)
    with (
        kube_store(kube_emulator, cluster, pod_name="no-such-pod") as st,
        pytest.raises(StoreError, match="POD_NAME"),
    ):
        st.put_info(InfoKind.KEEPER, "k1", b"{}", 20)
    kube_emulator.add_pod(
        f"{cluster}-unlabelled", "stolon-proxy", cluster
    )  # a proxy pod publishing as a keeper
    with kube_store(kube_emulator, cluster, pod_name=f"{cluster}-unlabelled") as st:
        with caplog.at_level(logging.WARNING):
            st.put_info(InfoKind.KEEPER, "k1", b'{"uid":"k1"}', 20)
        assert "lacks the labels component=stolon-keeper" in caplog.text
        assert st.get_infos(InfoKind.KEEPER) == {}
        pod_obj = kube_emulator.emulator.get_object("pods", NAMESPACE, f"{cluster}-unlabelled")
        assert pod_obj is not None and pod_obj["metadata"]["annotations"]["stolon-status"] == '{"uid":"k1"}'


def test_a_daemon_needs_pod_name(
    kube_emulator: EmulatorEnv, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    with pytest.raises(StoreConfigError, match="POD_NAME is not set: stolon-keeper"):
        open_backend(kube_emulator.store_config(cluster, component="keeper"), PLUGINS)
    monkeypatch.setenv("POD_NAME", "keeper-0")
    with open_backend(kube_emulator.store_config(cluster, component="keeper"), PLUGINS) as st:
        assert isinstance(st, KubernetesStore) and st.pod_name == "keeper-0"


# -- leadership ------------------------------------------------------------------------------------
def test_conditioned_write_renews_the_lease_and_checks_its_origin(
    kube_emulator: EmulatorEnv, cluster: str
) -> None:
    with kube_store(kube_emulator, cluster) as st, kube_store(kube_emulator, unique_cluster_name()) as other:
        rev = st.create_cluster_data(b"v1")
        e = st.election("s1", 5.0)
        lead = e.step()
        assert lead is not None
        lease = kube_emulator.emulator.get_object("leases", NAMESPACE, f"stolon-cluster-{cluster}")
        assert lease is not None and lease["spec"]["holderIdentity"] == "s1"
        assert lease["spec"]["leaseDurationSeconds"] == 5
        before = lease["metadata"]["resourceVersion"]
        rev = st.cas_cluster_data(b"v2", rev, leadership=lead)
        lease = kube_emulator.emulator.get_object("leases", NAMESPACE, f"stolon-cluster-{cluster}")
        assert lease is not None and lease["metadata"]["resourceVersion"] != before  # renewed
        # a proof won on another cluster's Lease is refused
        other.create_cluster_data(b"x")
        with pytest.raises(NotLeaderError):
            other.cas_cluster_data(b"y", other.get_cluster_data().revision, leadership=lead)  # type: ignore[union-attr]
        e.resign()
        lease = kube_emulator.emulator.get_object("leases", NAMESPACE, f"stolon-cluster-{cluster}")
        assert lease is not None and lease["spec"]["holderIdentity"] == ""
        assert st.get_leader() is None
        with pytest.raises(NotLeaderError):
            st.cas_cluster_data(b"v3", rev, leadership=lead)


# -- watches ------------------------------------------------------------------------------------
@pytest.fixture
def open_emulator(tmp_path: Path) -> Iterator[EmulatorEnv]:
    """An emulator of this test's own, with no RBAC rules."""
    emulator = KubeEmulator()
    emulator.start()
    env = EmulatorEnv(emulator, tmp_path / "kubeconfig")
    env.kubeconfig.write_text(emulator.kubeconfig(NAMESPACE))
    yield env
    emulator.close()


def test_watch_configmap_and_pods(open_emulator: EmulatorEnv, cluster: str) -> None:
    kube_emulator = open_emulator
    with kube_store(kube_emulator, cluster) as st:
        rev = st.create_cluster_data(b"v1")
        api = st.api
        got: list[tuple[str, str]] = []

        def consume() -> None:
            for ev in api.watch(
                api.path("configmaps"),
                resource_version=str(rev),
                field_selector=f"metadata.name=stolon-cluster-{cluster}",
                timeout_seconds=10,
            ):
                got.append((ev.type, ev.object["metadata"]["annotations"].get("stolon-clusterdata", "")))
                if len(got) == 2:
                    return

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        time.sleep(0.2)
        rev2 = st.cas_cluster_data(b"v2", rev)
        st.cas_cluster_data(b"v3", rev2)
        t.join(10)
        assert got == [("MODIFIED", "v2"), ("MODIFIED", "v3")]

        # pods by label: a pod entering the selection is ADDED, leaving it DELETED
        listed = api.list(api.path("pods"), label_selector=f"stolon-cluster={cluster}")
        events = api.watch(
            api.path("pods"),
            resource_version=listed["metadata"]["resourceVersion"],
            label_selector=f"component=stolon-keeper,stolon-cluster={cluster}",
            timeout_seconds=10,
        )
        kube_emulator.add_pod(f"{cluster}-k0", "stolon-keeper", cluster)
        kube_emulator.add_pod(f"{cluster}-p0", "stolon-proxy", cluster)
        kube_emulator.add_pod(f"{cluster}-k0", "stolon-proxy", cluster)  # relabelled
        seen = [(next(events).type, "") for _ in range(2)]
        assert seen == [("ADDED", ""), ("DELETED", "")]


def test_watch_from_a_compacted_version_is_expired() -> None:
    emulator = KubeEmulator(history=3)
    emulator.start()
    try:
        for i in range(6):
            emulator.put_object("configmaps", "ns", {"metadata": {"name": f"c{i}"}})
        from kubernetes import client as kclient

        cfg = kclient.Configuration()
        cfg.host = emulator.url
        api = KubeApi(cfg, "ns", 3.0)
        (ev,) = list(api.watch(api.path("configmaps"), resource_version="101", timeout_seconds=2))
        assert ev.type == "ERROR" and ev.object["code"] == 410 and ev.object["reason"] == "Expired"
        api.close()
    finally:
        emulator.close()


# -- RBAC, limits, failures ---------------------------------------------------------------------
def test_rbac_manifest_grants_exactly_what_is_used(tmp_path: Path) -> None:
    """Every request of a sentinel, a keeper, a proxy and stolonctl is allowed by the Role
    (the emulator enforces it), and every right the Role grants is used."""
    emulator = KubeEmulator(rules=rbac_rules())
    emulator.start()
    try:
        env = EmulatorEnv(emulator, tmp_path / "kubeconfig")
        env.kubeconfig.write_text(emulator.kubeconfig(NAMESPACE))
        cluster = unique_cluster_name()
        env.add_pod("k0", "stolon-keeper", cluster)
        emulator.requests.clear()
        with kube_store(env, cluster, pod_name="k0") as st:
            rev = st.create_cluster_data(b"{}")
            e = st.election("s1", 4.0)
            lead = e.step()
            assert lead is not None
            st.cas_cluster_data(b'{"a":1}', rev, leadership=lead)
            st.put_info(InfoKind.KEEPER, "k0", b'{"uid":"k0"}', 20)
            assert "k0" in st.get_infos(InfoKind.KEEPER)
            assert st.get_leader() == "s1"
            with st.watch() as w:
                st.put_cluster_data(b'{"a":2}')
                assert w.wait(5)
            e.resign()
            used = {(g, r, v) for v, g, r, _, _ in emulator.requests}
            granted = {
                (g, r, v)
                for rule in rbac_rules()
                for g in rule["apiGroups"]
                for r in rule["resources"]
                for v in rule["verbs"]
            }
            assert used == granted
            with pytest.raises(KubeApiError, match="RBAC"):
                st.api.request("DELETE", st.api.path("pods", "k0"))
    finally:
        emulator.close()


def test_annotation_size_limit_is_reported(kube_emulator: EmulatorEnv, cluster: str) -> None:
    with kube_store(kube_emulator, cluster) as st:
        st.put_cluster_data(b"small")
        with pytest.raises(StoreError, match="256 KiB"):
            st.put_cluster_data(b"x" * (300 * 1024))
        got = st.get_cluster_data()
        assert got is not None and got.data == b"small"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers (a hung API server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_hung_api_server_is_unreachable_within_the_timeout(tmp_path: Path, silent_server: int) -> None:
    path = tmp_path / "kubeconfig"
    emulator = KubeEmulator(port=silent_server)  # only for its kubeconfig text; never started
    path.write_text(emulator.kubeconfig())
    config = StoreConfig(
        backend="kubernetes", cluster_name="c", timeout=1.0, options={"kubeconfig": str(path)}
    )
    with open_backend(config, PLUGINS) as st:
        started = time.monotonic()
        with pytest.raises(UnreachableError):
            st.get_cluster_data()
        assert time.monotonic() - started < 1.0 + 4


@pytest.mark.parametrize(
    ("cluster_name", "options", "match"),
    [
        ("My_Cluster", {}, "cannot name a Kubernetes object"),
        ("c" * 64, {}, "label value"),
        ("c1", {"kube_resource_kind": "secret"}, "configmap"),
    ],
)
def test_unusable_configuration(
    kube_emulator: EmulatorEnv, cluster_name: str, options: dict[str, str], match: str
) -> None:
    with pytest.raises(StoreConfigError, match=match):
        open_backend(kube_emulator.store_config(cluster_name, **options), PLUGINS)


def test_client_configuration_sources(
    kube_emulator: EmulatorEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    bare = StoreConfig(backend="kubernetes", cluster_name="c")
    with pytest.raises(StoreConfigError, match="no Kubernetes API server configured"):
        load_client(bare)
    monkeypatch.setenv("KUBECONFIG", str(kube_emulator.kubeconfig))
    configuration, namespace = load_client(bare)
    assert namespace == NAMESPACE  # the context's
    assert configuration.host == kube_emulator.emulator.url
    _, namespace = load_client(StoreConfig("kubernetes", "c", options={"kube_namespace": "other"}))
    assert namespace == "other"
    with pytest.raises(StoreConfigError, match="cannot load the Kubernetes client configuration"):
        load_client(StoreConfig("kubernetes", "c", options={"kube_context": "nope"}))


def test_every_binary_accepts_the_kubernetes_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from stolon.cli import sentinel
    from stolon.cli.keeper import parse_config as keeper_config
    from stolon.cli.proxy import parse_config as proxy_config

    monkeypatch.setenv("POD_NAME", "p-0")
    common = ["--cluster-name", "c1", "--store-backend", "kubernetes", "--kube-resource-kind", "configmap"]
    args = sentinel.build_parser().parse_args(common)
    from stolon.cli.common import store_config_from_args

    assert store_config_from_args(args, component="sentinel").options == {
        "kube_resource_kind": "configmap",
        "component": "sentinel",
    }
    assert proxy_config(common, env={}).store.options["component"] == "proxy"
    keeper = keeper_config(
        [*common, "--data-dir", "/tmp/x", "--pg-listen-address", "127.0.0.1", "--pg-repl-username", "r",
         "--pg-repl-auth-method", "trust", "--pg-su-auth-method", "trust"],
        env={},
    )  # fmt: skip
    assert keeper.store.options["component"] == "keeper"
    ctl_args = stolonctl.build_parser(PLUGINS).parse_args(
        [*common, "--kubeconfig", "/k", "--kube-context", "ctx", "--kube-namespace", "ns", "status"]
    )
    assert store_config_from_args(ctl_args).options == {
        "kube_resource_kind": "configmap",
        "kubeconfig": "/k",
        "kube_context": "ctx",
        "kube_namespace": "ns",
    }
    monkeypatch.setenv("STOLONCTL_KUBE_NAMESPACE", "from-env")
    assert stolonctl.build_parser(PLUGINS).parse_args(["status"]).kube_namespace == "from-env"


def test_lease_times_are_micro_times() -> None:
    stamp = micro_time()
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 7
    assert wait_until(lambda: micro_time() != stamp, 1)
