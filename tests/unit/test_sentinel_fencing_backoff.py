"""The leader sentinel retries a failing fencing method with an exponential back-off
(issue 10, item 8), and publishes where fencing stands for ``stolonctl status``.

On main a ``required`` method that fails at once (``/bin/false``) made the loop run without
a pause: one cluster data write and one process spawn per iteration.

The decision is replaced by one that always asks to fence the same old master (what
``decide`` does while that master stays failed under ``required``): these tests are about
the daemon's loop, on a real embedded store, with the real runner and ``command`` method.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stolon.model import Cluster, ClusterData, ClusterSpec
from stolon.plugins import load_plugins
from stolon.sentinel import daemon as sentinel_daemon
from stolon.sentinel import events as ev
from stolon.sentinel.daemon import FENCING_BACKOFF_START, Sentinel, SentinelConfig
from stolon.sentinel.decide import Decision
from stolon.sentinel.memory import Memory
from stolon.store import open_store
from stolon.store.base import StoreConfig

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(backend="embedded", cluster_name="c", endpoints=(str(tmp_path / "s.db"),))


class Counter:
    """A ``command`` fencing method's program that counts its runs and fails."""

    def __init__(self, tmp: Path) -> None:
        self.file = tmp / "runs"
        self.script = tmp / "fence.sh"
        self.script.write_text(f"#!/bin/sh\necho x >> {self.file}\nexit 1\n")
        self.script.chmod(0o755)

    @property
    def runs(self) -> int:
        return len(self.file.read_text().splitlines()) if self.file.exists() else 0


@pytest.fixture
def fencing_sentinel(
    config: StoreConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Sentinel, Counter, list[int]]]:
    counter = Counter(tmp_path)
    spec = ClusterSpec.from_obj(
        {
            "initMode": "new",
            "sleepInterval": "2s",
            "fencing": {"methods": [{"name": "command", "config": {"command": [str(counter.script)]}}]},
        }
    )
    with open_store(config, PLUGINS) as st:
        st.put_cluster_data(ClusterData.new(Cluster.new(spec)))
    decisions: list[int] = []

    def fake_decide(cd: ClusterData, observations: Any, memory: Memory, now: Any, **kw: Any) -> Decision:
        decisions.append(len(observations.fencing))
        request = ev.FencingRequested(
            old_master_db="db0", old_master_keeper="k0", host="10.0.0.1", port="5432",
            new_master_db="db1", new_master_keeper="k1", methods=("command",), policy="required",
            timeout_s=10.0,
        )  # fmt: skip
        return Decision(cd.copy(), memory, (request,))

    monkeypatch.setattr(sentinel_daemon, "decide", fake_decide)
    s = Sentinel(SentinelConfig(store=config, initial_cluster_spec=None, election_ttl=2.0), PLUGINS)
    s.start()
    assert s.election is not None and s.election.wait_leadership(10) is not None
    try:
        yield s, counter, decisions
    finally:
        s.stop()
        s.close()


def test_failed_fencing_is_retried_with_an_exponential_back_off(
    fencing_sentinel: tuple[Sentinel, Counter, list[int]],
) -> None:
    s, counter, _ = fencing_sentinel
    now = [1000.0]
    s.clock = lambda: now[0]
    assert s.cycle() is not None
    assert counter.runs == 1 and s.fencing_backoff.failures == 1
    # the decision that reads the outcome runs at once; it asks again, but the retry waits
    assert s._run_now
    s._run_now = False
    s.cycle()
    assert counter.runs == 1
    assert s.next_wait() == pytest.approx(FENCING_BACKOFF_START)
    delays = []
    for _ in range(5):
        now[0] = s.fencing_backoff.not_before
        s.cycle()  # due: fenced again, fails
        s._run_now = False
        s.cycle()  # the outcome's decision: not due yet
        delays.append(round(s.next_wait(), 3))
    assert counter.runs == 6
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0], "doubling, bounded by sleepInterval (2s)"
    state = s.fencing_state
    assert state is not None and not state.fenced and state.failures == 6
    assert state.old_master_db == "db0" and state.new_master_db == "db1"
    assert "command: failed" in state.detail
    # the leader publishes it; stolonctl status reads it from there
    with open_store(s.cfg.store, PLUGINS) as st:
        s.cycle()
        info = st.sentinels_info()[s.uid]
    assert info.fencing is not None and info.fencing.failures == 6


def test_the_loop_never_spins_on_a_fencing_method_that_fails_at_once(
    fencing_sentinel: tuple[Sentinel, Counter, list[int]],
) -> None:
    """The real loop and clock for about two seconds: with the back-off (0.25 + 0.5 + 1 s)
    at most a handful of attempts fit; without it, hundreds did. An upper bound only: a
    slow machine makes fewer attempts, never more."""
    s, counter, decisions = fencing_sentinel
    thread = threading.Thread(target=s.loop, daemon=True)
    started = time.monotonic()
    thread.start()
    while counter.runs < 3 and time.monotonic() - started < 30:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    s.stop()
    thread.join(10)
    assert counter.runs >= 3
    # attempts k+1 come after 0.25 * (2**k - 1) seconds: 3 runs need at least 0.75 s
    assert elapsed >= 0.7
    assert len(decisions) <= 3 * counter.runs + 2, "about two decisions per attempt, no spinning"
