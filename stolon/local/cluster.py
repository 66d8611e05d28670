"""A whole stolon cluster on one machine: store, keepers, sentinels and a proxy.

Everything lives under one base directory::

    cluster.json      what was created (ports, uids, store) so other terminals find it
    spec.json         the initial cluster spec given to the sentinels
    secrets/          superuser and replication passwords (0600, passed as files)
    store/store.db    the embedded store (unless an external store is used)
    keepers/<uid>/    keeper data dirs (PGDATA in postgres/)
    logs/*.log        one log per process
    pids/*.pid        one pid file per process

Used by ``stolonctl local`` and by the end-to-end tests and benchmarks. Works as root:
the keepers then run PostgreSQL as the ``postgres`` OS user, so the base directory must be
reachable by it (the default under /tmp is).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stolon.local.processes import ManagedProcess, kill_leftovers, signal_pid_file
from stolon.model import ClusterData
from stolon.netutil import free_port
from stolon.postgres.datadir import read_postmaster_pid
from stolon.postgres.errors import PostgresError
from stolon.store import ClusterStore, StoreBackends, open_store
from stolon.store.base import StoreConfig, StoreError

SU_USER = "postgres"
REPL_USER = "repl"

#: A spec tuned for a local cluster: quick failure detection on one machine.
LOCAL_SPEC: dict[str, Any] = {
    "initMode": "new",
    "sleepInterval": "1s",
    "failInterval": "5s",
    "requestTimeout": "4s",
    "proxyCheckInterval": "1s",
    "proxyTimeout": "3s",
    "convergenceTimeout": "60s",
    "usePgrewind": True,
    "pgParameters": {"max_connections": "100", "log_min_messages": "warning"},
}


@dataclass
class Layout:
    """What ``cluster.json`` records."""

    name: str
    store_backend: str
    store_endpoints: list[str]
    keepers: dict[str, int]  # uid -> PostgreSQL port
    sentinels: list[str]
    proxy_port: int
    election_ttl: str = "5s"
    pg_bin_path: str = ""
    extra_keeper_args: list[str] = field(default_factory=list)
    proxy: bool = True
    #: keeper uid -> the address its PostgreSQL listens on (default 127.0.0.1)
    keeper_hosts: dict[str, str] = field(default_factory=dict)
    #: keeper uid -> a network namespace (``ip netns``) the keeper and its PostgreSQL run in
    keeper_netns: dict[str, str] = field(default_factory=dict)

    def store_config(self) -> StoreConfig:
        return StoreConfig(self.store_backend, self.name, tuple(self.store_endpoints))


class LocalCluster:
    """A cluster of processes on this machine; ``backends`` opens its store to observe it
    (the processes themselves load their plugins)."""

    def __init__(
        self, base_dir: Path, layout: Layout, *, backends: StoreBackends, python: str = sys.executable
    ) -> None:
        self.base = base_dir.absolute()
        self.layout = layout
        self.backends = backends
        self.python = python
        self.processes: dict[str, ManagedProcess] = {}
        #: what the stored cluster data said before :meth:`start` (a cluster started again
        #: reads healthy from its last run's document until the new processes report)
        self._stale: tuple[dict[str, str], frozenset[str]] | None = None
        self._build_processes()

    # -- creation -----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        base_dir: Path,
        *,
        backends: StoreBackends,
        name: str = "local",
        keepers: int = 3,
        sentinels: int = 2,
        synchronous: bool = False,
        store_backend: str = "embedded",
        store_endpoints: list[str] | None = None,
        spec: dict[str, Any] | None = None,
        pg_bin_path: str = "",
        election_ttl: str = "5s",
        proxy: bool = True,
        extra_keeper_args: list[str] | None = None,
        keeper_hosts: dict[str, str] | None = None,
        keeper_netns: dict[str, str] | None = None,
    ) -> LocalCluster:
        """``keeper_hosts``/``keeper_netns`` (by keeper uid, ``keeper0``...) put a keeper's
        PostgreSQL on another address and the keeper in a network namespace that exists
        already (``ip netns add``; the chaos benchmark partitions them)."""
        base = base_dir.absolute()
        if (base / "cluster.json").exists():
            raise FileExistsError(f"{base} already holds a local cluster: use it, or remove it first")
        for d in ("", "secrets", "store", "keepers", "logs", "pids"):
            (base / d).mkdir(parents=True, exist_ok=True)
            os.chmod(base / d, 0o700 if d == "secrets" else 0o755)
        for who in ("su", "repl"):
            # 0600 from the first byte (O_EXCL: never through a link or into an old file)
            (base / "secrets" / who).unlink(missing_ok=True)  # left by an interrupted create
            fd = os.open(base / "secrets" / who, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(18) + "\n")
        if store_backend == "embedded" and not store_endpoints:
            store_endpoints = [str(base / "store" / "store.db")]
        full_spec = dict(LOCAL_SPEC)
        if synchronous:
            full_spec["synchronousReplication"] = True
        full_spec.update(spec or {})
        (base / "spec.json").write_text(json.dumps(full_spec, indent=2) + "\n")
        layout = Layout(
            name=name,
            store_backend=store_backend,
            store_endpoints=list(store_endpoints or []),
            keepers={f"keeper{i}": free_port() for i in range(keepers)},
            sentinels=[f"sentinel{i}" for i in range(sentinels)],
            proxy_port=free_port(),
            election_ttl=election_ttl,
            pg_bin_path=pg_bin_path,
            extra_keeper_args=list(extra_keeper_args or []),
            proxy=proxy,
            keeper_hosts=dict(keeper_hosts or {}),
            keeper_netns=dict(keeper_netns or {}),
        )
        (base / "cluster.json").write_text(json.dumps(asdict(layout), indent=2) + "\n")
        return cls(base, layout, backends=backends)

    @classmethod
    def load(cls, base_dir: Path, *, backends: StoreBackends) -> LocalCluster:
        try:
            raw = json.loads((base_dir / "cluster.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no local cluster in {base_dir} (cluster.json missing)") from None
        return cls(base_dir, Layout(**raw), backends=backends)

    # -- processes ----------------------------------------------------------------------------
    def store_args(self) -> list[str]:
        lay = self.layout
        return [
            "--cluster-name", lay.name, "--store-backend", lay.store_backend,
            "--store-endpoints", ",".join(lay.store_endpoints),
        ]  # fmt: skip

    def _build_processes(self) -> None:
        lay = self.layout
        logs, pids = self.base / "logs", self.base / "pids"
        for uid, port in lay.keepers.items():
            netns = lay.keeper_netns.get(uid)
            argv = [
                # ``ip netns exec`` execs the keeper: the pid stays the keeper's
                *(["ip", "netns", "exec", netns] if netns else []),
                self.python, "-m", "stolon.cli.keeper", *self.store_args(),
                "--uid", uid, "--data-dir", str(self.base / "keepers" / uid),
                "--pg-listen-address", self.keeper_pg_host(uid), "--pg-port", str(port),
                "--pg-su-username", SU_USER, "--pg-su-passwordfile", str(self.base / "secrets" / "su"),
                "--pg-repl-username", REPL_USER, "--pg-repl-passwordfile", str(self.base / "secrets" / "repl"),
                *(["--pg-bin-path", lay.pg_bin_path] if lay.pg_bin_path else []),
                *lay.extra_keeper_args,
            ]  # fmt: skip
            self.processes[uid] = ManagedProcess(uid, argv, logs / f"{uid}.log", pid_file=pids / f"{uid}.pid")
        for uid in lay.sentinels:
            argv = [
                self.python, "-m", "stolon.cli.sentinel", *self.store_args(),
                "--initial-cluster-spec", str(self.base / "spec.json"), "--election-ttl", lay.election_ttl,
            ]  # fmt: skip
            self.processes[uid] = ManagedProcess(uid, argv, logs / f"{uid}.log", pid_file=pids / f"{uid}.pid")
        if lay.proxy:
            argv = [
                self.python, "-m", "stolon.cli.proxy", *self.store_args(),
                "--listen-address", "127.0.0.1", "--port", str(lay.proxy_port),
            ]  # fmt: skip
            self.processes["proxy"] = ManagedProcess(
                "proxy", argv, logs / "proxy.log", pid_file=pids / "proxy.pid"
            )

    def keeper_uids(self) -> list[str]:
        return list(self.layout.keepers)

    def start(self) -> None:
        """Keepers first, then sentinels (which create the cluster data), then the proxy."""
        cd = self.cluster_data() if not any(p.alive for p in self.processes.values()) else None
        if cd is not None:
            boots = {uid: k.status.boot_uuid for uid, k in (cd.keepers or {}).items()}
            proxies = frozenset(cd.proxy.spec.enabled_proxies or ()) if cd.proxy is not None else frozenset()
            self._stale = (boots, proxies)
        for uid in self.layout.keepers:
            self.processes[uid].start()
        for uid in self.layout.sentinels:
            self.processes[uid].start()
        if "proxy" in self.processes:
            self.processes["proxy"].start()

    def stop(self, timeout: float = 60.0) -> None:
        """Proxy, sentinels, then keepers (each stops its PostgreSQL): no failover on the way.
        A process restarted from another terminal (``stolonctl local start``) is stopped
        through its pid file; PostgreSQL processes a killed postmaster left in a keeper's
        directory are killed last."""
        for name in self._stop_order():
            self.processes[name].stop(timeout)
            signal_pid_file(self.base / "pids" / f"{name}.pid", 15, timeout)
        for uid in self.layout.keepers:
            kill_leftovers(self.base / "keepers" / uid)

    def _stop_order(self) -> list[str]:
        return [n for n in ["proxy", *self.layout.sentinels, *self.layout.keepers] if n in self.processes]

    def stop_by_pid_files(self, timeout: float = 60.0) -> list[str]:
        """``down`` from another terminal: signal what the pid files name, in order."""
        stopped = []
        for name in self._stop_order():
            if signal_pid_file(self.base / "pids" / f"{name}.pid", 15, timeout):
                stopped.append(name)
        return stopped

    # -- observing ----------------------------------------------------------------------------
    def open_store(self) -> ClusterStore:
        return open_store(self.layout.store_config(), self.backends)

    def cluster_data(self) -> ClusterData | None:
        try:
            with self.open_store() as st:
                cd, _ = st.get_cluster_data()
            return cd
        except StoreError:
            return None

    def master_keeper(self, cd: ClusterData | None = None) -> str | None:
        cd = cd if cd is not None else self.cluster_data()
        if cd is None:
            return None
        db = cd.master_db()
        return db.spec.keeper_uid if db is not None and db.spec is not None else None

    def leader_sentinel(self) -> str | None:
        """The name (``sentinel0``...) of the sentinel process holding the leadership, if known.

        The store names the leader by its sentinel uid, which each sentinel announces in its
        log at start ("sentinel uid <uid>: ..."); the last announcement in a log is the
        current run's.
        """
        try:
            with self.open_store() as st:
                leader = st.get_leader()
        except StoreError:
            return None
        if not leader:
            return None
        for name in self.layout.sentinels:
            try:
                text = (self.base / "logs" / f"{name}.log").read_text(errors="replace")
            except OSError:
                continue
            announced = [
                line.split("sentinel uid ", 1)[1].split(":", 1)[0]
                for line in text.splitlines()
                if "sentinel uid " in line
            ]
            if announced and announced[-1] == leader:
                return name
        return None

    def healthy(self) -> tuple[bool, str]:
        """Whether the master is up and every keeper has a converged, healthy DB."""
        cd = self.cluster_data()
        if cd is None or cd.cluster is None:
            return False, "waiting for the cluster data"
        if cd.cluster.status.phase != "normal":
            return False, f"cluster phase {cd.cluster.status.phase or 'none'}"
        if self._stale is not None:
            # Started again: the document still says what the last run left. Healthy only
            # once the sentinel has seen every keeper process of this run (a new boot UUID)
            # and enabled a proxy of this run (a new proxy UID).
            boots, proxies = self._stale
            keepers = cd.keepers or {}
            for uid in self.layout.keepers:
                k = keepers.get(uid)
                if k is None or not k.status.boot_uuid or k.status.boot_uuid == boots.get(uid):
                    return False, "waiting for the keepers of this run to report"
            if self.layout.proxy and (
                cd.proxy is None or not set(cd.proxy.spec.enabled_proxies or ()) - proxies
            ):
                return False, "waiting for the proxy of this run"
        master = cd.master_db()
        if (
            master is None
            or not master.status.healthy
            or master.status.current_generation != master.generation
        ):
            return False, "waiting for the master"
        want = len(self.layout.keepers)
        good = [
            db for db in (cd.dbs or {}).values()
            if db.status.healthy and db.status.current_generation == db.generation
        ]  # fmt: skip
        if len(good) < want:
            return False, f"{len(good)}/{want} databases ready"
        if self.layout.proxy and (
            cd.proxy is None or cd.proxy.spec.master_db_uid != master.uid or not cd.proxy.spec.enabled_proxies
        ):
            return False, "waiting for the proxy"
        return True, "healthy"

    def wait_healthy(self, timeout: float = 180.0, progress: Callable[[str], None] | None = None) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            ok, what = self.healthy()
            if what != last and progress is not None:
                progress(what)
                last = what
            if ok:
                return
            for name, proc in self.processes.items():
                if proc.proc is not None and not proc.alive and proc.proc.returncode not in (0, None):
                    raise RuntimeError(
                        f"{name} exited with status {proc.proc.returncode}:\n{proc.output(3000)}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster is not healthy after {timeout:g}s: {what}")
            time.sleep(0.5)

    def password(self, who: str = "su") -> str:
        return (self.base / "secrets" / who).read_text().rstrip("\r\n")

    def dsn(
        self,
        port: int | None = None,
        dbname: str = "postgres",
        with_password: bool = True,
        host: str = "127.0.0.1",
    ) -> str:
        port = port or self.layout.proxy_port
        pw = f" password={self.password()}" if with_password else ""
        return f"host={host} port={port} user={SU_USER} dbname={dbname}{pw}"

    def keeper_dsn(self, uid: str, dbname: str = "postgres") -> str:
        """A connection string for ``uid``'s PostgreSQL itself (not through the proxy)."""
        return self.dsn(self.keeper_pg_port(uid), dbname, host=self.keeper_pg_host(uid))

    def url(self) -> str:
        return f"postgresql://{SU_USER}@127.0.0.1:{self.layout.proxy_port}/postgres"

    def keeper_pg_port(self, uid: str) -> int:
        return self.layout.keepers[uid]

    def keeper_pg_host(self, uid: str) -> str:
        return self.layout.keeper_hosts.get(uid, "127.0.0.1")

    def postmaster_pid(self, uid: str) -> int | None:
        """The pid in the keeper's postmaster.pid, if that process runs as PGDATA's owner.

        PGDATA belongs to the PostgreSQL user, who could write any pid there: the file is
        read without following links, and a pid of another user's process is ignored.
        """
        pgdata = self.base / "keepers" / uid / "postgres"
        try:
            first = read_postmaster_pid(pgdata)
            if first is None or first <= 1:
                return None
            if os.stat(f"/proc/{first}").st_uid != os.lstat(pgdata).st_uid:
                return None
            return first
        except (OSError, ValueError, PostgresError):
            return None

    def kill_keeper_and_postgres(self, uid: str) -> None:
        """SIGKILL the keeper and its postmaster together (a machine dying)."""
        pid = self.postmaster_pid(uid)
        self.processes[uid].kill()
        if pid is not None:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
