"""The leader sentinel's loop on a real embedded store: it decides when something changes
and when a keeper's silence reaches ``failInterval``, not on its ``sleepInterval`` period.

``sleepInterval`` is two minutes here and every wait below is shorter than that, so a step
that happens at all happened because of a watch or a deadline. The keepers are stand-ins:
a thread publishes their infos (as a keeper's publisher thread does), no PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stolon.model.cluster import ClusterData
from stolon.model.duration import SECOND, Duration
from stolon.model.infos import KeeperInfo
from stolon.plugins import load_plugins
from stolon.sentinel.daemon import Sentinel, SentinelConfig
from stolon.store import ClusterStore, open_store
from stolon.store.base import StoreConfig
from stolon.testing.sentinel_builders import CD, MASTER, STANDBY

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

WAIT = 30.0  # < sleepInterval: reaching a condition in time proves the event path


def cluster() -> CD:
    return (
        CD(init_mode="new", sleep_interval=Duration(120 * SECOND), fail_interval=Duration(2 * SECOND))
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"], xlog=1000, timeline=1)
        .db("db2", "keeper2", role=STANDBY, follows="db1", xlog=1000, timeline=1)
        .master("db1")
        .proxy(generation=1, master="db1")
    )


class Keepers:
    """Publishes each keeper's info every 0.1 s with a new infoUID, as keepers do; what
    they report can be changed, and a keeper can go silent."""

    def __init__(self, store: ClusterStore, infos: dict[str, KeeperInfo]) -> None:
        self.store = store
        self.infos = dict(infos)
        self.silent: set[str] = set()
        #: keeper UID → monotonic time of its last publication
        self.last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._n = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set(self, uid: str, info: KeeperInfo) -> None:
        with self._lock:
            self.infos[uid] = info

    def silence(self, uid: str) -> float:
        """Stop publishing ``uid``; returns when its last publication started."""
        with self._lock:
            self.silent.add(uid)
            return self.last[uid]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for uid, info in self.infos.items():
                    if uid in self.silent:
                        continue
                    self._n += 1
                    # Taken before the write: the sentinel may see the new info (and stamp
                    # it) before put_keeper_info returns here.
                    started = time.monotonic()
                    self.store.put_keeper_info(replace(info, info_uid=f"{uid}-{self._n}"), ttl=60)
                    self.last[uid] = started
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(what: str, cond: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[ClusterStore, Sentinel, Keepers]]:
    config = StoreConfig(backend="embedded", cluster_name="events", endpoints=(str(tmp_path / "store.db"),))
    store = open_store(config, PLUGINS)
    b = cluster()
    store.put_cluster_data(b.build())
    keepers = Keepers(store, dict(b.observations().keepers_info))
    keepers.start()
    sentinel = Sentinel(SentinelConfig(store=config, initial_cluster_spec=None, election_ttl=20.0), PLUGINS)
    sentinel.start()
    thread = threading.Thread(target=sentinel.loop, daemon=True)
    thread.start()
    try:
        yield store, sentinel, keepers
    finally:
        sentinel.stop()
        thread.join(timeout=30)
        sentinel.close()
        keepers.stop()
        store.close()


def stored(store: ClusterStore) -> ClusterData:
    cd, _ = store.get_cluster_data()
    assert cd is not None
    return cd


def revision(store: ClusterStore) -> object:
    return store.get_cluster_data()[1]


def test_heartbeats_cost_no_cycle_changes_do_and_silence_fails_a_keeper_on_time(
    env: tuple[ClusterStore, Sentinel, Keepers],
) -> None:
    store, sentinel, keepers = env
    # The first run only records the infos; the keepers' next heartbeats make the second
    # cycle run at once (not settled yet), and the cluster then settles.
    wait_for("a settled leader", lambda: sentinel._settled)
    assert all(k.status.healthy for k in (stored(store).keepers or {}).values())

    # Heartbeats (new infoUIDs only) move the keepers' last signs of life, nothing else.
    rev = revision(store)
    mark = time.monotonic()
    wait_for(
        "heartbeats absorbed",
        lambda: min(sentinel.keeper_tracker.silence_since().values()) > mark + 0.3,
    )
    assert revision(store) == rev, "a heartbeat cost a cycle and a write"

    # A material change (keeper2's PostgreSQL unhealthy) is decided on at once, and the DB
    # is failed when its error is failInterval old (a deadline, not the next period).
    info = keepers.infos["keeper2"]
    assert info.postgres_state is not None
    keepers.set("keeper2", replace(info, postgres_state=replace(info.postgres_state, healthy=False)))
    wait_for("a cycle on the change", lambda: revision(store) != rev)
    wait_for("db2 failed", lambda: not (stored(store).dbs or {})["db2"].status.healthy)
    keepers.set("keeper2", info)
    wait_for("db2 healthy again", lambda: (stored(store).dbs or {})["db2"].status.healthy)

    # A keeper that goes silent is failed failInterval after its last info, as the sentinel
    # saw it (its error timer starts there, not at a later cycle).
    last = keepers.silence("keeper2")
    wait_for("keeper2 failed", lambda: not (stored(store).keepers or {})["keeper2"].status.healthy)
    since = sentinel.memory.keeper_errors["keeper2"]
    assert last <= since <= last + 1.0, (last, since)
    assert sentinel.keeper_tracker.silence_since()["keeper2"] == since
