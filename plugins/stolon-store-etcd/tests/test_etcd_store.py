"""etcd-specific behaviour, against real etcd servers: Go Stolon's key layout and election
(checked with etcdctl, whose ``elect`` is the same ``concurrency.Election`` Go Stolon uses),
endpoint parsing and failover, TLS, and a restarted or frozen etcd."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from stolon_store_etcd.store import EtcdElection, EtcdStore
from stolon_store_etcd.testing import EtcdServer, EtcdTLS, free_ports

from stolon.plugins import load_plugins
from stolon.store import open_backend
from stolon.store.base import (
    ConflictError,
    InfoKind,
    NotLeaderError,
    StoreConfig,
    StoreConfigError,
    UnreachableError,
)
from stolon.testing.requirements import tool_missing
from stolon.testing.store_contract import unique_cluster_name, wait_until

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration

TTL = 2.0


def _config(*endpoints: str, **kw: object) -> StoreConfig:
    return StoreConfig(
        backend="etcdv3",
        cluster_name=unique_cluster_name(),
        endpoints=endpoints,
        **kw,  # type: ignore[arg-type]
    )


def _open(config: StoreConfig) -> EtcdStore:
    st = open_backend(config, PLUGINS)
    assert isinstance(st, EtcdStore)
    return st


@pytest.fixture
def store(etcd_server: EtcdServer) -> Iterator[EtcdStore]:
    st = _open(_config(*etcd_server.endpoints))
    yield st
    st.close()


def _dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"


# -- plugin ------------------------------------------------------------------------------------


def test_plugin_is_discovered() -> None:
    pm = load_plugins({})
    (rec,) = [r for r in pm.records if r.registered_name == "store:etcdv3"]
    assert (rec.distribution, rec.state, rec.error) == ("stolon-store-etcd", "loaded", None)
    spec = pm.store_backend("etcdv3")
    assert spec.default_endpoints == ("http://127.0.0.1:2379",)


def test_default_endpoint_without_io() -> None:
    """Opening does no I/O; with no endpoints, Go Stolon's default is used."""
    st = open_backend(StoreConfig(backend="etcdv3", cluster_name="c"), PLUGINS)
    assert isinstance(st, EtcdStore)
    assert st.client.describe() == "http://127.0.0.1:2379"
    st.close()


# -- Go Stolon compatibility ------------------------------------------------------------------


def test_go_key_layout(etcd_server: EtcdServer, store: EtcdStore) -> None:
    base = f"stolon/cluster/{store.config.cluster_name}"
    store.put_cluster_data(b'{"formatVersion":1}')
    store.put_info(InfoKind.KEEPER, "keeper0", b'{"uid":"keeper0"}', 20)
    store.put_info(InfoKind.SENTINEL, "s1", b'{"UID":"s1"}', 20)
    store.put_info(InfoKind.PROXY, "p1", b'{"UID":"p1"}', 2.5)
    election = store.election("s1", TTL)
    assert election.step() is not None
    try:
        out = json.loads(etcd_server.etcdctl("get", "--prefix", f"{base}/", "-w", "json"))
        kvs = {_unb64(kv["key"]): (_unb64(kv["value"]), kv.get("lease", 0)) for kv in out["kvs"]}
        assert isinstance(election, EtcdElection) and election.key is not None
        lease_hex = election.key.rsplit("/", 1)[1]
        assert set(kvs) == {
            f"{base}/clusterdata",
            f"{base}/keepers/info/keeper0",
            f"{base}/sentinels/info/s1",
            f"{base}/proxies/info/p1",
            f"{base}/sentinel-leader/{lease_hex}",
        }
        assert kvs[f"{base}/clusterdata"] == ('{"formatVersion":1}', 0)  # no lease
        assert kvs[f"{base}/sentinel-leader/{lease_hex}"] == ("s1", int(lease_hex, 16))
        # one lease per info put, TTL rounded up to whole seconds
        proxy_lease = kvs[f"{base}/proxies/info/p1"][1]
        keeper_lease = kvs[f"{base}/keepers/info/keeper0"][1]
        assert proxy_lease and keeper_lease and proxy_lease != keeper_lease
        ttl = etcd_server.etcdctl("lease", "timetolive", f"{proxy_lease:x}")
        assert "granted with TTL(3s)" in ttl
    finally:
        election.resign()


def test_unicode_cluster_name_keys_are_utf8(etcd_server: EtcdServer) -> None:
    st = _open(replace(_config(*etcd_server.endpoints), cluster_name="clüster-ñandú"))
    try:
        st.put_info(InfoKind.KEEPER, "k1", b"{}", 20)
        keys = etcd_server.etcdctl("get", "--prefix", "stolon/cluster/clüster-ñandú/", "--keys-only")
        assert "stolon/cluster/clüster-ñandú/keepers/info/k1" in keys.split()
        assert st.get_infos(InfoKind.KEEPER) == {"k1": b"{}"}
    finally:
        st.close()
        etcd_server.etcdctl("del", "--prefix", "stolon/cluster/clüster-ñandú/")


def _etcdctl_elect(server: EtcdServer, *args: str) -> subprocess.Popen[str]:
    """``etcdctl elect PREFIX PROPOSAL`` campaigns; ``etcdctl elect --listen PREFIX`` prints
    each leader. Both run until stopped."""
    etcdctl = shutil.which("etcdctl")
    if etcdctl is None:
        tool_missing("etcd", "etcdctl not in PATH")
    return subprocess.Popen(
        [etcdctl, "--endpoints", server.client_url, "elect", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_election_interoperates_with_go_concurrency_election(
    etcd_server: EtcdServer, store: EtcdStore
) -> None:
    """``etcdctl elect`` runs Go's concurrency.Election, as Go Stolon's sentinel does."""
    prefix = store.layout.sentinel_leader
    go = _etcdctl_elect(etcd_server, prefix, "go-sentinel")
    election = store.election("py-sentinel", TTL)
    try:
        assert go.stdout is not None
        assert go.stdout.readline().startswith(prefix + "/"), "etcdctl was not elected"
        assert store.get_leader() == "go-sentinel"
        assert election.step() is None, "two leaders: Go's and ours"
        go.send_signal(signal.SIGINT)  # etcdctl resigns and revokes its session
        go.wait(timeout=10)
        lead = election.step()
        assert lead is not None and store.get_leader() == "py-sentinel"
        # and Go's side sees us as the leader: --listen prints the leader key, then value
        listen = _etcdctl_elect(etcd_server, "--listen", prefix)
        try:
            assert listen.stdout is not None
            assert listen.stdout.readline().strip() == lead.token[0]
            assert listen.stdout.readline().strip() == "py-sentinel"
        finally:
            _stop(listen)
    finally:
        _stop(go)
        election.resign()


def test_conditioned_write_refused_once_election_key_is_gone(
    etcd_server: EtcdServer, store: EtcdStore
) -> None:
    rev = store.create_cluster_data(b"v1")
    election = store.election("s1", TTL)
    lead = election.step()
    assert lead is not None
    rev = store.cas_cluster_data(b"v2", rev, leadership=lead)
    assert isinstance(election, EtcdElection) and election.key is not None
    etcd_server.etcdctl("del", election.key)  # e.g. an operator, or a lost lease
    with pytest.raises(NotLeaderError):
        store.cas_cluster_data(b"v3", rev, leadership=lead)
    # the key comes back with a new create revision: that is a new term, not the old one
    assert election.step() is None
    relead = election.step()
    assert relead is not None and relead.term == 2 and election.times_elected == 2
    with pytest.raises(NotLeaderError):
        store.cas_cluster_data(b"v3", rev, leadership=lead)
    assert store.cas_cluster_data(b"v3", rev, leadership=relead) > rev
    election.resign()
    with pytest.raises(NotLeaderError):
        store.cas_cluster_data(b"v4", rev, leadership=relead)


def test_leadership_of_another_cluster_is_refused(etcd_server: EtcdServer, store: EtcdStore) -> None:
    other = _open(_config(*etcd_server.endpoints))
    election = other.election("s1", TTL)
    try:
        lead = election.step()
        assert lead is not None
        rev = store.create_cluster_data(b"v1")
        with pytest.raises(NotLeaderError, match="not won in this etcd election"):
            store.cas_cluster_data(b"v2", rev, leadership=lead)
        with pytest.raises(ConflictError, match="not an etcd revision"):
            store.cas_cluster_data(b"v2", "7")
    finally:
        election.resign()
        other.close()


def test_resigned_candidate_leaves_the_queue(etcd_server: EtcdServer, store: EtcdStore) -> None:
    """A waiting candidate that resigns revokes its session instead of blocking for a TTL."""
    first, second, third = (store.election(c, 60) for c in ("a", "b", "c"))
    try:
        assert first.step() is not None
        assert second.step() is None and third.step() is None
        second.resign()
        first.resign()
        assert third.step() is not None  # immediately, not after b's 60 s lease
    finally:
        for e in (first, second, third):
            e.resign()


# -- endpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        (("http://127.0.0.1:2379", "https://127.0.0.1:2379"), "must have the same scheme"),
        (("127.0.0.1:2379", "https://127.0.0.1:2379"), "must have the same scheme"),
        (("unix:///run/etcd.sock",), "scheme must be http or https"),
        (("http://127.0.0.1:notaport",), "cannot parse endpoint"),
        (("http://127.0.0.1:2379/v3",), "no path"),
        (("http://user:pw@127.0.0.1:2379",), "credentials in the URL"),
        (("http://:2379",), "has no host"),
        (("http://127.0.0.1:2379", " "), "empty endpoint"),
    ],
)
def test_bad_endpoints_are_config_errors(endpoints: tuple[str, ...], message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        open_backend(StoreConfig(backend="etcdv3", cluster_name="c", endpoints=endpoints), PLUGINS)


def test_schemeless_endpoint_means_http(etcd_server: EtcdServer) -> None:
    hostport = etcd_server.client_url.removeprefix("http://")
    st = _open(_config(hostport))
    try:
        assert st.client.describe() == etcd_server.client_url
        assert st.get_cluster_data() is None
    finally:
        st.close()


def test_failover_past_a_dead_endpoint(etcd_server: EtcdServer) -> None:
    dead = _dead_endpoint()
    st = _open(_config(dead, *etcd_server.endpoints))
    try:
        rev = st.create_cluster_data(b"v1")  # not idempotent: safe, the request never left
        assert st.client.current_endpoint == etcd_server.client_url  # remembered
        assert st.cas_cluster_data(b"v2", rev) > rev
        st.put_info(InfoKind.KEEPER, "k", b"{}", 20)
        assert st.get_infos(InfoKind.KEEPER) == {"k": b"{}"}
    finally:
        st.close()


def test_all_endpoints_dead_is_unreachable_and_names_them() -> None:
    dead = [_dead_endpoint(), _dead_endpoint()]
    st = _open(_config(*dead, timeout=2.0))
    try:
        started = time.monotonic()
        with pytest.raises(UnreachableError) as info:
            st.get_cluster_data()
        assert time.monotonic() - started < 2.5
        for url in dead:
            assert f"{url}: connection refused" in str(info.value)
    finally:
        st.close()


def test_hung_endpoint_costs_one_call_then_the_next_is_used(
    etcd_server: EtcdServer, etcd_server_control: EtcdServer
) -> None:
    """A frozen member accepts connections and never answers: the call fails within the
    store timeout and the client moves on. (Two single-member etcds stand in for the
    members of one cluster here: this checks the transport, not the data.)"""
    st = _open(_config(*etcd_server_control.endpoints, *etcd_server.endpoints, timeout=1.0))
    try:
        assert st.get_cluster_data() is None
        etcd_server_control.freeze()
        started = time.monotonic()
        with pytest.raises(UnreachableError, match="no answer before the store timeout"):
            st.get_cluster_data()
        assert time.monotonic() - started < 1.5
        assert st.client.current_endpoint == etcd_server.client_url
        st.put_cluster_data(b"on-the-live-member")
        got = st.get_cluster_data()
        assert got is not None and got.data == b"on-the-live-member"
    finally:
        etcd_server_control.thaw()
        st.close()


def test_ambiguous_write_is_not_retried_elsewhere(
    etcd_server: EtcdServer, etcd_server_control: EtcdServer
) -> None:
    """A compare-and-swap sent to a member that then hangs may still be applied: it is
    reported as unreachable, never retried on another member (which could turn our own
    write into a false conflict)."""
    st = _open(_config(*etcd_server_control.endpoints, *etcd_server.endpoints, timeout=1.0))
    try:
        etcd_server_control.freeze()
        with pytest.raises(UnreachableError, match="may or may not have been applied"):
            st.create_cluster_data(b"v1")
        assert st.get_cluster_data() is None  # served by the other endpoint: not written there
    finally:
        etcd_server_control.thaw()
        st.close()


# -- a restarted, killed or frozen etcd -------------------------------------------------------


def test_restart_and_crash_are_noticed(etcd_server_control: EtcdServer) -> None:
    server = etcd_server_control
    st = _open(_config(*server.endpoints, timeout=1.0))
    election = st.election("s1", TTL)
    try:
        rev = st.create_cluster_data(b"v1")
        lead = election.step()
        assert lead is not None
        server.stop()
        with pytest.raises(UnreachableError, match="connection refused"):
            st.get_cluster_data()
        assert election.step() is None  # an election error drops the leadership
        server.start()
        got = st.get_cluster_data()
        assert got is not None and got.data == b"v1"
        # the session lease survived the restart: same key, leader again, new term
        relead = election.step()
        assert relead is not None and relead.token == lead.token and relead.term == 2
        rev = st.cas_cluster_data(b"v2", rev, leadership=relead)
        server.kill()  # a crash: acknowledged writes survive
        server.start()
        assert wait_until(lambda: election.step() is not None, 5)
        got = st.get_cluster_data()
        assert got is not None and got.data == b"v2" and got.revision == rev
    finally:
        election.resign()
        st.close()


def test_frozen_server_is_bounded_by_the_timeout(etcd_server_control: EtcdServer) -> None:
    server = etcd_server_control
    st = _open(_config(*server.endpoints, timeout=0.5))
    try:
        st.put_cluster_data(b"x")
        server.freeze()
        for call in (st.get_cluster_data, lambda: st.get_infos(InfoKind.PROXY)):
            started = time.monotonic()
            with pytest.raises(UnreachableError):
                call()
            assert time.monotonic() - started < 1.0
        server.thaw()
        got = st.get_cluster_data()
        assert got is not None and got.data == b"x"
    finally:
        server.thaw()
        st.close()


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_config_errors(tmp_path: Path) -> None:
    https = ("https://127.0.0.1:2379",)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases: list[tuple[dict[str, object], str]] = [
        ({"cert_file": str(garbage)}, "must be given together"),
        ({"key_file": str(garbage)}, "must be given together"),
        ({"ca_file": str(tmp_path / "missing.pem")}, "does not exist or is not readable"),
        ({"ca_file": str(garbage)}, "cannot create store tls config"),
        ({"cert_file": str(garbage), "key_file": str(garbage)}, "cannot create store tls config"),
    ]
    for options, message in cases:
        with pytest.raises(StoreConfigError, match=message):
            open_backend(_config(*https, **options), PLUGINS)


def test_tls_options_with_http_endpoints_are_ignored(etcd_server: EtcdServer) -> None:
    """As Go Stolon: TLS settings only apply to https endpoints (we log a warning)."""
    st = _open(_config(*etcd_server.endpoints, ca_file="/nonexistent/ca.pem"))
    try:
        assert st.get_cluster_data() is None
    finally:
        st.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_certs(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=stolon-test-ca", cwd=d)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=stolon-test-{name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("etcd-tls")
    _make_certs(d)
    tls = EtcdTLS(
        cert_file=str(d / "server.crt"),
        key_file=str(d / "server.key"),
        ca_file=str(d / "ca.crt"),
        client_cert_auth=True,
        client_cert_file=str(d / "client.crt"),
        client_key_file=str(d / "client.key"),
    )
    try:
        server = EtcdServer(name="stolon-test-tls", tls=tls)
    except Exception as e:  # no etcd binary: the shared fixtures skip the same way
        tool_missing("etcd", f"etcd tests need etcd: {e}")
    with server:
        yield server, d


def test_tls_with_client_certificates(tls_etcd: tuple[EtcdServer, Path]) -> None:
    server, d = tls_etcd
    client = {"cert_file": str(d / "client.crt"), "key_file": str(d / "client.key")}
    good = _open(_config(*server.endpoints, ca_file=str(d / "ca.crt"), **client))
    insecure = _open(_config(*server.endpoints, skip_tls_verify=True, **client))
    no_client_cert = _open(_config(*server.endpoints, ca_file=str(d / "ca.crt"), timeout=2.0))
    unknown_ca = _open(_config(*server.endpoints, timeout=2.0, **client))
    try:
        good.put_cluster_data(b"over-tls")
        got = good.get_cluster_data()
        assert got is not None and got.data == b"over-tls"
        with pytest.warns(Warning, match="Unverified HTTPS request"):
            assert insecure.get_cluster_data() is None  # its own cluster name
        with pytest.raises(UnreachableError, match="TLS error"):
            no_client_cert.get_cluster_data()
        with pytest.raises(UnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
            unknown_ca.get_cluster_data()
    finally:
        for st in (good, insecure, no_client_cert, unknown_ca):
            st.close()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()
