"""Consul-specific behaviour of the store, against the Consul emulator: Go Stolon's key
layout, sessions and lock (and a Go-written tree read and managed by ours), info session
reuse, the leader's conditioned write, watches (blocking queries), endpoints, failover, TLS, ACL token."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from consul_emulator import ConsulEmulator
from consul_testing import EMULATOR_SESSION_TTL_MIN, LOCK_FLAG, LibkvWire, load_go_tree
from stolon_store_consul.client import ConsulRequestError, parse_endpoints
from stolon_store_consul.store import ConsulElection, ConsulStore
from stolon_store_consul.watch import ConsulWatch, target_of

from stolon.model import ClusterData
from stolon.model.duration import Duration
from stolon.plugins import load_plugins
from stolon.store import ClusterStore, open_backend
from stolon.store.base import (
    ALL_CHANGES,
    ChangeKind,
    ConflictError,
    InfoKind,
    Leadership,
    NotLeaderError,
    StoreConfig,
    StoreConfigError,
    StoreError,
    UnreachableError,
    Watch,
)
from stolon.testing.store_contract import unique_cluster_name, wait_until

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

TTL = 2.0


def _config(*endpoints: str, **kw: object) -> StoreConfig:
    return StoreConfig(backend="consul", cluster_name=unique_cluster_name(), endpoints=endpoints, **kw)  # type: ignore[arg-type]


def _open(config: StoreConfig) -> ConsulStore:
    st = open_backend(config, PLUGINS)
    assert isinstance(st, ConsulStore)
    return st


@pytest.fixture
def store(consul_emulator: ConsulEmulator) -> Iterator[ConsulStore]:
    st = _open(_config(*consul_emulator.endpoints))
    yield st
    st.close()


# -- Go Stolon's layout ---------------------------------------------------------------------------


def test_keys_sessions_and_flags_are_go_stolons(consul_emulator: ConsulEmulator, store: ConsulStore) -> None:
    base = f"stolon/cluster/{store.config.cluster_name}"
    store.put_cluster_data(b'{"formatVersion":1}')
    store.put_info(InfoKind.KEEPER, "k1", b'{"uid":"k1"}', 20)
    store.put_info(InfoKind.SENTINEL, "s1", b'{"UID":"s1"}', 20)
    store.put_info(InfoKind.PROXY, "p1", b'{"UID":"p1"}', 20)
    e = store.election("s1", 20)
    assert e.step() is not None
    try:
        assert consul_emulator.keys(base) == [
            f"{base}/clusterdata",
            f"{base}/keepers/info/k1",
            f"{base}/proxies/info/p1",
            f"{base}/sentinel-leader",
            f"{base}/sentinels/info/s1",
        ]
        for key in consul_emulator.keys(base):
            entry = consul_emulator.entry(key)
            assert entry is not None and entry.flags == LOCK_FLAG, key
        cd = consul_emulator.entry(f"{base}/clusterdata")
        assert cd is not None and cd.session == "" and cd.value == b'{"formatVersion":1}'
        info = consul_emulator.entry(f"{base}/keepers/info/k1")
        assert info is not None and info.session
        s = consul_emulator.session(info.session)
        # libkv: Behavior delete, half the TTL (Consul doubles it), lock-delay 1ms
        assert s is not None and (s.behavior, s.ttl, s.lock_delay) == ("delete", "10s", 0.001)
        leader = consul_emulator.entry(f"{base}/sentinel-leader")
        assert leader is not None and leader.value == b"s1" and leader.lock_index == 1
        ls = consul_emulator.session(leader.session)
        assert ls is not None and (ls.behavior, ls.ttl, ls.lock_delay) == ("release", "10s", 0.001)
    finally:
        e.resign()


def test_a_leading_slash_in_the_prefix_is_dropped_as_libkv_does(consul_emulator: ConsulEmulator) -> None:
    name = unique_cluster_name()
    st = _open(
        StoreConfig(
            backend="consul",
            cluster_name=name,
            endpoints=consul_emulator.endpoints,
            prefix="/stolon//cluster/",
        )
    )
    try:
        st.put_cluster_data(b"x")
        assert consul_emulator.keys(f"stolon/cluster/{name}/") == [f"stolon/cluster/{name}/clusterdata"]
    finally:
        st.close()


def test_go_written_tree_is_read_and_managed(consul_emulator: ConsulEmulator) -> None:
    """A Consul tree as Go Stolon leaves it (hand-made fixture): ours reads every document,
    waits for the Go sentinel's lock, takes over when its session dies, writes the cluster
    data with the leadership condition, publishes over a Go keeper's locked info key, and
    sees the Go infos go when their sessions do; a Go sentinel can take the lock back."""
    name = unique_cluster_name()
    sessions = load_go_tree(consul_emulator.url, name)
    base = f"stolon/cluster/{name}"
    st = ClusterStore(
        _open(StoreConfig(backend="consul", cluster_name=name, endpoints=consul_emulator.endpoints))
    )
    wire = LibkvWire(consul_emulator.url)
    try:
        cd, rev = st.get_cluster_data()
        assert cd is not None and cd.cluster is not None and cd.cluster.status.master == "db000001"
        assert sorted(st.keepers_info()) == ["keeper0", "keeper1"]
        assert st.keepers_info()["keeper0"].postgres_state is not None
        assert list(st.sentinels_info()) == ["gosent01"]
        assert st.proxies_info()["p1"].generation == 3
        assert st.get_leader() == "gosent01"

        ours = st.election("pysent01", 2 * EMULATOR_SESSION_TTL_MIN * 2)
        assert ours.step() is None, "took a lock the Go sentinel holds"
        consul_emulator.expire_session(sessions["sentinel-lock"])  # the Go sentinel died
        assert st.get_leader() is None  # released: the value stays, nobody holds it
        lead = ours.step()
        assert lead is not None and st.get_leader() == "pysent01"
        leader = consul_emulator.entry(f"{base}/sentinel-leader")
        assert leader is not None and leader.lock_index == 2 and leader.flags == LOCK_FLAG

        assert cd.cluster.spec is not None
        cd.cluster.spec.fail_interval = Duration.parse("6s")
        new_rev = st.cas_cluster_data(cd, rev, leadership=lead)
        assert new_rev != rev
        written = consul_emulator.entry(f"{base}/clusterdata")
        assert written is not None and written.flags == LOCK_FLAG and written.modify_index == new_rev
        assert json.loads(written.value)["cluster"]["spec"]["failInterval"] == "6s"

        # our keeper0 publishes while the Go keeper0's session still holds the key
        info = st.keepers_info()["keeper0"]
        info.info_uid = "pyinfo01"
        st.put_keeper_info(info, 20)
        held = consul_emulator.entry(f"{base}/keepers/info/keeper0")
        assert held is not None and held.session == sessions["keeper0-info"]
        assert st.keepers_info()["keeper0"].info_uid == "pyinfo01"

        consul_emulator.expire_session(sessions["keeper1-info"])  # the Go keeper1 died
        assert sorted(st.keepers_info()) == ["keeper0"]

        ours.resign()
        go_session = wire.session("release", "10s")
        assert wire.acquire(f"{base}/sentinel-leader", b"gosent02", go_session)
        assert st.get_leader() == "gosent02"
    finally:
        wire.close()
        st.close()


# -- cluster data --------------------------------------------------------------------------------


def test_revisions_are_modify_indexes(consul_emulator: ConsulEmulator, store: ConsulStore) -> None:
    key = store.layout.cluster_data
    rev = store.create_cluster_data(b"v1")
    entry = consul_emulator.entry(key)
    assert entry is not None and entry.modify_index == rev
    rev2 = store.put_cluster_data(b"v2")
    entry = consul_emulator.entry(key)
    assert entry is not None and entry.modify_index == rev2 > rev


def test_cas_with_revision_zero_is_not_a_create(store: ConsulStore) -> None:
    """Consul's cas=0 means "create if missing": a CAS must never turn into that."""
    with pytest.raises(ConflictError):
        store.cas_cluster_data(b"v1", 0)
    assert store.get_cluster_data() is None


def test_a_token_from_another_election_is_refused(
    consul_emulator: ConsulEmulator, store: ConsulStore
) -> None:
    other = _open(_config(*consul_emulator.endpoints))
    e = other.election("x", TTL * 2)
    lead = e.step()
    assert lead is not None
    try:
        rev = store.create_cluster_data(b"v1")
        with pytest.raises(NotLeaderError, match="not won on the Consul lock"):
            store.cas_cluster_data(b"v2", rev, leadership=lead)
        forged = Leadership("x", 1, (store.leader_key, "not-a-session", 1), time.monotonic() + 10)
        with pytest.raises(NotLeaderError, match="no longer holds"):
            store.cas_cluster_data(b"v2", rev, leadership=forged)
    finally:
        e.resign()
        other.close()


# -- infos ----------------------------------------------------------------------------------------


def test_an_info_reuses_its_session(consul_emulator: ConsulEmulator, store: ConsulStore) -> None:
    key = store.layout.info(InfoKind.KEEPER, "k")
    store.put_info(InfoKind.KEEPER, "k", b"1", TTL * 10)
    first = consul_emulator.entry(key)
    assert first is not None
    store.put_info(InfoKind.KEEPER, "k", b"2", TTL * 10)
    second = consul_emulator.entry(key)
    assert second is not None and second.session == first.session and second.value == b"2"
    assert second.lock_index == first.lock_index  # re-acquired by the holder: no new lock


def test_an_info_whose_ttl_changes_moves_to_a_new_session_without_a_gap(
    consul_emulator: ConsulEmulator, store: ConsulStore
) -> None:
    key = store.layout.info(InfoKind.PROXY, "p")
    store.put_info(InfoKind.PROXY, "p", b"1", TTL * 10)
    old = consul_emulator.entry(key)
    assert old is not None
    store.put_info(InfoKind.PROXY, "p", b"2", TTL * 20)
    new = consul_emulator.entry(key)
    assert new is not None and new.session != old.session and new.value == b"2"
    assert consul_emulator.session(old.session) is None, "the old session was left behind"
    s = consul_emulator.session(new.session)
    assert s is not None and s.ttl == "20s"


def test_an_expired_info_session_is_replaced(consul_emulator: ConsulEmulator, store: ConsulStore) -> None:
    key = store.layout.info(InfoKind.SENTINEL, "s")
    store.put_info(InfoKind.SENTINEL, "s", b"1", TTL * 10)
    old = consul_emulator.entry(key)
    assert old is not None
    consul_emulator.expire_session(old.session)
    assert store.get_infos(InfoKind.SENTINEL) == {}  # Behavior delete
    store.put_info(InfoKind.SENTINEL, "s", b"2", TTL * 10)
    new = consul_emulator.entry(key)
    assert new is not None and new.session != old.session
    assert store.get_infos(InfoKind.SENTINEL) == {"s": b"2"}


def test_an_info_locked_by_a_foreign_session_is_renewed_and_adopted(
    consul_emulator: ConsulEmulator, store: ConsulStore
) -> None:
    """A key held by a session we did not create (a Go daemon with the same uid, or our
    previous incarnation): renew it and write in place, as libkv does."""
    key = store.layout.info(InfoKind.KEEPER, "k")
    wire = LibkvWire(consul_emulator.url)
    try:
        foreign = wire.session("delete", "10s")
        assert wire.acquire(key, b"from-go", foreign)
        for value in (b"ours-1", b"ours-2"):
            store.put_info(InfoKind.KEEPER, "k", value, 20)
            entry = consul_emulator.entry(key)
            assert entry is not None and entry.session == foreign and entry.value == value
        assert consul_emulator.session(foreign) is not None
    finally:
        wire.close()


# -- election --------------------------------------------------------------------------------------


def test_leader_is_none_once_the_lock_is_released(store: ConsulStore) -> None:
    e = store.election("s1", TTL * 2)
    assert e.step() is not None and store.get_leader() == "s1"
    e.resign()
    assert store.get_leader() is None


def test_leadership_is_trusted_for_less_than_the_session_ttl(store: ConsulStore) -> None:
    """Consul only promises that a session lives its TTL (half the election TTL, as libkv):
    the local validity must end before that, counted from when the renewal started."""
    e = store.election("s1", 20)
    assert isinstance(e, ConsulElection)
    started = time.monotonic()
    lead = e.step()
    done = time.monotonic()
    try:
        assert lead is not None
        assert started + 10 * 0.9 <= lead.valid_until <= done + 10 * 0.9
        assert e.interval == pytest.approx(2.5)
    finally:
        e.resign()


def test_a_session_ttl_below_the_agent_minimum_says_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    with ConsulEmulator(session_ttl_min=10) as strict:
        st = _open(_config(*strict.endpoints))
        try:
            e = st.election("s1", 5)
            assert e.step() is None
            assert "Use an election TTL of at least twice the agent's session_ttl_min" in caplog.text
            e20 = st.election("s2", 20)
            assert e20.step() is not None
            e20.resign()
        finally:
            st.close()


# -- change notification (blocking queries) ----------------------------------------------------------


def _collect(w: Watch, want: set[ChangeKind], timeout: float = 10) -> set[ChangeKind]:
    seen: set[ChangeKind] = set()
    deadline = time.monotonic() + timeout
    while not want <= seen and time.monotonic() < deadline:
        seen |= w.wait(max(0.0, deadline - time.monotonic())).kinds
    return seen


def test_an_idle_watch_holds_one_blocking_query() -> None:
    with ConsulEmulator(session_ttl_min=EMULATOR_SESSION_TTL_MIN) as emulator:
        st = _open(_config(*emulator.endpoints))
        try:
            st.put_cluster_data(b"x")
            with st.watch() as w:
                before = emulator.requests["GET /v1/kv/"]
                assert not w.wait(1.5)
                # the first read, then one query hanging in Consul: no polling
                assert emulator.requests["GET /v1/kv/"] - before <= 1
                st.put_info(InfoKind.KEEPER, "k", b"{}", 20)
                assert _collect(w, {ChangeKind.KEEPERS}) == {ChangeKind.KEEPERS}
        finally:
            st.close()


def test_a_watch_of_one_kind_queries_only_its_keys(store: ConsulStore) -> None:
    base = store.layout.base
    assert target_of(base, frozenset({ChangeKind.CLUSTER_DATA})) == (f"{base}/clusterdata", False)
    assert target_of(base, frozenset({ChangeKind.LEADER})) == (f"{base}/sentinel-leader", False)
    assert target_of(base, frozenset({ChangeKind.PROXIES})) == (f"{base}/proxies/info/", True)
    assert target_of(base, frozenset({ChangeKind.PROXIES, ChangeKind.LEADER})) == (f"{base}/", True)
    with store.watch(frozenset({ChangeKind.CLUSTER_DATA})) as w:
        assert isinstance(w, ConsulWatch) and w.target == (store.layout.cluster_data, False)


def test_a_watch_reports_handovers_not_renewals(store: ConsulStore) -> None:
    with store.watch(frozenset({ChangeKind.LEADER})) as w:
        e = store.election("s1", TTL * 2)
        assert e.step() is not None
        assert _collect(w, {ChangeKind.LEADER}) == {ChangeKind.LEADER}
        assert e.step() is not None and e.step() is not None  # renewals
        assert not w.wait(0.5)
        e.resign()
        assert _collect(w, {ChangeKind.LEADER}) == {ChangeKind.LEADER}


def test_a_watch_reports_an_info_that_expired(consul_emulator: ConsulEmulator, store: ConsulStore) -> None:
    store.put_info(InfoKind.PROXY, "p", b"{}", TTL * 10)
    entry = consul_emulator.entry(store.layout.info(InfoKind.PROXY, "p"))
    assert entry is not None
    with store.watch() as w:
        consul_emulator.expire_session(entry.session)  # Consul deletes the key
        assert _collect(w, {ChangeKind.PROXIES}) == {ChangeKind.PROXIES}


def test_a_watch_notices_a_hung_agent_and_resyncs(consul_emulator_control: ConsulEmulator) -> None:
    st = _open(_config(*consul_emulator_control.endpoints, timeout=0.5))
    try:
        w = ConsulWatch(st.client, st.layout.base, ALL_CHANGES, wait=0.5)
        try:
            consul_emulator_control.freeze()
            time.sleep(2.0)  # longer than a blocking query plus the timeout: it failed
            assert not w.wait(0.1)
            consul_emulator_control.thaw()
            deadline = time.monotonic() + 15
            resynced = False
            while not resynced and time.monotonic() < deadline:
                resynced = w.wait(1.0).resync
            assert resynced, "no resync after the agent came back"
        finally:
            w.close()
    finally:
        consul_emulator_control.thaw()
        st.close()


# -- endpoints, failover, timeouts --------------------------------------------------------------------


def test_endpoint_parsing() -> None:
    eps = parse_endpoints(["127.0.0.1", "http://[::1]:8501/", "consul-1:9000"])
    assert [e.url for e in eps] == ["http://127.0.0.1:8500", "http://[::1]:8501", "http://consul-1:9000"]
    with pytest.raises(StoreConfigError, match="same scheme"):
        parse_endpoints(["http://a:8500", "https://b:8500"])
    for bad, why in (
        ("ftp://a:1", "http or https"),
        ("http://a:8500/v1", "no path"),
        ("http://u:p@a:8500", "credentials"),
        ("", "no Consul endpoint"),
    ):
        with pytest.raises(StoreConfigError, match=why):
            parse_endpoints([bad] if bad else [])


def test_default_endpoint_is_consuls() -> None:
    st = open_backend(StoreConfig(backend="consul", cluster_name="c"), PLUGINS)
    try:
        assert isinstance(st, ConsulStore)
        assert st.client.current_endpoint == "http://127.0.0.1:8500"
    finally:
        st.close()


def test_failover_past_a_dead_endpoint(consul_emulator: ConsulEmulator) -> None:
    from stolon.netutil import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    st = _open(_config(dead, consul_emulator.url))
    try:
        rev = st.create_cluster_data(b"v1")  # refused connection: safe to retry even a create
        assert st.client.current_endpoint == consul_emulator.url
        assert st.cas_cluster_data(b"v2", rev) != rev
    finally:
        st.close()


def test_frozen_server_costs_one_call_and_ambiguous_writes_are_not_retried(
    consul_emulator: ConsulEmulator, consul_emulator_control: ConsulEmulator
) -> None:
    """A hung agent accepts and never answers: the call fails within the timeout and the
    next call goes to the next endpoint; a create whose outcome is unknown is not retried
    on another endpoint."""
    frozen = consul_emulator_control
    name = unique_cluster_name()
    st = _open(
        StoreConfig(
            backend="consul", cluster_name=name, endpoints=(frozen.url, consul_emulator.url), timeout=1.0
        )
    )
    try:
        frozen.freeze()
        started = time.monotonic()
        with pytest.raises(UnreachableError, match="may or may not have been applied"):
            st.create_cluster_data(b"v1")
        assert time.monotonic() - started < 1.0 + 5
        assert st.client.current_endpoint == consul_emulator.url
        assert st.get_cluster_data() is None  # never sent to the live endpoint
        frozen.thaw()
        st.client._settle_on(0)
        frozen.freeze()
        started = time.monotonic()
        with pytest.raises(UnreachableError, match="no answer before the timeout"):
            st.get_cluster_data()
        assert time.monotonic() - started < 1.0 + 5
        assert st.get_cluster_data() is None  # the next call starts at the live endpoint
    finally:
        frozen.thaw()
        st.close()


def test_a_stopped_and_restarted_agent_is_used_again(consul_emulator_control: ConsulEmulator) -> None:
    st = _open(_config(*consul_emulator_control.endpoints, timeout=1.0))
    try:
        st.put_info(InfoKind.KEEPER, "k", b"1", TTL * 10)
        consul_emulator_control.stop()
        with pytest.raises(UnreachableError, match="connection refused"):
            st.put_info(InfoKind.KEEPER, "k", b"2", TTL * 10)
        consul_emulator_control.start()
        assert wait_until(lambda: _reads(st), 10)
        st.put_info(InfoKind.KEEPER, "k", b"3", TTL * 10)  # the session survived the restart
        assert st.get_infos(InfoKind.KEEPER) == {"k": b"3"}
    finally:
        st.close()


def _reads(st: ConsulStore) -> bool:
    try:
        st.get_cluster_data()
        return True
    except UnreachableError:
        return False


# -- ACL token and TLS --------------------------------------------------------------------------------


def test_acl_token_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with ConsulEmulator(session_ttl_min=EMULATOR_SESSION_TTL_MIN, acl_token="s3cret") as locked:
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
        monkeypatch.delenv("CONSUL_HTTP_TOKEN_FILE", raising=False)
        anonymous = _open(_config(*locked.endpoints))
        with pytest.raises(ConsulRequestError, match=r"403.*CONSUL_HTTP_TOKEN"):
            anonymous.get_cluster_data()
        anonymous.close()
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        token_file.chmod(0o600)
        monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(token_file))
        st = _open(_config(*locked.endpoints))
        try:
            st.put_cluster_data(b"ok")
            got = st.get_cluster_data()
            assert got is not None and got.data == b"ok"
        finally:
            st.close()
        monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(tmp_path / "missing"))
        with pytest.raises(StoreConfigError, match="CONSUL_HTTP_TOKEN_FILE"):
            _open(_config(*locked.endpoints))


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_certs(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=stolon-test-ca", cwd=d)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=stolon-test-{name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def tls_consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsulEmulator, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("consul-tls")
    _make_certs(d)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "server.crt", d / "server.key")
    ctx.load_verify_locations(d / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED  # Consul's verify_incoming
    with ConsulEmulator(session_ttl_min=EMULATOR_SESSION_TTL_MIN, tls=ctx) as server:
        yield server, d


def test_tls_with_client_certificates(tls_consul: tuple[ConsulEmulator, Path]) -> None:
    server, d = tls_consul
    client = {"cert_file": str(d / "client.crt"), "key_file": str(d / "client.key")}
    good = _open(_config(server.url, ca_file=str(d / "ca.crt"), **client))
    insecure = _open(_config(server.url, skip_tls_verify=True, **client))
    no_client_cert = _open(_config(server.url, ca_file=str(d / "ca.crt"), timeout=2.0))
    unknown_ca = _open(_config(server.url, timeout=2.0, **client))
    try:
        good.put_cluster_data(b"over-tls")
        got = good.get_cluster_data()
        assert got is not None and got.data == b"over-tls"
        with pytest.warns(Warning, match="Unverified HTTPS request"):
            assert insecure.get_cluster_data() is None  # its own cluster name
        with pytest.raises(UnreachableError):
            no_client_cert.get_cluster_data()
        with pytest.raises(UnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
            unknown_ca.get_cluster_data()
    finally:
        for st in (good, insecure, no_client_cert, unknown_ca):
            st.close()


def test_tls_files_are_checked_when_the_store_opens(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="--store-cert-file and --store-key must be given together"):
        _open(_config("https://127.0.0.1:8501", cert_file=str(tmp_path / "c.crt")))
    with pytest.raises(StoreConfigError, match=r"--store-ca-file .* does not exist"):
        _open(_config("https://127.0.0.1:8501", ca_file=str(tmp_path / "nope.crt")))


def test_a_refusal_is_a_store_error_not_unreachable(
    consul_emulator: ConsulEmulator, store: ConsulStore
) -> None:
    with pytest.raises(StoreError) as err:
        store.client.call("PUT", "kv/x", params=[("cas", "1"), ("acquire", "s")], idempotent=True)
    assert not isinstance(err.value, UnreachableError) and "Conflicting flags" in str(err.value)


def test_cluster_data_document_round_trip(store: ConsulStore) -> None:
    cs = ClusterStore(store)
    cd = ClusterData.parse(b'{"formatVersion":1,"cluster":{"uid":"u","spec":{"initMode":"new"},"status":{}}}')
    cs.put_cluster_data(cd)
    got, rev = cs.get_cluster_data()
    assert got is not None and got.cluster is not None and got.cluster.uid == "u" and isinstance(rev, int)
