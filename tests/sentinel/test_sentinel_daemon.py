"""The sentinel daemon's cycle on a real embedded store, without etcd or PostgreSQL.

``Sentinel.cycle()`` reads the cluster data, decides, turns the events into spans and writes
the result with a compare-and-swap conditioned on the leadership. Spans go to an in-memory
exporter; the stored document must carry the decision span's trace context on what the
decision changed, and the decision itself must not be modified by the stamping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stolon.plugins import load_plugins
from stolon.sentinel import events as ev
from stolon.sentinel.daemon import Sentinel, SentinelConfig
from stolon.sentinel.decide import Decision
from stolon.sentinel.memory import Memory
from stolon.store import ClusterStore, open_store
from stolon.store.base import StoreConfig
from stolon.testing.sentinel_builders import CD, MASTER, STANDBY

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


@pytest.fixture
def store_config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(backend="embedded", cluster_name="daemon", endpoints=(str(tmp_path / "store.db"),))


@pytest.fixture
def store(store_config: StoreConfig) -> Iterator[ClusterStore]:
    s = open_store(store_config, PLUGINS)
    yield s
    s.close()


def leader(store_config: StoreConfig, exporter: InMemorySpanExporter) -> Sentinel:
    """A sentinel on the store that holds the leadership (acquired in this thread)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    s = Sentinel(SentinelConfig(store=store_config, initial_cluster_spec=None, uid="sentinel1"), PLUGINS)
    s.tracer = provider.get_tracer("test")
    s.store = open_store(store_config, PLUGINS)
    s.election = s.store.election(s.uid, 20.0)
    assert s.election.step() is not None
    return s


def two_keepers() -> CD:
    """A settled master db1 and a standby db2, proxies not yet pointed at db1, and a cluster
    spec parameter the DB specs don't have yet: the first cycle propagates it (both
    generations bumped) and points the proxies (proxy generation bumped)."""
    return (
        CD(init_mode="new", pg_parameters={"work_mem": "8MB"})
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"], xlog=1000, timeline=1)
        .db("db2", "keeper2", role=STANDBY, follows="db1", xlog=1000, timeline=1)
        .master("db1")
        .proxy(generation=1, master="")
    )


def test_cycle_writes_the_decision_with_the_trace_context_of_its_span(
    store: ClusterStore, store_config: StoreConfig
) -> None:
    b = two_keepers()
    cd = b.build()
    for db in (cd.dbs or {}).values():
        assert db.spec is not None
        db.spec.pg_parameters = None
    store.put_cluster_data(cd)
    exporter = InMemorySpanExporter()
    sentinel = leader(store_config, exporter)
    try:
        decision = sentinel.cycle()
    finally:
        sentinel.close()
    assert decision is not None and decision.cluster_data is not None, decision
    bumped = {x.db_uid for x in decision.of(ev.DBGenerationBumped)}
    assert bumped == {"db1", "db2"}

    (span,) = [s for s in exporter.get_finished_spans() if s.name == "sentinel.decide"]
    assert span.attributes is not None and span.attributes["stolon.sentinel.uid"] == "sentinel1"
    kinds = [e.name for e in span.events]
    assert "db_generation_bumped" in kinds and "spec_propagated" in kinds
    assert span.context is not None
    trace_id = f"{span.context.trace_id:032x}"

    stored, _ = store.get_cluster_data()
    assert stored is not None
    for uid in ("db1", "db2"):
        ctx = (stored.dbs or {})[uid].trace_context or {}
        assert trace_id in ctx.get("traceparent", ""), (uid, ctx)
    assert decision.of(ev.ProxiesPointed)
    assert stored.proxy is not None and trace_id in (stored.proxy.trace_context or {}).get("traceparent", "")
    # the stamping made a new document: the decision is what decide() returned
    assert all(db.trace_context is None for db in (decision.cluster_data.dbs or {}).values())


def test_steady_cycle_makes_no_span_and_writes_the_decision_as_is(
    store: ClusterStore, store_config: StoreConfig
) -> None:
    exporter = InMemorySpanExporter()
    store.put_cluster_data(two_keepers().proxy(generation=1, master="db1").build())
    sentinel = leader(store_config, exporter)
    try:
        sentinel.cycle()  # first run after gaining the leadership: propagates the spec
        exporter.clear()
        decision = sentinel.cycle()
    finally:
        sentinel.close()
    assert decision is not None and decision.cluster_data is not None and decision.events == ()
    assert not exporter.get_finished_spans()
    stored, _ = store.get_cluster_data()
    assert stored is not None and stored.to_obj() == decision.cluster_data.to_obj()


def test_the_decision_that_points_the_proxies_continues_the_failovers_trace(
    store_config: StoreConfig,
) -> None:
    """A failover is one trace: the election (proxies fenced) and the later decision that
    points the proxies at the new master share its trace id; the next failover starts a
    new one."""
    exporter = InMemorySpanExporter()
    sentinel = leader(store_config, exporter)
    cd = two_keepers().build()
    elected = ev.MasterElected(
        old_master_db="db1",
        old_master_keeper="keeper1",
        why=(),
        new_master_db="db2",
        new_master_keeper="keeper2",
        synchronous=False,
        known_in_sync=(),
        candidates=(),
    )
    fenced = ev.ProxiesFenced(old_master_db="db1", new_master_db="db2", proxy_generation=2)
    pointed = ev.ProxiesPointed(master_db="db2", proxy_generation=3)
    try:
        memory = Memory()
        sentinel._trace(cd, Decision(cd, memory, (elected, fenced)))
        sentinel._trace(cd, Decision(cd, memory, (pointed,)))
        sentinel._trace(cd, Decision(cd, memory, (pointed,)))  # a later, unrelated pointing
    finally:
        sentinel.close()
    spans = exporter.get_finished_spans()
    failover = next(s for s in spans if s.name == "sentinel.failover")
    decides = [s for s in spans if s.name == "sentinel.decide"]
    assert len(decides) == 3 and failover.context is not None
    trace_ids = [s.context.trace_id for s in decides if s.context is not None]
    assert trace_ids[0] == trace_ids[1] == failover.context.trace_id
    assert trace_ids[2] != failover.context.trace_id
