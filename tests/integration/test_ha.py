"""HA scenarios against real components: etcd (the session's ``etcd_server``, one cluster
name per test), PostgreSQL, keepers and two sentinels as processes (Go Stolon's
``tests/integration/ha_test.go`` stories, adapted). Clients connect to the master's
PostgreSQL directly (no proxy).

Each test builds one cluster and runs a whole story on it; all are ``slow`` (30-90 s each
on two cores). Timings: sleepInterval 1s, failInterval 3s, election TTL 3s.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stolon.model import ClusterSpec
from stolon.netutil import free_port
from stolon.sentinel.daemon import Sentinel, SentinelConfig

if TYPE_CHECKING:
    from stolon_store_etcd.testing import EtcdServer

from stolon.plugins import load_plugins

from .ha_harness import HA, Writer, stays, wait_for

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HAFactory = Callable[..., HA]


@pytest.fixture
def make_ha(etcd_server: EtcdServer, request: pytest.FixtureRequest) -> Iterator[HAFactory]:
    made: list[HA] = []
    failed_before = request.session.testsfailed

    def make(start: bool = True, **kw: Any) -> HA:
        ha = HA(list(etcd_server.endpoints), **kw)
        made.append(ha)
        if start:
            ha.start()
        return ha

    yield make
    for ha in made:
        if request.session.testsfailed > failed_before or os.environ.get("STOLON_HA_LOGS"):
            print(ha.logs(int(os.environ.get("STOLON_HA_LOGS_TAIL", "6000"))))
        ha.close()


def test_async_switchover_kill9_failover_and_rewind(make_ha: HAFactory) -> None:
    """3 keepers init; a switchover under a concurrent writer loses no acknowledged row and
    the old master rejoins through pg_rewind; SIGKILL of the master keeper and its
    PostgreSQL → a standby is master with the data; the killed node rejoins as a standby."""
    ha = make_ha(keepers=3, spec={"usePgrewind": True})
    cd = ha.cd()
    assert cd.cluster is not None and cd.cluster.status.phase == "normal"
    assert len(cd.dbs or {}) == 3 and len(cd.keepers or {}) == 3
    first = ha.master()
    for k in ha.standbys():
        ha.wait_standby(k)
    ha.sql(first, "CREATE TABLE t (id bigint PRIMARY KEY)")
    ha.sql(first, "INSERT INTO t VALUES (1)")

    # planned switchover with a writer running
    writer = Writer(ha).start()
    writer.wait_acked(50)
    target = ha.standbys()[0]
    out = ha.ctl("switchover", "--to", target, "--yes", "--wait").stdout
    assert "completed: keeper " + target in out, out
    assert ha.master() == target
    writer.wait_acked(50)
    writer.stop()
    assert writer.missing_on(target) == [], "acknowledged rows lost in the switchover"
    ha.wait_standby(first)
    ha.wait_ids(first, set(writer.acked))
    assert ha.log_has(first, "pg_rewind succeeded")

    # SIGKILL the master keeper and its PostgreSQL
    master = ha.master()
    ha.sql(master, "INSERT INTO t VALUES (2)")
    ha.wait_ids(first, {1, 2})
    ha.kill(master)
    new = ha.wait_new_master(master)
    assert {1, 2} <= ha.ids(new)
    ha.sql(new, "INSERT INTO t VALUES (3)")
    # the killed node comes back as a standby (rewound) with the new rows
    ha.start_process(master)
    ha.wait_standby(master)
    ha.wait_ids(master, {1, 2, 3})


def test_leader_sentinel_killed_standbys_per_sender_failkeeper_removekeeper(make_ha: HAFactory) -> None:
    """The leader sentinel SIGKILLed → the other takes over and writes (lowered
    maxStandbysPerSender → fewer DBs); ``failkeeper`` → failover; ``removekeeper`` refused
    for the master, accepted for a stopped standby."""
    ha = make_ha(keepers=3, spec={"maxStandbysPerSender": 2})
    assert len(ha.cd().dbs or {}) == 3
    with ha.cluster.open_store() as st:
        leader = wait_for("a leader sentinel", st.get_leader)
        name = next(n for n in ha.cluster.layout.sentinels if ha.log_has(n, f"sentinel uid {leader}"))
        ha.cluster.processes[name].kill()

        def another() -> str | None:
            now = st.get_leader()
            return now if now not in (None, leader) else None

        other = wait_for("another leader", another, 30)
    other_name = next(n for n in ha.cluster.layout.sentinels if n != name)
    assert ha.log_has(other_name, f"sentinel uid {other}")
    ha.ctl("update", "--patch", '{"maxStandbysPerSender": 1}')
    wait_for("2 dbs", lambda: len(ha.cd().dbs or {}) == 2, 30)
    assert ha.log_has(other_name, "cause=standby_in_excess")

    master = ha.master()
    ha.ctl("failkeeper", master)
    new = ha.wait_new_master(master, 30)

    res = ha.ctl("removekeeper", new, check=False)
    assert res.returncode != 0 and "keeper assigned db is the current cluster master db" in res.stderr
    standby = wait_for(
        "a standby db", lambda: next((k for k in ha.standbys() if ha.db_uid(k) is not None), None), 60
    )
    ha.stop(standby)
    # once the sentinel has no fresh info of it (or it would add it back as a new keeper)
    wait_for(f"{standby} unhealthy", lambda: not (ha.cd().keepers or {})[standby].status.healthy, 30)
    ha.ctl("removekeeper", standby)

    def removed() -> bool:
        cd = ha.cd()
        return standby not in (cd.keepers or {}) and cd.db_of_keeper(standby) is None

    assert removed() and len(ha.cd().keepers or {}) == 2
    stays(f"{standby} removed", removed, 3)


def test_sync_switchover_and_kill9_failover_keep_every_acknowledged_commit(make_ha: HAFactory) -> None:
    """Synchronous replication: a switchover (target chosen by the sentinel) and a SIGKILL
    failover, each under a concurrent writer, promote only a known-in-sync standby and lose
    no acknowledged row; the old masters rejoin through a full resync (usePgrewind off)."""
    ha = make_ha(keepers=3, synchronous=True, spec={"usePgrewind": False})
    first = ha.master()
    in_sync = wait_for("a known-in-sync standby", ha.in_sync, 30)
    ha.sql(first, "CREATE TABLE t (id bigint PRIMARY KEY)")
    writer = Writer(ha).start()
    writer.wait_acked(50)

    out = ha.ctl("switchover", "--yes", "--wait").stdout
    assert "completed" in out, out
    second = ha.master()
    assert second in in_sync
    writer.wait_acked(50)
    assert writer.missing_on(second) == []
    ha.wait_standby(first, 120)
    assert ha.log_has(first, "pg_basebackup")

    in_sync = wait_for("a known-in-sync standby", ha.in_sync, 30)
    writer.wait_acked(50)
    ha.kill(second)
    third = ha.wait_new_master(second)
    assert third in in_sync
    writer.wait_acked(50)
    writer.stop()
    assert writer.errors > 0  # the kill was felt
    assert writer.missing_on(third) == [], "acknowledged rows lost in the failover"
    ha.start_process(second)
    ha.wait_standby(second, 120)
    ha.wait_ids(second, set(writer.acked))


def test_sync_failover_failed_old_master_not_reelected(make_ha: HAFactory) -> None:
    """Go's TestFailoverFailedSyncRepl: the master stops, its sync standby is elected, the
    standby is killed before it is ready, the old master restarts: it is not in the new
    master's known-in-sync set, so it must not be elected (here for 15 s)."""
    ha = make_ha(keepers=2, synchronous=True)
    master = ha.master()
    (standby,) = ha.standbys()
    wait_for("the standby in sync", lambda: ha.in_sync() == [standby], 30)
    ha.stop(master)
    wait_for(f"{standby} elected", lambda: ha.cluster.master_keeper() == standby, 30, 0.1)
    ha.kill(standby)
    ha.start_process(master)
    stays(f"{master} not re-elected", lambda: ha.cluster.master_keeper() == standby, 15)
    logs = "".join(ha.cluster.processes[n].output() for n in ha.cluster.layout.sentinels)
    assert "no_eligible_master" in logs and "not_in_sync_set" in logs


def test_timeline_fork_is_detected_and_the_forked_standby_resynced(make_ha: HAFactory) -> None:
    """Go's TestTimelineFork: standby0 misses row 2 that standby1 has; master and standby1
    die; standby0 becomes master on a new timeline without row 2; standby1 comes back ahead
    on the old timeline: the fork is detected, its DB replaced and resynced from standby0."""
    ha = make_ha(keepers=3, spec={"failInterval": "5s", "usePgrewind": False})
    master = ha.master()
    s0, s1 = ha.standbys()
    for k in (s0, s1):
        ha.wait_standby(k)
    ha.sql(master, "CREATE TABLE t (id bigint PRIMARY KEY)")
    ha.sql(master, "INSERT INTO t VALUES (1)")
    for k in (s0, s1):
        ha.wait_ids(k, {1})
    ha.wait_reported([master, s0, s1], ha.wal_position(master))
    # The master stops sending WAL to standby0 (its walsender is frozen, so row 2 is not even
    # in a socket buffer), standby1 gets row 2, then the master and standby1 die.
    app = f"stolon_{ha.db_uid(s0)}"
    ((sender,),) = ha.sql(master, f"SELECT pid FROM pg_stat_replication WHERE application_name = '{app}'")
    os.kill(sender, signal.SIGSTOP)
    try:
        ha.sql(master, "INSERT INTO t VALUES (2)")
        wait_for("row 2 on standby1", lambda: 2 in ha.ids(s1), 10, 0.05)
        ha.kill(master)
        ha.kill(s1)
    finally:
        os.kill(sender, signal.SIGKILL)  # orphaned by its dead postmaster
    assert ha.wait_new_master(master, 60) == s0
    assert ha.ids(s0) == {1}
    ha.sql(s0, "INSERT INTO t VALUES (3), (4)")
    ha.start_process(s1)
    ha.wait_standby(s1, 120)
    ha.wait_ids(s1, {1, 3, 4})
    assert 2 not in ha.ids(s1)
    logs = "".join(ha.cluster.processes[n].output() for n in ha.cluster.layout.sentinels)
    assert "cause=forked_timeline" in logs
    ha.sql(s0, "INSERT INTO t VALUES (5)")
    ha.wait_ids(s1, {1, 3, 4, 5})


def test_master_restarted_on_a_new_port_stays_master(make_ha: HAFactory) -> None:
    """Go's TestMasterChangedAddress: the master keeper restarts with another PostgreSQL
    port before failInterval: no failover, and the standby follows the new address."""
    ha = make_ha(keepers=2, spec={"failInterval": "10s"})
    master = ha.master()
    (standby,) = ha.standbys()
    ha.wait_standby(standby)
    db = ha.db_uid(master)
    ha.sql(master, "CREATE TABLE t (id bigint PRIMARY KEY)")
    ha.sql(master, "INSERT INTO t VALUES (1)")
    ha.stop(master)
    port = free_port()
    proc = ha.cluster.processes[master]
    proc.argv[proc.argv.index("--pg-port") + 1] = str(port)
    ha.cluster.layout.keepers[master] = port
    proc.start()

    def on_new_port() -> bool:
        m = ha.cd().master_db()
        return m is not None and m.status.port == str(port) and ha.master_ready() == master

    wait_for("the master on its new port", on_new_port, 30)
    wait_for("the master's PostgreSQL on its new port", lambda: not ha.in_recovery(master), 30)
    assert ha.db_uid(master) == db
    ha.sql(master, "INSERT INTO t VALUES (2)")
    ha.wait_ids(standby, {1, 2})
    logs = "".join(ha.cluster.processes[n].output() for n in ha.cluster.layout.sentinels)
    assert "master_elected" not in logs


FENCE_SCRIPT = """#!/bin/sh
mode="$1"; calls="$2"; shift 2
echo "$@" >> "$calls"
[ "$(cat "$mode")" = ok ]
"""


def test_fencing_gates_the_promotion_and_the_failover_is_one_trace(
    make_ha: HAFactory, tmp_path: Path
) -> None:
    """A sentinel runs in-process with spans collected in memory. Fencing (the built-in
    ``command`` method) fails under policy ``required``: no promotion, retried; once it
    succeeds the standby is promoted, and the failover span (old master, every candidate with
    its xlog and lag, verdict) and the fencing spans are in one trace. Under
    ``best-effort`` a failed fencing still promotes."""
    fence, mode, calls = tmp_path / "fence.sh", tmp_path / "mode", tmp_path / "calls"
    fence.write_text(FENCE_SCRIPT)
    fence.chmod(0o755)
    mode.write_text("fail")
    method = {"name": "command", "config": {"command": [str(fence), str(mode), str(calls)]}}
    spec = {"fencing": {"methods": [method], "policy": "required", "timeout": "5s"}}
    ha = make_ha(keepers=3, sentinels=0, spec=spec, start=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    initial = ClusterSpec.loads((ha.cluster.base / "spec.json").read_text())
    sentinel = Sentinel(
        SentinelConfig(
            store=ha.cluster.layout.store_config(), initial_cluster_spec=initial, election_ttl=3.0
        ),
        PLUGINS,
    )
    sentinel.tracer = provider.get_tracer("stolon.sentinel")
    ha.cluster.start()
    sentinel.start()
    thread = threading.Thread(target=sentinel.loop, name="sentinel", daemon=True)
    thread.start()
    try:
        ha.cluster.wait_healthy(120)
        master = ha.master()
        old_db = ha.db_uid(master)
        for k in ha.standbys():
            ha.wait_standby(k)
        ha.kill(master)

        def attempts() -> list[list[str]]:
            return [line.split() for line in calls.read_text().splitlines()] if calls.exists() else []

        wait_for("two failed fencing attempts", lambda: len(attempts()) >= 2, 60)
        assert ha.cluster.master_keeper() == master  # required: no promotion without fencing
        mode.write_text("ok")
        new = ha.wait_new_master(master, 60)
        assert attempts()[-1] == [master, "127.0.0.1", old_db]

        spans = exporter.get_finished_spans()
        elected = [
            s for s in spans
            if s.name == "sentinel.failover" and (s.attributes or {}).get("stolon.failover.verdict") == "master elected"
        ]  # fmt: skip
        assert len(elected) == 1
        attrs = dict(elected[0].attributes or {})
        assert attrs["stolon.failover.old_master_db"] == old_db
        assert attrs["stolon.failover.old_master_keeper"] == master
        assert attrs["stolon.failover.new_master_keeper"] == new
        raw = attrs["stolon.failover.candidates"]
        assert isinstance(raw, tuple | list)
        candidates = [json.loads(str(c)) for c in raw]
        assert sorted(c["keeper_uid"] for c in candidates) == sorted(
            k for k in ha.cluster.keeper_uids() if k != master
        )
        assert all({"xlog_pos", "lag_bytes", "refusals", "chosen"} <= c.keys() for c in candidates)
        assert [c["keeper_uid"] for c in candidates if c["chosen"]] == [new]
        assert elected[0].context is not None
        trace_id = elected[0].context.trace_id
        methods = [s for s in spans if s.name == "sentinel.fencing.method"]
        oks = [(s.attributes or {}).get("stolon.fencing.ok") for s in methods]
        assert oks[-1] is True and False in oks
        assert {s.context.trace_id for s in methods if s.context is not None} == {trace_id}
        requested = [
            s
            for s in spans
            if s.name == "sentinel.failover" and s.context is not None and s.context.trace_id == trace_id
        ]
        assert len(requested) >= 3  # the first request, the retry, the election

        # best-effort: a failed fencing no longer blocks the promotion
        ha.ctl("update", "--patch", '{"fencing": {"policy": "best-effort"}}')
        mode.write_text("fail")
        third = next(k for k in ha.cluster.keeper_uids() if k not in (master, new))
        ha.wait_standby(third)
        ha.wait_reported([new, third], ha.wal_position(new))  # the standby streams from the new master
        ha.kill(new)
        assert ha.wait_new_master(new, 60) == third
        checked = [
            e for s in exporter.get_finished_spans() for e in s.events
            if e.name == "fencing_checked" and (e.attributes or {}).get("old_master_keeper") == new
        ]  # fmt: skip
        assert checked and checked[-1].attributes is not None
        assert (checked[-1].attributes["fenced"], checked[-1].attributes["promote"]) == (False, True)
    finally:
        sentinel.stop()
        thread.join(30)
        sentinel.close()
