"""The store contract test suite, importable by third-party store plugins.

Use it from a test module::

    from stolon.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_config(self, my_server) -> StoreConfig:
            return StoreConfig(backend="mystore", cluster_name=unique_name(), endpoints=(...,))

        # optional, for backends with a server to lose:
        @pytest.fixture
        def server_control(self, my_server) -> ServerControl: ...

The backend is opened through the plugin registry (``stolon.store`` entry points), so the
suite also checks that the plugin is installed and discoverable. Every test uses a fresh
cluster name, so tests don't see each other's keys. TTLs are short (see the class
attributes); a backend whose minimum TTL is larger can raise them.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import Protocol

import pytest

from stolon.model.uid import new_uid
from stolon.plugins import load_plugins
from stolon.store import StoreBackends, open_backend
from stolon.store.base import (
    ChangeKind,
    ConflictError,
    Election,
    InfoKind,
    NotLeaderError,
    Store,
    StoreConfig,
    UnreachableError,
    Watch,
)


class ServerControl(Protocol):
    """Stops and restarts the store server, for the "store unreachable" tests."""

    def stop(self) -> None: ...

    def start(self) -> None: ...


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def unique_cluster_name() -> str:
    return f"contract-{new_uid()}"


class StoreContract:
    """The shared behaviour every store backend must have."""

    #: TTL used for infos and elections in these tests (seconds).
    info_ttl: float = 2.0
    election_ttl: float = 2.0
    #: How long past a TTL a backend may take to drop the key.
    ttl_slack: float = 3.0

    @pytest.fixture
    def store_config(self) -> StoreConfig:
        raise NotImplementedError("a StoreContract subclass must provide store_config")

    @pytest.fixture
    def server_control(self) -> ServerControl | None:
        """Override to return a ServerControl when the backend has a server."""
        return None

    @pytest.fixture
    def stoppable_store_config(self, store_config: StoreConfig) -> StoreConfig:
        """The config used by the test that stops the server; override to point it at a
        server of its own so that stopping it doesn't disturb other tests."""
        return store_config

    @pytest.fixture
    def store_backends(self) -> StoreBackends:
        """Where the backend is found: the installed plugins, as a process finds it."""
        return load_plugins()

    @pytest.fixture
    def open_store(
        self, store_config: StoreConfig, store_backends: StoreBackends
    ) -> Iterator[Callable[[], Store]]:
        opened: list[Store] = []

        def factory() -> Store:
            st = open_backend(store_config, store_backends)
            opened.append(st)
            return st

        yield factory
        for st in opened:
            st.close()

    @pytest.fixture
    def store(self, open_store: Callable[[], Store]) -> Store:
        return open_store()

    # -- cluster data ---------------------------------------------------------------------
    def test_missing_cluster_data_is_none(self, store: Store) -> None:
        assert store.get_cluster_data() is None

    def test_create_then_get(self, store: Store) -> None:
        rev = store.create_cluster_data(b'{"a":1}')
        got = store.get_cluster_data()
        assert got is not None
        assert got.data == b'{"a":1}'
        assert got.revision == rev

    def test_create_only_conflicts_when_present(self, store: Store) -> None:
        store.create_cluster_data(b"first")
        with pytest.raises(ConflictError):
            store.create_cluster_data(b"second")
        got = store.get_cluster_data()
        assert got is not None and got.data == b"first"

    def test_cas_succeeds_on_current_revision(self, store: Store) -> None:
        rev = store.create_cluster_data(b"v1")
        rev2 = store.cas_cluster_data(b"v2", rev)
        assert rev2 != rev
        got = store.get_cluster_data()
        assert got is not None and got.data == b"v2" and got.revision == rev2

    def test_cas_conflicts_on_stale_revision(self, open_store: Callable[[], Store]) -> None:
        a, b = open_store(), open_store()
        rev = a.create_cluster_data(b"v1")
        b.cas_cluster_data(b"from-b", rev)
        with pytest.raises(ConflictError):
            a.cas_cluster_data(b"from-a", rev)
        got = a.get_cluster_data()
        assert got is not None and got.data == b"from-b"

    def test_cas_conflicts_when_deleted(self, store: Store) -> None:
        rev = store.create_cluster_data(b"v1")
        store.delete_cluster_data()
        with pytest.raises(ConflictError):
            store.cas_cluster_data(b"v2", rev)
        assert store.get_cluster_data() is None

    def test_put_overwrites_unconditionally(self, store: Store) -> None:
        store.put_cluster_data(b"v1")
        store.put_cluster_data(b"v2")
        got = store.get_cluster_data()
        assert got is not None and got.data == b"v2"
        store.delete_cluster_data()
        store.delete_cluster_data()  # deleting a missing key is not an error
        assert store.get_cluster_data() is None

    def test_clusters_are_isolated(self, store_config: StoreConfig, store_backends: StoreBackends) -> None:
        a = open_backend(store_config, store_backends)
        b = open_backend(replace(store_config, cluster_name=unique_cluster_name()), store_backends)
        try:
            a.put_cluster_data(b"a")
            a.put_info(InfoKind.KEEPER, "k1", b"{}", self.info_ttl * 10)
            assert b.get_cluster_data() is None
            assert b.get_infos(InfoKind.KEEPER) == {}
        finally:
            a.close()
            b.close()

    # -- infos ----------------------------------------------------------------------------
    def test_infos_by_kind(self, store: Store) -> None:
        ttl = self.info_ttl * 10
        store.put_info(InfoKind.KEEPER, "k1", b'{"uid":"k1"}', ttl)
        store.put_info(InfoKind.KEEPER, "k2", b'{"uid":"k2"}', ttl)
        store.put_info(InfoKind.SENTINEL, "s1", b'{"UID":"s1"}', ttl)
        store.put_info(InfoKind.PROXY, "p1", b'{"UID":"p1"}', ttl)
        assert store.get_infos(InfoKind.KEEPER) == {"k1": b'{"uid":"k1"}', "k2": b'{"uid":"k2"}'}
        assert store.get_infos(InfoKind.SENTINEL) == {"s1": b'{"UID":"s1"}'}
        assert store.get_infos(InfoKind.PROXY) == {"p1": b'{"UID":"p1"}'}
        store.put_info(InfoKind.KEEPER, "k1", b'{"uid":"k1","v":2}', ttl)
        assert store.get_infos(InfoKind.KEEPER)["k1"] == b'{"uid":"k1","v":2}'

    def test_info_expires_after_ttl(self, store: Store) -> None:
        store.put_info(InfoKind.KEEPER, "short", b"{}", self.info_ttl)
        store.put_info(InfoKind.KEEPER, "long", b"{}", self.info_ttl * 30)
        assert "short" in store.get_infos(InfoKind.KEEPER)
        assert wait_until(
            lambda: "short" not in store.get_infos(InfoKind.KEEPER),
            self.info_ttl + self.ttl_slack,
        ), "an info outlived its TTL"
        assert "long" in store.get_infos(InfoKind.KEEPER)

    def test_info_refresh_keeps_it(self, store: Store) -> None:
        end = time.monotonic() + self.info_ttl * 2.5
        while time.monotonic() < end:
            store.put_info(InfoKind.PROXY, "p", b"{}", self.info_ttl)
            assert "p" in store.get_infos(InfoKind.PROXY)
            time.sleep(self.info_ttl / 4)

    # -- election -------------------------------------------------------------------------
    def _election(self, store: Store, candidate: str) -> Election:
        return store.election(candidate, self.election_ttl)

    def test_single_candidate_is_elected(self, store: Store) -> None:
        assert store.get_leader() is None
        e = self._election(store, "s1")
        e.start()
        try:
            lead = e.wait_leadership(self.election_ttl * 3)
            assert lead is not None and lead.candidate == "s1"
            assert store.get_leader() == "s1"
            assert e.times_elected == 1
        finally:
            e.resign()
        assert e.leadership() is None

    def test_resign_hands_over(self, open_store: Callable[[], Store]) -> None:
        sa, sb = open_store(), open_store()
        a, b = self._election(sa, "a"), self._election(sb, "b")
        a.start()
        assert a.wait_leadership(self.election_ttl * 3) is not None
        b.start()
        try:
            time.sleep(self.election_ttl / 2)
            assert b.leadership() is None, "a second candidate took a held leadership"
            a.resign()
            assert b.wait_leadership(self.election_ttl + self.ttl_slack) is not None
            assert sb.get_leader() == "b"
        finally:
            a.resign()
            b.resign()

    def test_handover_when_leader_process_dies(self, store_config: StoreConfig, store: Store) -> None:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stolon.testing.campaign",
                json.dumps(asdict(store_config)),
                "dead-leader",
                str(self.election_ttl),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "the campaign process said nothing within 60s"
            line = proc.stdout.readline()
            assert line.strip() == "elected", f"campaign process said {line!r}"
            assert store.get_leader() == "dead-leader"
            e = self._election(store, "survivor")
            e.start()
            try:
                time.sleep(self.election_ttl / 2)
                assert e.leadership() is None
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                lead = e.wait_leadership(self.election_ttl + self.ttl_slack)
                assert lead is not None, "no takeover after the leader process died"
                assert store.get_leader() == "survivor"
            finally:
                e.resign()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_never_two_leaders(self, open_store: Callable[[], Store]) -> None:
        """Three candidates, leadership forced to move twice; holders never overlap."""
        elections = [self._election(open_store(), f"c{i}") for i in range(3)]
        # per candidate: [first_seen, last_seen] of each time it held a valid leadership
        held: dict[str, list[list[float]]] = {f"c{i}": [] for i in range(3)}
        stop = threading.Event()

        def watch(e: Election, name: str) -> None:
            holding = False
            while not stop.is_set():
                now = time.monotonic()
                if e.leadership() is not None:
                    if holding:
                        held[name][-1][1] = now
                    else:
                        held[name].append([now, now])
                    holding = True
                else:
                    holding = False
                time.sleep(0.005)

        threads = [threading.Thread(target=watch, args=(e, f"c{i}")) for i, e in enumerate(elections)]
        for e in elections:
            e.start()
        for t in threads:
            t.start()
        try:
            live = list(elections)
            for _ in range(2):
                assert wait_until(
                    lambda: any(e.leadership() is not None for e in live),
                    self.election_ttl * 2 + self.ttl_slack,
                ), "nobody was elected"
                leader = next(e for e in live if e.leadership() is not None)
                time.sleep(0.2)  # let the watchers see this holder before it resigns
                leader.resign()
                live.remove(leader)
            assert wait_until(
                lambda: any(e.leadership() is not None for e in live),
                self.election_ttl * 2 + self.ttl_slack,
            ), "nobody was elected after two handovers"
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
            for e in elections:
                e.resign()
        intervals = sorted((start, end, name) for name, spans in held.items() for start, end in spans)
        assert len({name for _, _, name in intervals}) >= 3, f"leadership didn't move: {held}"
        for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(intervals):
            assert n1 == n2 or s2 > e1, f"{n2} led from {s2:.3f} while {n1} led until {e1:.3f}"

    def test_write_requires_current_leadership(self, open_store: Callable[[], Store]) -> None:
        sa, sb = open_store(), open_store()
        rev = sa.create_cluster_data(b"v1")
        a = self._election(sa, "a")
        lead_a = a.step()  # won once, then "paused": never renewed
        assert lead_a is not None
        rev = sa.cas_cluster_data(b"v2-by-a", rev, leadership=lead_a)
        b = self._election(sb, "b")
        b.start()
        try:
            assert b.wait_leadership(self.election_ttl * 2 + self.ttl_slack) is not None
            lead_b = b.leadership()
            assert lead_b is not None
            # The paused ex-leader wakes up with a correct revision: still refused.
            with pytest.raises(NotLeaderError):
                sa.cas_cluster_data(b"v3-by-stale-a", rev, leadership=lead_a)
            got = sb.get_cluster_data()
            assert got is not None and got.data == b"v2-by-a"
            sb.cas_cluster_data(b"v3-by-b", got.revision, leadership=lead_b)
        finally:
            b.resign()
            a.resign()

    def test_unrenewed_leadership_expires_locally(self, store: Store) -> None:
        """A leader that stops renewing notices the loss without any store I/O."""
        e = self._election(store, "frozen")
        lead = e.step()
        assert lead is not None and e.leadership() is not None
        try:
            assert wait_until(lambda: e.leadership() is None, self.election_ttl + 1)
            assert not lead.is_valid()
        finally:
            e.resign()

    def test_leadership_write_with_stale_revision_conflicts(self, store: Store) -> None:
        rev = store.create_cluster_data(b"v1")
        store.put_cluster_data(b"v1b")
        e = self._election(store, "l")
        lead = e.step()
        assert lead is not None
        try:
            with pytest.raises(ConflictError):
                store.cas_cluster_data(b"v2", rev, leadership=lead)
        finally:
            e.resign()

    # -- change notification ----------------------------------------------------------------
    #: whether the backend has a native change feed (else its watch polls: slower, dearer)
    native_watch: bool = True
    #: how long a change may take to be reported
    watch_latency: float = 5.0

    def _collect(self, w: Watch, want: set[ChangeKind], timeout: float | None = None) -> set[ChangeKind]:
        """Wait until every kind in ``want`` was reported (several waits may be needed)."""
        seen: set[ChangeKind] = set()
        deadline = time.monotonic() + (timeout or self.watch_latency)
        while not want <= seen and time.monotonic() < deadline:
            ch = w.wait(max(0.0, deadline - time.monotonic()))
            assert not ch.resync, "a resync without any disturbance of the store"
            seen |= ch.kinds
        return seen

    def test_watch_is_native(self, store: Store) -> None:
        with store.watch() as w:
            assert w.native is self.native_watch

    def test_watch_quiet_store(self, store: Store) -> None:
        with store.watch() as w:
            started = time.monotonic()
            assert not w.wait(0.5)
            assert time.monotonic() - started >= 0.45

    def test_watch_reports_cluster_data_writes(self, open_store: Callable[[], Store]) -> None:
        watcher, writer = open_store(), open_store()
        with watcher.watch() as w:
            rev = writer.create_cluster_data(b"v1")
            assert ChangeKind.CLUSTER_DATA in self._collect(w, {ChangeKind.CLUSTER_DATA})
            writer.cas_cluster_data(b"v2", rev)
            assert ChangeKind.CLUSTER_DATA in self._collect(w, {ChangeKind.CLUSTER_DATA})
            writer.delete_cluster_data()
            assert ChangeKind.CLUSTER_DATA in self._collect(w, {ChangeKind.CLUSTER_DATA})

    def test_watch_reports_infos_by_kind_and_coalesces(self, open_store: Callable[[], Store]) -> None:
        watcher, writer = open_store(), open_store()
        with watcher.watch() as w:
            writer.put_info(InfoKind.KEEPER, "k1", b'{"n":1}', 30)
            writer.put_info(InfoKind.PROXY, "p1", b'{"n":1}', 30)
            writer.put_info(InfoKind.KEEPER, "k1", b'{"n":2}', 30)
            time.sleep(0.5)  # let the changes land before one wait takes them all
            seen = self._collect(w, {ChangeKind.KEEPERS, ChangeKind.PROXIES})
            assert seen == {ChangeKind.KEEPERS, ChangeKind.PROXIES}
            assert not w.wait(0.5), "changes were reported twice"
            writer.put_info(InfoKind.SENTINEL, "s1", b"{}", 30)
            assert self._collect(w, {ChangeKind.SENTINELS}) == {ChangeKind.SENTINELS}

    def test_watch_only_the_kinds_asked(self, open_store: Callable[[], Store]) -> None:
        watcher, writer = open_store(), open_store()
        with watcher.watch(frozenset({ChangeKind.CLUSTER_DATA})) as w:
            writer.put_info(InfoKind.KEEPER, "k1", b"{}", 30)
            assert not w.wait(1.0)
            writer.put_cluster_data(b"x")
            assert self._collect(w, {ChangeKind.CLUSTER_DATA}) == {ChangeKind.CLUSTER_DATA}

    def test_watch_reports_leadership_changes(self, open_store: Callable[[], Store]) -> None:
        watcher, candidate = open_store(), open_store()
        with watcher.watch(frozenset({ChangeKind.LEADER})) as w:
            e = candidate.election("s1", self.election_ttl)
            assert e.step() is not None
            try:
                assert ChangeKind.LEADER in self._collect(w, {ChangeKind.LEADER})
            finally:
                e.resign()
            assert ChangeKind.LEADER in self._collect(w, {ChangeKind.LEADER})

    def test_watch_close_unblocks_wait(self, store: Store) -> None:
        w = store.watch()
        done = threading.Event()

        def waiter() -> None:
            w.wait(30)
            done.set()

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        time.sleep(0.2)
        w.close()
        assert done.wait(10), "close() did not end a wait in progress"

    def test_watch_survives_a_server_restart(
        self,
        stoppable_store_config: StoreConfig,
        server_control: ServerControl | None,
        store_backends: StoreBackends,
    ) -> None:
        if server_control is None:
            pytest.skip("this backend has no server to lose")
        watcher = open_backend(stoppable_store_config, store_backends)
        writer = open_backend(stoppable_store_config, store_backends)
        try:
            with watcher.watch() as w:
                server_control.stop()
                try:
                    w.wait(1.0)  # no crash while the server is gone
                finally:
                    server_control.start()
                assert wait_until(lambda: _readable(writer), 20), "the writer did not reconnect"
                writer.put_cluster_data(b"after")
                deadline = time.monotonic() + 30
                seen = False
                while not seen and time.monotonic() < deadline:
                    seen = w.wait(1.0).touches(ChangeKind.CLUSTER_DATA)
                assert seen, "the watch saw nothing after the server came back"
        finally:
            watcher.close()
            writer.close()

    # -- reachability ---------------------------------------------------------------------
    def test_unreachable_store_is_reported(
        self,
        stoppable_store_config: StoreConfig,
        server_control: ServerControl | None,
        store_backends: StoreBackends,
    ) -> None:
        if server_control is None:
            pytest.skip("this backend has no server to lose")
        store_config = stoppable_store_config
        st = open_backend(store_config, store_backends)
        try:
            st.put_cluster_data(b"before")
            server_control.stop()
            try:
                started = time.monotonic()
                with pytest.raises(UnreachableError):
                    st.get_cluster_data()
                assert time.monotonic() - started < store_config.timeout + 5
                with pytest.raises(UnreachableError):
                    st.put_info(InfoKind.KEEPER, "k", b"{}", 10)
            finally:
                server_control.start()
            # the same client notices the restarted server
            assert wait_until(lambda: _readable(st), 20), "the client did not reconnect"
            got = st.get_cluster_data()
            assert got is not None and got.data == b"before"
        finally:
            st.close()


def _readable(st: Store) -> bool:
    try:
        st.get_cluster_data()
        return True
    except UnreachableError:
        return False
