"""The sentinel daemon's cycle on what it reads from a real (embedded) store: a Go-valid
stored spec, malformed keeper infos, malformed cluster data (issue 10, items 4 and 5).

The sentinel runs in-process on its own election; keeper infos are written by the test
(no PostgreSQL is needed to see whether the sentinel decides).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from stolon.model import Cluster, ClusterData, ClusterSpec, KeeperInfo, PostgresState
from stolon.model.cluster import PostgresBinaryVersion
from stolon.plugins import load_plugins
from stolon.sentinel.daemon import Sentinel, SentinelConfig
from stolon.sentinel.decide import Decision
from stolon.store import open_store
from stolon.store.base import InfoKind, StoreConfig

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

#: Go Stolon accepts it; our validation of new input does not.
GO_VALID = {
    "initMode": "new",
    "sleepInterval": "1s",
    "synchronousReplication": True,
    "pgParameters": {"synchronous_commit": "off"},
    "requestTimeout": "0s",
}


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(backend="embedded", cluster_name="c", endpoints=(str(tmp_path / "s.db"),))


@pytest.fixture
def sentinel(config: StoreConfig) -> Iterator[Sentinel]:
    s = Sentinel(SentinelConfig(store=config, initial_cluster_spec=None, election_ttl=2.0), PLUGINS)
    s.start()
    assert s.election is not None and s.election.wait_leadership(10) is not None
    try:
        yield s
    finally:
        s.close()


def keeper_info(uid: str, n: int = 0) -> KeeperInfo:
    return KeeperInfo(
        uid=uid,
        info_uid=f"{uid}-i{n}",
        cluster_uid="cl1",
        boot_uuid=f"{uid}-boot",
        postgres_binary_version=PostgresBinaryVersion(maj=15, min=4),
        postgres_state=PostgresState(healthy=False),
    )


def write_cluster(config: StoreConfig, spec: dict[str, object]) -> None:
    with open_store(config, PLUGINS) as st:
        st.put_cluster_data(ClusterData.new(Cluster.new(ClusterSpec.from_obj(spec), uid="cl1")))


def cycles(config: StoreConfig, sentinel: Sentinel, n: int = 4) -> Decision:
    """``n`` cycles, keeper0 publishing a new info before each (the first one after gaining
    the leadership only records infos); the last ones must decide and write."""
    decision = None
    with open_store(config, PLUGINS) as st:
        for i in range(n):
            st.put_keeper_info(keeper_info("keeper0", i), 60)
            decision = sentinel.cycle()
            if i > 0:
                assert decision is not None and decision.cluster_data is not None, decision
    assert decision is not None
    return decision


def test_a_go_valid_stored_spec_does_not_stop_the_sentinel(
    config: StoreConfig, sentinel: Sentinel, caplog: pytest.LogCaptureFixture
) -> None:
    """On main the cycle refused the spec every time ("cluster data validation failed")
    and decided nothing: no initial master was ever chosen."""
    caplog.set_level(logging.WARNING, "stolon.sentinel")
    write_cluster(config, GO_VALID)
    cycles(config, sentinel)
    with open_store(config, PLUGINS) as st:
        cd, _ = st.get_cluster_data()
    assert cd is not None and cd.cluster is not None
    assert "keeper0" in (cd.keepers or {}) and cd.cluster.status.master, "the initial master was chosen"
    assert sentinel.metrics.spec_warnings._value.get() == 2
    warned = [r.getMessage() for r in caplog.records if "stored cluster spec" in r.getMessage()]
    assert len(warned) == 2, warned  # each warning once, not once per cycle
    assert sentinel.sleep == 1.0


def test_malformed_keeper_infos_do_not_stop_the_sentinel(
    config: StoreConfig, sentinel: Sentinel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    write_cluster(config, {"initMode": "new", "sleepInterval": "1s"})
    with open_store(config, PLUGINS) as st:
        st.backend.put_info(InfoKind.KEEPER, "nested", b"[" * 20_000, 60)
        st.backend.put_info(InfoKind.KEEPER, "wrongtype", b'{"uid": "wrongtype", "postgresState": []}', 60)
        st.backend.put_info(InfoKind.KEEPER, "huge", b'{"uid":"' + b"h" * 300_000 + b'"}', 60)
    decision = cycles(config, sentinel)
    assert decision.cluster_data is not None and set(decision.cluster_data.keepers or {}) == {"keeper0"}
    ignored = [
        r.getMessage() for r in caplog.records if "ignoring the malformed keepers info" in r.getMessage()
    ]
    assert len(ignored) == 3, ignored


def test_malformed_cluster_data_is_never_overwritten(
    config: StoreConfig, sentinel: Sentinel, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "no cluster data" (which an --initial-cluster-spec would replace): left alone."""
    caplog.set_level(logging.ERROR)
    sentinel.cfg = SentinelConfig(
        store=config, initial_cluster_spec=ClusterSpec(init_mode="new"), election_ttl=2.0
    )
    for data in (b"[" * 20_000, b'{"formatVersion": 1, "cluster": 5}', b'{"formatVersion": 3}', b'{"formatV'):
        caplog.clear()
        with open_store(config, PLUGINS) as st:
            st.backend.put_cluster_data(data)
        for _ in range(3):
            assert sentinel.cycle() is None
        with open_store(config, PLUGINS) as st:
            stored = st.backend.get_cluster_data()
        assert stored is not None and stored.data == data
        assert len([r for r in caplog.records if "ignoring the stored cluster data" in r.getMessage()]) == 1
