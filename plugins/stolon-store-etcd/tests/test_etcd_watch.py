"""etcd-specific watch behaviour on a real etcd: a compacted history means resync; event
keys map to the right change kinds; a frozen etcd does not hang the watch."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from stolon_store_etcd import watch as etcd_watch
from stolon_store_etcd.store import EtcdStore
from stolon_store_etcd.testing import EtcdServer

from stolon.model.uid import new_uid
from stolon.store.base import ChangeKind, InfoKind, StoreConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def store(etcd_server: EtcdServer) -> Iterator[EtcdStore]:
    st = EtcdStore(StoreConfig("etcdv3", f"watch-{new_uid()}", tuple(etcd_server.endpoints), timeout=3.0))
    yield st
    st.close()


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("b/clusterdata", ChangeKind.CLUSTER_DATA),
        ("b/keepers/info/k1", ChangeKind.KEEPERS),
        ("b/sentinels/info/s1", ChangeKind.SENTINELS),
        ("b/proxies/info/p1", ChangeKind.PROXIES),
        ("b/sentinel-leader/694d7b1a", ChangeKind.LEADER),
        ("b/other", None),
        ("bb/clusterdata", None),
        ("b/clusterdata2", None),
    ],
)
def test_kind_of(key: str, kind: ChangeKind | None) -> None:
    assert etcd_watch.kind_of(key, "b") == kind


def test_compacted_history_means_resync(store: EtcdStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_cluster_data(b"v1")
    store.put_info(InfoKind.KEEPER, "k1", b"{}", 30)
    store.put_cluster_data(b"v2")
    current = store.client.call("kv/range", {"key": "AA==", "count_only": True}, idempotent=True)
    revision = int(current["header"]["revision"])
    store.client.call("kv/compaction", {"revision": str(revision)}, idempotent=True)
    real = etcd_watch.EtcdWatch._current_revision
    calls = [0]

    def stale_first(self: etcd_watch.EtcdWatch) -> int:
        calls[0] += 1
        return 1 if calls[0] == 1 else real(self)

    monkeypatch.setattr(etcd_watch.EtcdWatch, "_current_revision", stale_first)
    with store.watch() as w:
        ch = w.wait(10)
        assert ch.resync, "resuming before the compacted revision must ask for a full read"
        # and it goes on from the current revision
        assert not w.wait(0.5)
        store.put_cluster_data(b"v3")
        deadline = time.monotonic() + 10
        seen = False
        while not seen and time.monotonic() < deadline:
            seen = w.wait(1).touches(ChangeKind.CLUSTER_DATA)
        assert seen


def test_frozen_etcd_does_not_hang_the_watch(etcd_server_control: EtcdServer) -> None:
    st = EtcdStore(
        StoreConfig("etcdv3", f"watch-{new_uid()}", tuple(etcd_server_control.endpoints), timeout=2.0)
    )
    try:
        with st.watch() as w:
            etcd_server_control.freeze()
            try:
                started = time.monotonic()
                assert not w.wait(1.0)
                assert time.monotonic() - started < 3
            finally:
                etcd_server_control.thaw()
            st.put_cluster_data(b"after")
            deadline = time.monotonic() + etcd_watch.READ_TIMEOUT + 15
            seen = False
            while not seen and time.monotonic() < deadline:
                seen = w.wait(1).touches(ChangeKind.CLUSTER_DATA)
            assert seen
    finally:
        st.close()


def test_a_cluster_data_watch_streams_that_key_only(store: EtcdStore) -> None:
    """Keepers and proxies watch the cluster data only: their stream carries no info events
    (etcd sends each event with its value), and still every change of the cluster data."""
    assert etcd_watch.watched_range("b", frozenset({ChangeKind.CLUSTER_DATA})) == ("b/clusterdata", None)
    assert etcd_watch.watched_range("b", frozenset({ChangeKind.CLUSTER_DATA, ChangeKind.KEEPERS}))[1]
    store.put_cluster_data(b"v1")
    w = store.watch(frozenset({ChangeKind.CLUSTER_DATA}))
    everything = store.watch()
    assert isinstance(w, etcd_watch.EtcdWatch) and isinstance(everything, etcd_watch.EtcdWatch)
    try:
        time.sleep(0.5)  # both streams open (a later open would resume from the revision)
        before = w._revision
        for i in range(5):
            store.put_info(InfoKind.KEEPER, f"k{i}", b"{}", 30)
        deadline = time.monotonic() + 10
        while everything._revision < before + 5 and time.monotonic() < deadline:
            everything.wait(0.5)
        assert everything._revision >= before + 5, "the whole-prefix watch saw the infos"
        assert not w.wait(0.5)
        assert w._revision == before, "no info event reached the cluster data watch"
        store.put_cluster_data(b"v2")
        deadline = time.monotonic() + 10
        seen = False
        while not seen and time.monotonic() < deadline:
            seen = w.wait(1).touches(ChangeKind.CLUSTER_DATA)
        assert seen
    finally:
        w.close()
        everything.close()
