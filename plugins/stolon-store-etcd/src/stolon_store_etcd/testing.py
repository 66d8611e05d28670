"""A real single-member etcd server for tests (the etcd plugin's test support).

:class:`EtcdServer` runs the ``etcd`` binary on free 127.0.0.1 ports picked at run time
(never 2379/2380), with its own temporary data directory, and can stop, restart (same
ports and data, so the data survives), kill, freeze and thaw it. It never leaves a process
behind: :meth:`EtcdServer.close` (or the context manager) stops it and removes its
directory, and an ``atexit`` hook plus a finalizer kill whatever a test forgot. On Linux the
process also gets ``PR_SET_PDEATHSIG`` when started from the main thread, so it dies with
the test process even on SIGKILL.

Only the standard library (and :mod:`stolon.testing.tied_child`, which sets that
PDEATHSIG) is used, so this imports without etcd installed. The pytest
fixtures built on it are in :mod:`stolon_store_etcd.fixtures`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stolon.testing.tied_child import die_with_parent_preexec

#: Environment variable naming the etcd binary (else ``etcd`` is looked up in PATH).
ETCD_BIN_ENV = "ETCD_BIN"
_RESERVED_PORTS = frozenset({2379, 2380})


class EtcdNotFoundError(RuntimeError):
    """No usable etcd binary."""


def find_etcd_binary() -> str:
    """The etcd binary from ``$ETCD_BIN`` or PATH; :class:`EtcdNotFoundError` says why not."""
    configured = os.environ.get(ETCD_BIN_ENV, "").strip()
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise EtcdNotFoundError(f"${ETCD_BIN_ENV}={configured!r} is not an executable file")
    found = shutil.which("etcd")
    if found is None:
        raise EtcdNotFoundError(f"no etcd binary: install etcd (>= 3.4) in PATH or set ${ETCD_BIN_ENV}")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (never 2379/2380)."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in _RESERVED_PORTS:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass(frozen=True)
class EtcdTLS:
    """Serve the client port over TLS.

    ``client_cert_file``/``client_key_file`` are what this helper uses to probe the health of
    a server that requires client certificates (``client_cert_auth``).
    """

    cert_file: str
    key_file: str
    ca_file: str
    client_cert_auth: bool = False
    client_cert_file: str = ""
    client_key_file: str = ""


_live: weakref.WeakSet[EtcdServer] = weakref.WeakSet()
_live_lock = threading.Lock()


def _kill_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        server.close()


atexit.register(_kill_all)


def _reap(proc: subprocess.Popen[bytes] | None, base_dir: Path, owns_dir: bool) -> None:
    """Finalizer: never leave a process or a directory behind."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if owns_dir:
        shutil.rmtree(base_dir, ignore_errors=True)


class EtcdServer:
    """One etcd member on 127.0.0.1 with its own data directory.

    Construction only picks ports and a directory; :meth:`start` runs etcd and waits until
    it reports healthy. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        name: str = "stolon-test",
        base_dir: str | Path | None = None,
        tls: EtcdTLS | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self.binary = binary or find_etcd_binary()
        self.name = name
        self.tls = tls
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self._owns_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="stolon-etcd-") if base_dir is None else base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "etcd.log"
        self.client_port, self.peer_port = free_ports(2)
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._started_once = False
        self._lock = threading.RLock()
        self._finalizer = weakref.finalize(self, _reap, None, self.base_dir, self._owns_dir)
        with _live_lock:
            _live.add(self)

    # -- addresses ---------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The client URLs, for ``StoreConfig.endpoints`` and ``etcdctl --endpoints``."""
        return (self.client_url,)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def frozen(self) -> bool:
        return self._frozen and self.running

    # -- lifecycle ---------------------------------------------------------------------------
    def _command(self) -> list[str]:
        cmd = [
            self.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            f"{self.name}={self.peer_url}",
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            f"stolon-test-{self.client_port}",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            "warn",
            # a lone member elects itself after one election timeout: keep restarts fast
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "250",
        ]
        if self.tls is not None:
            cmd += ["--cert-file", self.tls.cert_file, "--key-file", self.tls.key_file]
            if self.tls.client_cert_auth:
                cmd += ["--client-cert-auth", "--trusted-ca-file", self.tls.ca_file]
        return cmd + list(self.extra_args)

    def start(self) -> None:
        """Start etcd (same ports and data as before) and wait until it is healthy."""
        with self._lock:
            if self.running:
                self.thaw()
                return
            attempts = 1 if self._started_once else 3
            for attempt in range(attempts):
                self._spawn()
                try:
                    self._wait_healthy()
                    break
                except RuntimeError:
                    port_taken = "address already in use" in self.log_tail()
                    self._terminate(signal.SIGKILL)
                    if not port_taken or attempt == attempts - 1:
                        raise
                    # another process took a port between picking and binding: pick again
                    shutil.rmtree(self.data_dir, ignore_errors=True)
                    self.client_port, self.peer_port = free_ports(2)
            self._started_once = True

    def _spawn(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                preexec_fn=die_with_parent_preexec(),  # noqa: PLW1509
            )
        finally:
            log.close()
        self._frozen = False
        # re-arm the finalizer on the new process
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _reap, self._proc, self.base_dir, self._owns_dir)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise RuntimeError(f"etcd exited with {code} while starting:\n{self.log_tail()}")
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd not healthy after {self.startup_timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=self.tls.ca_file)
        if self.tls.client_cert_file:
            ctx.load_cert_chain(self.tls.client_cert_file, self.tls.client_key_file)
        return ctx

    def healthy(self, timeout: float = 1.0) -> bool:
        """Whether etcd answers ``/health`` with ``true`` (it has a leader and serves)."""
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=timeout, context=self._ssl_context()
            ) as resp:
                return bool(json.load(resp).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``); the data directory stays."""
        with self._lock:
            self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL and wait: a crash. The data directory stays."""
        with self._lock:
            self._terminate(signal.SIGKILL)

    def _terminate(self, sig: signal.Signals, timeout: float = 10.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a frozen process can't handle SIGTERM
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._frozen = False

    def freeze(self) -> None:
        """SIGSTOP: etcd keeps its sockets but answers nothing (a hung member)."""
        with self._lock:
            if self._proc is None or not self.running:
                raise RuntimeError("etcd is not running")
            self._proc.send_signal(signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        with self._lock:
            if self._proc is not None and self.running:
                self._proc.send_signal(signal.SIGCONT)
            self._frozen = False

    def ensure_running(self) -> None:
        """Back to a healthy, unfrozen server, whatever a test did to it."""
        with self._lock:
            self.thaw()
            if not self.running:
                self.start()
            elif not self.healthy(timeout=2.0):
                self._wait_healthy()

    def close(self) -> None:
        """Stop etcd and remove the directory this server created."""
        with self._lock:
            self._terminate(signal.SIGTERM)
            self._finalizer()  # removes the directory (if ours) exactly once
            with _live_lock:
                _live.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no etcd log)"
        return "\n".join(text.splitlines()[-lines:])

    def etcdctl(self, *args: str, check: bool = True, timeout: float = 15.0) -> str:
        """Run ``etcdctl`` (API v3) against this server; returns stdout."""
        etcdctl = shutil.which(
            "etcdctl", path=f"{Path(self.binary).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        )
        if etcdctl is None:
            raise EtcdNotFoundError("no etcdctl binary next to etcd or in PATH")
        cmd = [etcdctl, "--endpoints", self.client_url]
        if self.tls is not None:
            cmd += ["--cacert", self.tls.ca_file]
            if self.tls.client_cert_file:
                cmd += ["--cert", self.tls.client_cert_file, "--key", self.tls.client_key_file]
        env = {**os.environ, "ETCDCTL_API": "3"}
        done = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running" if self.running else "stopped"
        return f"<EtcdServer {self.client_url} {state} {self.base_dir}>"


__all__ = [
    "ETCD_BIN_ENV",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdTLS",
    "find_etcd_binary",
    "free_ports",
]
