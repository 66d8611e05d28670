"""Helpers shared by the proxy tests and the benchmarks: hand-written cluster data, the
stolon-proxy daemon as a subprocess, echo servers and clients, and waiting for things.

Importable without pytest.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stolon.model import ClusterData
from stolon.model.cluster import (
    DB,
    PHASE_NORMAL,
    ROLE_MASTER,
    ROLE_STANDBY,
    Cluster,
    ClusterStatus,
    DBSpec,
    DBStatus,
    Keeper,
    KeeperSpec,
    KeeperStatus,
    Proxy,
    ProxySpec,
)
from stolon.model.duration import Duration
from stolon.model.spec import ClusterSpec
from stolon.store import StoreConfig


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``check`` until true; returns the seconds it took, or fails naming ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# -- cluster data ---------------------------------------------------------------------------------


@dataclass
class DBDef:
    """One DB of a hand-written cluster data."""

    uid: str
    port: int
    role: str = ROLE_STANDBY
    host: str = "127.0.0.1"
    healthy: bool = True
    xlog_pos: int = 0
    timeline_id: int = 1
    generation: int = 1
    current_generation: int = 1


@dataclass
class CDDef:
    dbs: list[DBDef] = field(default_factory=list)
    master: str = ""
    master_db_uid: str | None = None
    enabled_proxies: list[str] = field(default_factory=list)
    proxy_generation: int = 1
    check_interval: str = "1s"
    timeout: str = "3s"
    max_standby_lag: int | None = None
    trace_context: dict[str, str] | None = None


def make_cd(d: CDDef) -> ClusterData:
    """Cluster data the way Go Stolon's proxy test writes it by hand."""
    spec = ClusterSpec(
        init_mode="new",
        proxy_check_interval=Duration.parse(d.check_interval),
        proxy_timeout=Duration.parse(d.timeout),
        max_standby_lag=d.max_standby_lag,
    )
    cluster = Cluster(
        uid="01",
        generation=1,
        spec=spec,
        status=ClusterStatus(current_generation=1, phase=PHASE_NORMAL, master=d.master),
    )
    keepers: dict[str, Keeper] = {}
    dbs: dict[str, DB] = {}
    for db in d.dbs:
        keepers[f"k{db.uid}"] = Keeper(
            uid=f"k{db.uid}", spec=KeeperSpec(), status=KeeperStatus(healthy=db.healthy)
        )
        dbs[db.uid] = DB(
            uid=db.uid,
            generation=db.generation,
            spec=DBSpec(keeper_uid=f"k{db.uid}", role=db.role),
            status=DBStatus(
                healthy=db.healthy,
                current_generation=db.current_generation,
                listen_address=db.host,
                port=str(db.port),
                xlog_pos=db.xlog_pos,
                timeline_id=db.timeline_id,
            ),
        )
    master_db_uid = d.master if d.master_db_uid is None else d.master_db_uid
    proxy = Proxy(
        generation=d.proxy_generation,
        spec=ProxySpec(master_db_uid=master_db_uid, enabled_proxies=sorted(d.enabled_proxies)),
        trace_context=d.trace_context,
    )
    return ClusterData(cluster=cluster, keepers=keepers, dbs=dbs, proxy=proxy)


def master_db(uid: str, port: int, **kw: object) -> DBDef:
    return DBDef(uid=uid, port=port, role=ROLE_MASTER, **kw)  # type: ignore[arg-type]


# -- the daemon -----------------------------------------------------------------------------------


class ProxyProcess:
    """``stolon-proxy`` as a child process; its output goes to a log file."""

    def __init__(
        self,
        store: StoreConfig,
        port: int,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.port = port
        self.extra_args = list(extra_args)
        self.env = env
        #: a directory we made (removed by :meth:`stop`) when the caller gave none
        self._own_dir = log_dir is None
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="stolon-proxy-test-"))
        self.log_path = self._log_dir / f"proxy-{port}.log"
        self._starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        #: the exit code of the last stopped process
        self.returncode: int | None = None

    def args(self) -> list[str]:
        s = self.store
        return [
            sys.executable,
            "-m",
            "stolon.cli.proxy",
            "--cluster-name",
            s.cluster_name,
            "--store-backend",
            s.backend,
            "--store-endpoints",
            ",".join(s.endpoints),
            "--store-timeout",
            f"{s.timeout:g}s",
            "--listen-address",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]

    def start(self) -> ProxyProcess:
        env = dict(os.environ)
        env.pop("STOLON_DISABLE_PLUGIN_AUTOLOAD", None)
        env.update(self.env or {})
        self._starts += 1
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self._log_dir / f"proxy-{self.port}-{os.getpid()}-{id(self)}-{self._starts}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def uid(self, timeout: float = 15.0) -> str:
        """The proxy uid it logs at start."""
        found: list[str] = []

        def logged() -> bool:
            for line in self.log().splitlines():
                if "proxy uid " in line:
                    found.append(line.rsplit("proxy uid ", 1)[1].split()[0])
                    return True
            return False

        wait_until(logged, timeout, "the proxy to log its uid")
        return found[0]

    def listening(self, port: int | None = None) -> bool:
        return is_listening(port or self.port)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode
        if self._own_dir:
            shutil.rmtree(self._log_dir, ignore_errors=True)
        return proc.returncode

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def etcd_store_config(endpoints: Sequence[str], cluster_name: str, timeout: float = 2.0) -> StoreConfig:
    return StoreConfig(
        backend="etcdv3", cluster_name=cluster_name, endpoints=tuple(endpoints), timeout=timeout
    )


class EchoServer:
    """A plain TCP echo server on 127.0.0.1 in a background thread (a stand-in database)."""

    def __init__(self) -> None:
        import socketserver
        import threading

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                try:
                    while data := sock.recv(65536):
                        sock.sendall(data)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            block_on_close = False

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="echo", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo_roundtrip(port: int, payload: bytes = b"ping", timeout: float = 3.0) -> bool:
    """Whether a new connection through ``port`` echoes ``payload``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(len(payload) - len(got))
                if not chunk:
                    return False
                got += chunk
            return got == payload
    except OSError:
        return False


class EchoClient:
    """One long-lived connection through the proxy, to see whether it gets closed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3.0)

    def alive(self) -> bool:
        try:
            self.sock.sendall(b"?")
            return self.sock.recv(1) == b"?"
        except OSError:
            return False

    def closed(self, timeout: float = 10.0) -> bool:
        """Whether the proxy closes it within ``timeout`` (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()
