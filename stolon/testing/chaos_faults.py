"""The chaos matrix's faults (see :mod:`stolon.testing.chaos` and ``docs/reliability.md``).

Each ``inject`` function does the damage, waits on what it must observe (a new master, an
election written), repairs (restarts what it killed, thaws what it froze, restarts the
store, heals the partition, frees the disk) and returns the monotonic time the damage
began plus notes. Fixed holds (``time.sleep``) are part of a fault's definition (how long a
store stays down), never a way to wait for the cluster.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from stolon.testing.chaos import CHAOS_SPEC, FAIL_INTERVAL, PROXY_TIMEOUT, ChaosCluster, Fault, wait_for


def node_loss(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """kill -9 of the master's keeper and every PostgreSQL process; it comes back once a
    new master is up."""
    old = cc.master()
    t = time.monotonic()
    cc.kill_node(old)
    new = cc.wait_new_master(old)
    cc.cluster.processes[old].start()
    return t, {"master": f"{old}->{new}"}


def postmaster_kill(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """kill -9 of the master's postmaster alone; its keeper stays and restarts it."""
    m = cc.master()
    pm = cc.cluster.postmaster_pid(m)
    if pm is None:
        raise RuntimeError(f"{m}: no postmaster")
    t = time.monotonic()
    os.kill(pm, signal.SIGKILL)
    wait_for("the postmaster restarted", lambda: cc.cluster.postmaster_pid(m) not in (None, pm), 120)
    after = cc.master()
    return t, {"master": m if after == m else f"{m}->{after}"}


def sentinel_leader_mid_failover(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """Node loss, and kill -9 of the leader sentinel as soon as it has written the election
    (new master in the cluster data, not yet promoted); the other sentinel must finish."""
    old = cc.master()
    leader = wait_for("a sentinel leader", cc.sentinel_leader, 30)
    cd = cc.cd()
    assert cd is not None
    old_db = cd.master_db()
    assert old_db is not None
    t = time.monotonic()
    cc.kill_node(old)

    def elected() -> bool:
        now = cc.cd()
        db = now.master_db() if now is not None else None
        return db is not None and db.uid != old_db.uid

    wait_for("the leader to write an election", elected, 120, 0.02)
    promoted = cc.master_ready() not in (None, old)
    cc.cluster.processes[leader].kill()
    new = cc.wait_new_master(old)
    cc.cluster.processes[leader].start()
    cc.cluster.processes[old].start()
    return t, {"master": f"{old}->{new}", "killed": leader, "already_promoted": promoted}


def proxy_kill(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """kill -9 of the proxy; a supervisor restarts it a second later."""
    t = time.monotonic()
    cc.cluster.processes["proxy"].kill()
    time.sleep(1.0)
    cc.cluster.processes["proxy"].start()
    return t, {}


def freeze(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """SIGSTOP of the master's keeper and PostgreSQL (every process of it) until a new
    master is up and 2 s more (longer than failInterval), then SIGCONT to all at once."""
    old = cc.master()
    t = time.monotonic()
    pids = cc.freeze_node(old)
    try:
        new = cc.wait_new_master(old)
        time.sleep(2.0)
        held = time.monotonic() - t
    finally:
        cc.thaw_node(pids)
    return t, {"master": f"{old}->{new}", "frozen_s": round(held, 1)}


def store_down(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """etcd killed (SIGKILL) for proxyTimeout + 5 s, then restarted with its data."""
    assert cc.etcd is not None
    m = cc.master()
    t = time.monotonic()
    for member in cc.etcd.members:
        member.kill()
    try:
        time.sleep(PROXY_TIMEOUT + 5.0)
    finally:
        for member in cc.etcd.members:
            member.start()
    return t, {"master": _moved(cc, m)}


def etcd_quorum(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """A 3-member etcd: one member killed (8 s, quorum kept), then a second (quorum lost,
    8 s), then both restarted."""
    assert cc.etcd is not None and len(cc.etcd.members) == 3
    m = cc.master()
    a, b = cc.etcd.members[0], cc.etcd.members[1]
    t = time.monotonic()
    try:
        a.kill()
        time.sleep(8.0)
        b.kill()
        time.sleep(8.0)
    finally:
        threads = [threading.Thread(target=x.start) for x in (a, b)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    return t, {"master": _moved(cc, m)}


def partition(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """The master's namespace cut off the bridge (from the store, the other keepers, the
    proxy) until a new master is up and 3 s more, then healed."""
    assert cc.bridge is not None
    old = cc.master()
    i = cc.cluster.keeper_uids().index(old)
    t = time.monotonic()
    cc.bridge.partition(i)
    try:
        new = cc.wait_new_master(old)
        time.sleep(3.0)
        held = time.monotonic() - t
    finally:
        cc.bridge.heal(i)
    return t, {"master": f"{old}->{new}", "partitioned_s": round(held, 1)}


#: How long the master stays cut from its standbys: four failIntervals, so that anything
#: the sentinel would do about it (fail the master over, move the synchronous standby)
#: has had time to happen.
CUT_HOLD = 4 * FAIL_INTERVAL


def partition_standbys(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """The links between the master's namespace and its standbys' broken, both ways (a
    blackhole route to the other side's address in each), for :data:`CUT_HOLD`; the store,
    the sentinels and the proxy stay reachable from every node. Then mended. Observed while
    cut: who the cluster data names master and synchronous standbys, and how many writes
    were acknowledged through the proxy and directly."""
    assert cc.bridge is not None
    old = cc.master()
    uids = cc.cluster.keeper_uids()
    i = uids.index(old)
    sync_seen: list[list[str]] = []
    masters: list[str] = []

    def observe() -> None:
        cd = cc.cd()
        m = cd.master_db() if cd is not None else None
        if cd is None or m is None or m.spec is None:
            return
        if not masters or masters[-1] != m.spec.keeper_uid:
            masters.append(m.spec.keeper_uid)
        names = sorted(
            (db.spec.keeper_uid if (db := (cd.dbs or {}).get(u)) is not None and db.spec else u)
            for u in m.spec.synchronous_standbys or []
        ) + list(m.spec.external_synchronous_standbys or [])
        if not sync_seen or sync_seen[-1] != names:
            sync_seen.append(names)

    observe()
    pw, dw = cc.proxy_writer, cc.direct_writer
    t = time.monotonic()
    cc.bridge.cut(i, [j for j in range(len(uids)) if j != i])
    try:
        while time.monotonic() - t < CUT_HOLD:
            with contextlib.suppress(Exception):
                observe()
            time.sleep(0.5)
        healed = time.monotonic()
    finally:
        cc.bridge.mend()
    caught_up = _wait_standbys_caught_up(cc, len(uids) - 1)
    return t, {
        "master": _moved(cc, old) if masters[1:] == [] else "->".join(masters),
        "sync_standbys": " -> ".join(",".join(s) or "none" for s in sync_seen) if cc.synchronous else "-",
        "acked_while_cut": f"{sum(1 for x in list(pw.acked_at) if t <= x < healed)} proxy"
        f" / {sum(1 for x in list(dw.acked_at) if t <= x < healed)} direct",
        "cut_s": round(healed - t, 1),
        "standbys_caught_up_s": round(caught_up - healed, 1),
    }


def _wait_standbys_caught_up(cc: ChaosCluster, standbys: int, timeout: float = 120) -> float:
    """Wait until ``standbys`` standbys have flushed everything the master had written when
    this was called, and return when. ``pg_stat_replication`` keeps saying ``streaming``
    for a connection whose packets go nowhere, so full strength alone would not show that
    replication resumed: this does (TCP retransmits on the old connection, or the WAL
    receiver reconnects)."""
    m = cc.master()
    target = cc.sql(m, "SELECT pg_current_wal_lsn()")[0][0]

    def caught_up() -> bool:
        rows = cc.sql(
            m,
            "SELECT count(*) FROM pg_stat_replication"
            f" WHERE state = 'streaming' AND flush_lsn >= '{target}'::pg_lsn",
        )
        return int(rows[0][0]) >= standbys

    wait_for(f"{standbys} standbys to flush the master's WAL up to {target}", caught_up, timeout, 0.1)
    return time.monotonic()


def standby_lag(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """One standby's WAL receiver frozen (SIGSTOP) until the cluster data shows it more
    than maxStandbyLag behind; then node loss of the master. The lagging standby must not
    be elected; its receiver is thawed once a new master is up."""
    old = cc.master()
    cd = cc.cd()
    assert cd is not None
    mdb = cd.master_db()
    assert mdb is not None and mdb.spec is not None
    in_sync = set(mdb.spec.synchronous_standbys or [])
    standbys = [k for k in cc.cluster.keeper_uids() if k != old]
    lagging = next(
        (k for k in standbys if (db := cd.db_of_keeper(k)) is not None and db.uid not in in_sync), standbys[0]
    )

    def receiver_pid() -> int | None:
        rows = cc.sql(lagging, "SELECT pid FROM pg_stat_wal_receiver")
        return int(rows[0][0]) if rows and rows[0][0] else None

    receiver = wait_for(f"{lagging}'s WAL receiver", receiver_pid, 60)
    max_lag = int({**CHAOS_SPEC, **cc.spec}["maxStandbyLag"])
    os.kill(receiver, signal.SIGSTOP)
    try:

        def behind() -> bool:
            now = cc.cd()
            if now is None:
                return False
            m, s = now.master_db(), now.db_of_keeper(lagging)
            return m is not None and s is not None and m.status.xlog_pos - s.status.xlog_pos > 2 * max_lag

        with psycopg.connect(cc.cluster.dsn(), autocommit=True, connect_timeout=10) as conn:
            deadline = time.monotonic() + 120
            while not behind():
                conn.execute(
                    "INSERT INTO chaos_filler SELECT g, repeat('x', 400) FROM generate_series(1, 5000) g"
                )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{lagging} never reported behind maxStandbyLag")
                time.sleep(0.3)
            conn.execute("TRUNCATE chaos_filler")
        t = time.monotonic()
        cc.kill_node(old)
        new = cc.wait_new_master(old)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(receiver, signal.SIGCONT)
    cc.cluster.processes[old].start()
    return t, {"master": f"{old}->{new}", "lagging": lagging, "lagging_elected": new == lagging}


def disk_full(cc: ChaosCluster) -> tuple[float, dict[str, Any]]:
    """The master's data filesystem (a tmpfs) filled to the last byte, WAL switches forced;
    the space is freed failInterval + 15 s later (or once a new master is up)."""
    old = cc.master()
    fs = cc.cluster.base / "keepers" / old
    filler = fs / "chaos-filler"
    pm = cc.cluster.postmaster_pid(old)
    t = time.monotonic()
    _fill(filler)
    try:
        deadline = time.monotonic() + FAIL_INTERVAL + 15.0
        with contextlib.suppress(psycopg.Error), cc.connect(old) as conn:
            for _ in range(8):
                conn.execute(
                    "INSERT INTO chaos_filler SELECT g, repeat('x', 400) FROM generate_series(1, 2000) g"
                )
                conn.execute("SELECT pg_switch_wal()")
        while time.monotonic() < deadline and cc.master_ready() in (None, old):
            time.sleep(0.3)
        failed_over = cc.master_ready() not in (None, old)
        restarted = cc.cluster.postmaster_pid(old) != pm
    finally:
        filler.unlink(missing_ok=True)
    return t, {
        "master": _moved(cc, old),
        "failed_over_while_full": failed_over,
        "postgres_restarted": restarted,
    }


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    chunk = b"\0" * (1 << 20)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def _moved(cc: ChaosCluster, before: str) -> str:
    try:
        now = cc.master()
    except RuntimeError:
        return f"{before}->?"
    return before if now == before else f"{before}->{now}"


#: In the order of the matrix.
FAULTS: list[Fault] = [
    Fault("node-loss", "kill -9 of the master's keeper and PostgreSQL", "embedded", node_loss),
    Fault("postmaster-kill", "kill -9 of the master's postmaster alone", "embedded", postmaster_kill),
    Fault(
        "sentinel-leader-kill",
        "kill -9 of the leader sentinel in the middle of a failover",
        "embedded",
        sentinel_leader_mid_failover,
    ),
    Fault("proxy-kill", "kill -9 of the proxy (restarted 1 s later)", "embedded", proxy_kill),
    Fault(
        "freeze", "SIGSTOP of the master's keeper and PostgreSQL > failInterval, SIGCONT", "embedded", freeze
    ),
    Fault("store-down", "etcd killed for proxyTimeout + 5 s, restarted", "etcd", store_down),
    Fault("etcd-quorum", "3-member etcd: one member lost, then quorum lost, restarted", "etcd3", etcd_quorum),
    Fault(
        "partition",
        "the master's namespace cut off from the store and the other nodes, healed",
        "netns",
        partition,
    ),
    Fault(
        "partition-standbys",
        "the master's links to its standbys broken both ways (store, sentinels, proxy reachable), mended",
        "netns",
        partition_standbys,
    ),
    Fault("standby-lag", "a standby behind maxStandbyLag when the master dies", "embedded", standby_lag),
    Fault("disk-full", "the master's data filesystem full", "embedded", disk_full, tmpfs_mb=384),
]
BY_NAME = {f.name: f for f in FAULTS}
