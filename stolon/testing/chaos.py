"""The chaos matrix's engine: a whole cluster, clients that count, and one round of a fault.

A :class:`ChaosCluster` is a :class:`~stolon.local.cluster.LocalCluster` (3 keepers, 2
sentinels, 1 proxy) on the embedded store, on real etcd (one member or three), or with
every keeper and its PostgreSQL in its own network namespace (:mod:`stolon.testing.netns`,
etcd on the bridge) so that a node can be partitioned; optionally each keeper's data
directory on its own small tmpfs (to fill it). Every process, namespace, mount and
directory it creates is undone by :meth:`ChaosCluster.close`, on an exception or Ctrl-C too.

Three kinds of clients run during a round:

* the **proxy writer** (:class:`stolon.testing.writer.Writer`): one row every 20 ms through
  the proxy, every acknowledged id recorded;
* the **direct writer** (:class:`DirectWriter`): the same, connected straight to the master
  the store names when it (re)connects, and staying on that connection while it works, as
  an application with a direct connection string would (in the master's namespace: a
  client on the master's side of a partition);
* the **prober** (:class:`Prober`): every 100 ms ("a sample") it tries one write on every
  PostgreSQL directly and two through the proxy (a kept connection and a new one), and
  records which instance accepted each.

:func:`run_round` injects a fault (a :class:`Fault` does the damage and the repair: restarts
what it killed, thaws what it froze), waits until the cluster is back to full strength, and
counts: acknowledged rows missing on the final master, samples in which two instances
accepted writes (directly; through the proxy), how long writes through the proxy stopped,
and how long until full strength.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from stolon.local.cluster import LocalCluster
from stolon.model import ClusterData
from stolon.plugins import load_plugins
from stolon.testing.netns import Bridge, in_netns
from stolon.testing.writer import Writer

T = TypeVar("T")

#: Quick failure detection on one machine (the local cluster's timings). selfFencingTimeout
#: is left to its default: failInterval - min(sleepInterval/2, failInterval/4) = 4.5 s.
CHAOS_SPEC: dict[str, Any] = {
    "sleepInterval": "1s",
    "failInterval": "5s",
    "requestTimeout": "3s",
    "convergenceTimeout": "60s",
    "proxyCheckInterval": "1s",
    "proxyTimeout": "3s",
    "maxStandbyLag": 1024 * 1024,
    "pgParameters": {
        "max_connections": "60",
        "log_min_messages": "warning",
        "shared_buffers": "16MB",
        "min_wal_size": "32MB",
        "max_wal_size": "96MB",
    },
}
FAIL_INTERVAL = 5.0
PROXY_TIMEOUT = 3.0
ELECTION_TTL = "5s"
SAMPLE = 0.1

Log = Callable[[str], None]


def wait_for(what: str, predicate: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """``predicate()``'s first truthy value; psycopg/OS errors count as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except (psycopg.Error, OSError) as e:
            last = e
        else:
            if last:
                return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _run(*argv: str) -> None:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()}")


# -- etcd ------------------------------------------------------------------------------------
def _etcd_classes() -> Any:
    from stolon_store_etcd.testing import EtcdServer

    class HostEtcd(EtcdServer):
        """An etcd member whose client URL is on ``host`` (the bridge's address, reachable
        from every namespace) instead of 127.0.0.1."""

        host = "127.0.0.1"

        @property
        def client_url(self) -> str:
            return f"{self.scheme}://{self.host}:{self.client_port}"

    return HostEtcd


class EtcdCluster:
    """``size`` etcd members on 127.0.0.1 (``host`` for their client URLs), one cluster."""

    def __init__(self, size: int, base: Path, host: str = "127.0.0.1") -> None:
        cls = _etcd_classes()
        self.members: list[Any] = []
        for i in range(size):
            m = cls(name=f"m{i}", base_dir=base / f"etcd{i}")
            m.host = host
            self.members.append(m)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        if size > 1:
            token = f"chaos-{self.members[0].client_port}"
            for m in self.members:
                # flags given twice: etcd keeps the last one
                m.extra_args = ("--initial-cluster", initial, "--initial-cluster-token", token)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self) -> None:
        """Start every member at once (a member waits for a quorum before it is healthy)."""
        errors: list[BaseException] = []

        def one(m: Any) -> None:
            try:
                m.start()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=one, args=(m,)) for m in self.members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        for m in self.members:
            with contextlib.suppress(Exception):
                m.close()


# -- the cluster -----------------------------------------------------------------------------
@dataclass
class ChaosCluster:
    """One cluster for a group of faults (see the module docstring).

    ``store``: ``embedded``, ``etcd`` (one member), ``etcd3`` (three members) or ``netns``
    (one etcd member on a bridge, each keeper in its own namespace). ``tmpfs_mb``: each
    keeper's data directory on a tmpfs of that size (0: none).
    """

    synchronous: bool
    store: str = "embedded"
    tmpfs_mb: int = 0
    spec: dict[str, Any] = field(default_factory=dict)
    log: Log = print

    def __post_init__(self) -> None:
        self.stack = ExitStack()
        self.base = Path()
        self.bridge: Bridge | None = None
        self.etcd: EtcdCluster | None = None
        self.cluster: LocalCluster
        self.proxy_writer: Writer
        self.direct_writer: DirectWriter
        #: processes frozen by a fault (thawed on close whatever happens)
        self.frozen: set[int] = set()

    @property
    def mode(self) -> str:
        return "sync" if self.synchronous else "async"

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> ChaosCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="stolon-chaos-", dir="/tmp"))
        os.chmod(self.base, 0o755)
        self.stack.callback(shutil.rmtree, self.base, True)
        keepers = [f"keeper{i}" for i in range(3)]
        hosts: dict[str, str] = {}
        netns: dict[str, str] = {}
        endpoints: list[str] | None = None
        if self.store == "netns":
            self.bridge = Bridge(3).create()
            self.stack.callback(self.bridge.remove)
            hosts = {k: self.bridge.address(i) for i, k in enumerate(keepers)}
            netns = {k: self.bridge.namespace(i) for i, k in enumerate(keepers)}
        if self.store in ("etcd", "etcd3", "netns"):
            host = self.bridge.host_address if self.bridge is not None else "127.0.0.1"
            self.etcd = EtcdCluster(3 if self.store == "etcd3" else 1, self.base / "etcd", host)
            self.stack.callback(self.etcd.close)
            self.etcd.start()
            endpoints = self.etcd.endpoints
        if self.tmpfs_mb:
            for k in keepers:
                d = self.base / "c" / "keepers" / k
                d.mkdir(parents=True)
                _run("mount", "-t", "tmpfs", "-o", f"size={self.tmpfs_mb}m,mode=0755", "tmpfs", str(d))
                self.stack.callback(_umount, d)
        spec = {**CHAOS_SPEC, **self.spec}
        self.cluster = LocalCluster.create(
            self.base / "c",
            backends=load_plugins(),
            name=f"chaos{os.getpid()}",
            keepers=3,
            sentinels=2,
            synchronous=self.synchronous,
            store_backend="embedded" if self.store == "embedded" else "etcdv3",
            store_endpoints=endpoints,
            spec=spec,
            election_ttl=ELECTION_TTL,
            keeper_hosts=hosts,
            keeper_netns=netns,
        )
        self.stack.callback(self._stop_processes)
        self.cluster.start()
        self.cluster.wait_healthy(300)
        self.proxy_writer = Writer(self.cluster.dsn(), interval=0.02, table="acks_proxy")
        self.proxy_writer.setup()
        with psycopg.connect(self.cluster.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS acks_direct (id bigint PRIMARY KEY)")
            conn.execute("CREATE TABLE IF NOT EXISTS chaos_probe (id bigserial PRIMARY KEY, path text)")
            conn.execute("CREATE TABLE IF NOT EXISTS chaos_filler (id bigint, pad text)")
        self.direct_writer = DirectWriter(self)
        self.wait_full_strength(300)
        self.proxy_writer.start()
        self.stack.callback(self.proxy_writer.stop)
        self.direct_writer.start()
        self.stack.callback(self.direct_writer.stop)

    def _stop_processes(self) -> None:
        _signal_all(list(self.frozen), signal.SIGCONT)
        for p in self.cluster.processes.values():
            p.thaw()
        self.cluster.stop(timeout=30)
        # a postmaster left behind (its keeper killed and not restarted gets a death
        # signal, but may still be shutting down): gone before the directories and mounts
        for uid in self.cluster.keeper_uids():
            pm = self.cluster.postmaster_pid(uid)
            if pm is not None:
                _signal_all(instance_pids(pm), signal.SIGKILL)

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.mend()
            for i in range(3):
                with contextlib.suppress(RuntimeError):
                    self.bridge.heal(i)
        self.stack.close()

    # -- observing -------------------------------------------------------------------------
    def cd(self) -> ClusterData | None:
        return self.cluster.cluster_data()

    def master(self) -> str:
        m = self.cluster.master_keeper()
        if m is None:
            raise RuntimeError("no master in the cluster data")
        return m

    def master_ready(self, cd: ClusterData | None = None) -> str | None:
        """The master keeper when its DB is converged and healthy in the cluster data."""
        cd = cd if cd is not None else self.cd()
        db = cd.master_db() if cd is not None else None
        if db is None or db.spec is None or not db.status.healthy:
            return None
        if db.status.current_generation != db.generation:
            return None
        return db.spec.keeper_uid

    def netns_of(self, uid: str) -> str | None:
        return self.cluster.layout.keeper_netns.get(uid)

    def connect(self, uid: str, timeout: int = 3) -> psycopg.Connection[tuple[Any, ...]]:
        with in_netns(self.netns_of(uid)):
            return psycopg.connect(self.cluster.keeper_dsn(uid), autocommit=True, connect_timeout=timeout)

    def sql(self, uid: str, query: str) -> list[tuple[Any, ...]]:
        with self.connect(uid) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def wait_new_master(self, old: str, timeout: float = 120) -> str:
        def ready() -> str | None:
            m = self.master_ready()
            if m in (None, old):
                return None
            return m if not self.sql(m, "SELECT pg_is_in_recovery()")[0][0] else None

        return wait_for(f"a master other than {old}", ready, timeout)

    def full_strength(self) -> tuple[bool, str]:
        """Every process runs, every keeper's DB is healthy and converged, the master
        streams to every standby (in synchronous mode, at least one of them synchronous),
        and a connection through the proxy reaches the master."""
        for name, p in self.cluster.processes.items():
            if not p.alive:
                return False, f"{name} not running"
        ok, what = self.cluster.healthy()
        if not ok:
            return False, what
        m = self.master()
        rows = self.sql(m, "SELECT state, sync_state FROM pg_stat_replication")
        streaming = [r for r in rows if r[0] == "streaming"]
        if len(streaming) < len(self.cluster.keeper_uids()) - 1:
            return False, f"{len(streaming)} standbys streaming"
        if self.synchronous and not any(r[1] in ("sync", "quorum") for r in streaming):
            return False, "no synchronous standby"
        with psycopg.connect(self.cluster.dsn(), autocommit=True, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT inet_server_port(), pg_is_in_recovery(), current_setting('default_transaction_read_only')"
            ).fetchone()
        if row is None or row[0] != self.cluster.keeper_pg_port(m):
            return False, "the proxy does not reach the master"
        if row[1] or row[2] != "off":
            return False, "the master refuses writes"
        return True, "full strength"

    def wait_full_strength(self, timeout: float = 300) -> None:
        last = [""]

        def ok() -> bool:
            good, what = self.full_strength()
            last[0] = what
            return good

        try:
            wait_for("full strength", ok, timeout, 0.3)
        except TimeoutError as e:
            raise TimeoutError(f"{e}: {last[0]}") from None

    # -- faults' tools ---------------------------------------------------------------------
    def kill_node(self, uid: str) -> None:
        """SIGKILL the keeper and every process of its PostgreSQL at once (a machine dying)."""
        pm = self.cluster.postmaster_pid(uid)
        keeper = self.cluster.processes[uid].pid
        pids = ([keeper] if keeper else []) + (instance_pids(pm) if pm else [])
        _signal_all(pids, signal.SIGKILL)
        self.cluster.processes[uid].kill()  # reaps it

    def freeze_node(self, uid: str) -> list[int]:
        """SIGSTOP the keeper, the postmaster and every child of it (a paused machine:
        each PostgreSQL child leads its own process group, so a group signal is not enough).
        The postmaster first: a stopped postmaster forks nothing more."""
        pm = self.cluster.postmaster_pid(uid)
        keeper = self.cluster.processes[uid].pid
        if pm is None or keeper is None:
            raise RuntimeError(f"{uid}: no keeper or postmaster to freeze")
        os.kill(pm, signal.SIGSTOP)
        self.frozen.add(pm)
        pids = [keeper, *instance_pids(pm)]
        self.frozen.update(pids)
        _signal_all(pids, signal.SIGSTOP)
        return pids

    def thaw_node(self, pids: list[int]) -> None:
        """SIGCONT to everything :meth:`freeze_node` stopped, at once."""
        _signal_all(pids, signal.SIGCONT)
        self.frozen.difference_update(pids)

    def sentinel_leader(self) -> str | None:
        """The sentinel process name (``sentinel0``...) holding the leadership."""
        with self.cluster.open_store() as st:
            uid = st.get_leader()
        if uid is None:
            return None
        for name in self.cluster.layout.sentinels:
            if f"sentinel uid {uid}:" in self.cluster.processes[name].output():
                return name
        return None

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"===== {n} =====\n{p.output(tail)}" for n, p in self.cluster.processes.items())


def instance_pids(pm: int) -> list[int]:
    """The postmaster ``pm`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pm]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _umount(path: Path) -> None:
    res = subprocess.run(["umount", str(path)], capture_output=True, timeout=60, check=False)
    if res.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60, check=False)


# -- clients ---------------------------------------------------------------------------------
@dataclass
class DirectWriter:
    """One row every ``interval`` into ``acks_direct`` on the master the store names when
    it (re)connects; it stays on its connection while the writes succeed. Records every
    acknowledged id and every attempt. No statement_timeout: a cancelled wait for a
    synchronous standby is reported as a successful commit."""

    cc: ChaosCluster
    interval: float = 0.02
    acked: list[int] = field(default_factory=list)
    attempts: list[tuple[float, bool]] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    next_id: int = 1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="direct-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        while not self._stop.is_set():
            t = time.monotonic()
            if conn is None:
                try:
                    uid = self.cc.master_ready()
                except Exception:
                    uid = None
                if uid is None:
                    self._stop.wait(0.2)
                    continue
                try:
                    with in_netns(self.cc.netns_of(uid)):
                        conn = psycopg.connect(
                            self.cc.cluster.keeper_dsn(uid), autocommit=True, connect_timeout=2,
                            keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                        )  # fmt: skip
                except psycopg.Error:
                    self.attempts.append((t, False))
                    self._stop.wait(0.2)
                    continue
            i = self.next_id
            self.next_id += 1
            try:
                conn.execute("INSERT INTO acks_direct VALUES (%s)", (i,))
            except psycopg.Error:
                self.attempts.append((t, False))
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                conn = None
                self._stop.wait(0.1)
                continue
            self.acked.append(i)
            self.acked_at.append(time.monotonic())
            self.attempts.append((t, True))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


@dataclass(frozen=True)
class Landing:
    sample: int
    path: str  # "direct:<keeper>", "proxy" (kept connection), "proxy-new" (new connection)
    port: int  # the PostgreSQL port that accepted the write


class Prober:
    """Every :data:`SAMPLE` seconds, one write on every PostgreSQL directly (each from its
    own namespace) and two through the proxy; records which instance accepted each write,
    by the sample in which its commit returned."""

    def __init__(self, cc: ChaosCluster) -> None:
        self.cc = cc
        self.t0 = time.monotonic()
        self.landings: list[Landing] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ports = {cc.cluster.keeper_pg_port(k): k for k in cc.cluster.keeper_uids()}

    def start(self) -> Prober:
        cl = self.cc.cluster
        targets: list[tuple[str, str, str | None, bool]] = [
            (f"direct:{k}", cl.keeper_dsn(k), self.cc.netns_of(k), True) for k in cl.keeper_uids()
        ]
        targets += [("proxy", cl.dsn(), None, True), ("proxy-new", cl.dsn(), None, False)]
        for path, dsn, ns, keep in targets:
            t = threading.Thread(target=self._probe, args=(path, dsn, ns, keep), name=path, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> list[Landing]:
        """Stop sampling; a probe stuck in a write is left behind (its result ignored)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=3)
        with self._lock:
            return list(self.landings)

    def sample_now(self) -> int:
        return int((time.monotonic() - self.t0) / SAMPLE)

    def _probe(self, path: str, dsn: str, ns: str | None, keep: bool) -> None:
        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        k = self.sample_now() + 1
        while not self._stop.is_set():
            delay = self.t0 + k * SAMPLE - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            try:
                if conn is None:
                    with in_netns(ns):
                        conn = psycopg.connect(
                            dsn, autocommit=True, connect_timeout=1,
                            keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                        )  # fmt: skip
                row = conn.execute(
                    "INSERT INTO chaos_probe (path) VALUES (%s) RETURNING inet_server_port()", (path,)
                ).fetchone()
                done = self.sample_now()
                if row is not None and not self._stop.is_set():
                    with self._lock:
                        self.landings.append(Landing(done, path, int(row[0])))
            except psycopg.Error:
                if conn is not None and (conn.broken or conn.closed):
                    conn = None
            if not keep and conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                conn = None
            k = max(k + 1, self.sample_now() + 1)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def double_writable(landings: list[Landing]) -> tuple[int, int]:
    """(through the proxy, direct): samples in which two instances accepted writes.

    Direct: two PostgreSQL instances each accepted a direct write in the same sample.
    Through the proxy: writes through the proxy landed on two instances in the same sample,
    or on an instance the proxy had left for another one that accepted a write (by any
    path) within the last second (the proxy went back to a deposed master).
    """
    by_sample: dict[int, list[Landing]] = {}
    for x in landings:
        by_sample.setdefault(x.sample, []).append(x)
    direct = 0
    proxy = 0
    current: int | None = None
    left: dict[int, int] = {}  # port the proxy left -> the port it left it for
    last_ok: dict[int, int] = {}  # port -> last sample it accepted a write (any path)
    window = int(1.0 / SAMPLE)
    for s in sorted(by_sample):
        xs = by_sample[s]
        for x in xs:
            last_ok[x.port] = s
        if len({x.port for x in xs if x.path.startswith("direct:")}) >= 2:
            direct += 1
        via_proxy = {x.port for x in xs if x.path.startswith("proxy")}
        bad = len(via_proxy) >= 2
        for p in via_proxy:
            other = left.get(p)
            if other is not None and s - last_ok.get(other, -(10**9)) <= window:
                bad = True
        if bad:
            proxy += 1
        if len(via_proxy) == 1:
            (p,) = via_proxy
            if current is not None and p != current:
                left[current] = p
                left.pop(p, None)
            current = p
    return proxy, direct


# -- rounds ----------------------------------------------------------------------------------
@dataclass
class Fault:
    """A fault: ``inject`` does the damage and the repair and returns the moment the damage
    began and notes; the round then waits for full strength."""

    name: str
    title: str
    store: str  # the ChaosCluster store it needs
    inject: Callable[[ChaosCluster], tuple[float, dict[str, Any]]]
    tmpfs_mb: int = 0


@dataclass
class RoundResult:
    fault: str
    mode: str
    round: int
    lost_proxy: int = 0
    lost_direct: int = 0
    double_proxy: int = 0
    double_direct: int = 0
    acked_proxy: int = 0
    acked_direct: int = 0
    write_gap: float = 0.0
    resumed: float = 0.0
    full_strength: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _gap(acked_at: list[float], since: float, until: float) -> tuple[float, float, float]:
    """The longest stretch in [since, until] without an acknowledgement arriving: (its
    length, its start and end relative to ``since``)."""
    last_ok = since
    worst, start, end = 0.0, 0.0, 0.0
    for done in list(acked_at):
        if done < since:
            continue
        if done - last_ok > worst:
            worst, start, end = done - last_ok, last_ok - since, done - since
        last_ok = done
    if until - last_ok > worst:
        worst, start, end = until - last_ok, last_ok - since, until - since
    return worst, start, end


def _missing(cc: ChaosCluster, table: str, ids: list[int]) -> int:
    if not ids:
        return 0
    with psycopg.connect(cc.cluster.dsn(), autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            f"SELECT id FROM {table} WHERE id BETWEEN %s AND %s", (min(ids), max(ids))
        ).fetchall()
    present = {r[0] for r in rows}
    return sum(1 for i in ids if i not in present)


def run_round(cc: ChaosCluster, fault: Fault, number: int, log: Log = print) -> RoundResult:
    res = RoundResult(fault.name, cc.mode, number)
    cc.wait_full_strength(300)
    pw, dw = cc.proxy_writer, cc.direct_writer
    p0, d0 = len(pw.acked), len(dw.acked)
    wait_for("writes through the proxy", lambda: len(pw.acked) >= p0 + 25, 60, 0.05)
    wait_for("direct writes", lambda: len(dw.acked) >= d0 + 25, 60, 0.05)
    prober = Prober(cc).start()
    landings: list[Landing] = []
    try:
        wait_for("the prober's first samples", lambda: len(prober.landings) >= 10, 30, 0.05)
        injected, notes = fault.inject(cc)
        res.notes.update(notes)
        cc.wait_full_strength(300)
        res.full_strength = time.monotonic() - injected
        p1 = len(pw.acked)
        wait_for("writes through the proxy after recovery", lambda: len(pw.acked) >= p1 + 25, 60, 0.05)
        until = time.monotonic()
    finally:
        landings = prober.stop()
    res.write_gap, stopped, res.resumed = _gap(pw.acked_at, injected, until)
    res.notes["proxy_writes_stopped"] = f"+{stopped:.1f}..+{res.resumed:.1f}"
    _, stopped, resumed = _gap(dw.acked_at, injected, until)
    res.notes["direct_writes_stopped"] = f"+{stopped:.1f}..+{resumed:.1f}"
    proxy_ids, direct_ids = pw.acked[p0:], dw.acked[d0:]
    res.acked_proxy, res.acked_direct = len(proxy_ids), len(direct_ids)
    res.lost_proxy = _missing(cc, pw.table, proxy_ids)
    res.lost_direct = _missing(cc, "acks_direct", direct_ids)
    res.double_proxy, res.double_direct = double_writable(landings)
    log(
        f"  {fault.name} [{cc.mode}] round {number}: lost {res.lost_proxy} proxy / {res.lost_direct} direct"
        f" (of {res.acked_proxy}/{res.acked_direct} acked), double-writable samples {res.double_proxy} proxy"
        f" / {res.double_direct} direct, writes stopped {res.write_gap:.1f}s (resumed at +{res.resumed:.1f}s),"
        f" full strength at +{res.full_strength:.1f}s {res.notes or ''}"
    )
    return res


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (so the cleanups run) while the block runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def summarize(results: list[RoundResult]) -> list[dict[str, Any]]:
    """One row per (fault, mode), in the order first seen."""
    rows: dict[tuple[str, str], list[RoundResult]] = {}
    for r in results:
        rows.setdefault((r.fault, r.mode), []).append(r)
    out = []
    for (fault, mode), rs in rows.items():
        ok = [r for r in rs if not r.error]
        resumed = [r.resumed if r.write_gap >= 0.5 else 0.0 for r in ok]
        full = [r.full_strength for r in ok]
        out.append(
            {
                "fault": fault,
                "mode": mode,
                "rounds": len(ok),
                "failed_rounds": len(rs) - len(ok),
                "lost_proxy": sum(r.lost_proxy for r in ok),
                "lost_direct": sum(r.lost_direct for r in ok),
                "acked_proxy": sum(r.acked_proxy for r in ok),
                "acked_direct": sum(r.acked_direct for r in ok),
                "double_proxy": sum(r.double_proxy for r in ok),
                "double_direct": sum(r.double_direct for r in ok),
                "resume_median": statistics.median(resumed) if resumed else None,
                "resume_max": max(resumed) if resumed else None,
                "full_median": statistics.median(full) if full else None,
                "full_max": max(full) if full else None,
            }
        )
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    head = (
        "| fault | mode | rounds | acked rows lost (proxy / direct) | double-writable samples (proxy / direct)"
        " | writes resumed after, s (median / max) | full strength after, s (median / max) |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        rounds = str(r["rounds"]) + (f" (+{r['failed_rounds']} failed)" if r["failed_rounds"] else "")
        lines.append(
            f"| {r['fault']} | {r['mode']} | {rounds} | {r['lost_proxy']} / {r['lost_direct']}"
            f" (of {r['acked_proxy']} / {r['acked_direct']}) | {r['double_proxy']} / {r['double_direct']}"
            f" | {sec(r['resume_median'])} / {sec(r['resume_max'])} | {sec(r['full_median'])} / {sec(r['full_max'])} |"
        )
    return "\n".join(lines)
