"""The typed store layer: parsing, TTL floor, and compare-and-swap retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from stolon.model import Cluster, ClusterData, ClusterDataError, ClusterSpec, KeeperInfo
from stolon.plugins import load_plugins
from stolon.store import ClusterStore, open_store
from stolon.store.base import MIN_INFO_TTL, ConflictError, InfoKind, StoreConfig, StoreError
from stolon.store.embedded import EmbeddedStore

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(backend="embedded", cluster_name="c", endpoints=(str(tmp_path / "s.db"),))


def test_update_retries_on_conflict(config: StoreConfig) -> None:
    with open_store(config, PLUGINS) as st, open_store(config, PLUGINS) as other:
        st.create_cluster_data(ClusterData.new(Cluster.new(ClusterSpec(init_mode="new"))))
        calls = 0

        def change(cd: ClusterData) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:  # someone else writes between our read and our CAS
                theirs, rev = other.get_cluster_data()
                assert theirs is not None and theirs.cluster is not None
                theirs.cluster.status.phase = "normal"
                other.cas_cluster_data(theirs, rev)
            assert cd.cluster is not None and cd.cluster.spec is not None
            cd.cluster.spec.max_standbys = 7

        new = st.update_cluster_data(change)
        assert calls == 2
        cd, _ = st.get_cluster_data()
        assert cd is not None and cd.cluster is not None and cd.cluster.spec is not None
        assert cd.cluster.spec.max_standbys == 7 and cd.cluster.status.phase == "normal"
        assert new == cd


def test_update_gives_up_after_retries(config: StoreConfig) -> None:
    with open_store(config, PLUGINS) as st, open_store(config, PLUGINS) as other:
        st.create_cluster_data(ClusterData.new(Cluster.new(ClusterSpec(init_mode="new"))))

        def change(cd: ClusterData) -> None:
            theirs, rev = other.get_cluster_data()
            assert theirs is not None
            other.cas_cluster_data(theirs, rev)

        with pytest.raises(ConflictError, match="after 3 retries"):
            st.update_cluster_data(change)


def test_update_needs_cluster_data(config: StoreConfig) -> None:
    with open_store(config, PLUGINS) as st, pytest.raises(StoreError, match="stolonctl init"):
        st.update_cluster_data(lambda cd: None)


def test_null_cluster_data_means_none(config: StoreConfig) -> None:
    with open_store(config, PLUGINS) as st:
        st.backend.put_cluster_data(b"null")
        assert st.get_cluster_data()[0] is None
        st.backend.put_cluster_data(b'{"formatVersion": 9}')
        with pytest.raises(ClusterDataError):
            st.get_cluster_data()


def test_info_ttl_floor_and_bad_infos(config: StoreConfig) -> None:
    now = [100.0]
    with ClusterStore(EmbeddedStore(config, clock=lambda: now[0])) as st:
        st.put_keeper_info(KeeperInfo(uid="k1"), ttl=1)
        st.backend.put_info(InfoKind.KEEPER, "broken", b"not json", 60)
        assert set(st.keepers_info()) == {"k1"}  # the unparsable one is skipped
        # KV stores raise info TTLs to at least 20s, as Go Stolon does
        now[0] += MIN_INFO_TTL - 1
        assert set(st.keepers_info()) == {"k1"}
        now[0] += 2
        assert st.keepers_info() == {}
