"""A 3-node Patroni cluster with HAProxy in front, for side-by-side benchmarks.

Patroni (PyPI ``patroni[etcd3]``, pinned to :data:`PATRONI_VERSION`) lives in its own venv made
from ``/usr/bin/python3`` under ``/opt/stolon-bench/patroni`` (not under ``/root``: the
``postgres`` OS user must be able to execute it, and ``/root`` is mode 0700). Each node runs
Patroni as the PostgreSQL OS user (PostgreSQL refuses root) on free 127.0.0.1 ports, with its
own data directory, against a given etcd (v3 API). HAProxy (Debian's ``haproxy``) routes a
listener to the node whose Patroni REST API answers ``GET /primary`` with 200, the setup from
Patroni's documentation, with ``on-marked-down shutdown-sessions``.

Everything :class:`PatroniCluster` starts, :meth:`PatroniCluster.stop` stops (Patroni,
then any postmaster left behind, then HAProxy) and its directory is removed. Nothing here
is used by stolon itself.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from stolon.netutil import free_port

PATRONI_VERSION = "4.1.5"
DEFAULT_VENV = Path("/opt/stolon-bench/patroni")
SYSTEM_PYTHON = "/usr/bin/python3"
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_OS_USER = "postgres"
SU_USER = "postgres"
REPL_USER = "repl"

#: the roles ``GET /cluster`` gives a synchronous standby (Patroni 3/4; quorum mode)
SYNC_ROLES = frozenset({"sync_standby", "quorum_standby"})


class PatroniUnavailable(RuntimeError):
    """Patroni or HAProxy can't be used here; the message says why and what to do."""


@dataclass(frozen=True)
class PatroniTimings:
    """Patroni's DCS timings and HAProxy's health check of the REST API."""

    ttl: int
    loop_wait: int
    retry_timeout: int
    check_inter: str
    check_fall: int
    check_rise: int

    def describe(self) -> str:
        return (
            f"ttl {self.ttl}s, loop_wait {self.loop_wait}s, retry_timeout {self.retry_timeout}s;"
            f" HAProxy check every {self.check_inter}, fall {self.check_fall}, rise {self.check_rise}"
        )


#: Patroni's defaults, and HAProxy as in Patroni's documented haproxy.cfg
PATRONI_DEFAULT = PatroniTimings(30, 10, 10, "3s", 3, 2)
#: As tight as Patroni allows: ttl's floor is 20 s (Patroni raises a lower value to 20), with
#: loop_wait + 2 * retry_timeout <= ttl; HAProxy checks every second like a 1 s proxyCheckInterval
PATRONI_TIGHT = PatroniTimings(20, 1, 3, "1s", 2, 1)


# -- installation -----------------------------------------------------------------------------
def patroni_bin(venv: Path = DEFAULT_VENV) -> Path:
    return venv / "bin" / "patroni"


def installed_version(venv: Path = DEFAULT_VENV) -> str | None:
    exe = patroni_bin(venv)
    if not exe.exists():
        return None
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return parts[-1] if out.returncode == 0 and parts else None


def ensure_patroni(venv: Path = DEFAULT_VENV, install: bool = True) -> Path:
    """The patroni executable of ``venv``, creating the venv (pip) if ``install`` and needed."""
    if installed_version(venv) == PATRONI_VERSION:
        return patroni_bin(venv)
    if not install:
        raise PatroniUnavailable(
            f"patroni {PATRONI_VERSION} is not installed in {venv}: run with --setup-patroni"
        )
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise PatroniUnavailable(f"no {SYSTEM_PYTHON} to make the Patroni venv from")
    venv.parent.mkdir(parents=True, exist_ok=True)
    for d in (venv.parent, *venv.parent.parents):
        if d == Path("/"):
            break
        if os.stat(d).st_mode & 0o001 == 0:
            raise PatroniUnavailable(
                f"{d} is not searchable by others: the {PG_OS_USER} user could not run Patroni from {venv}"
            )
    steps = [
        [SYSTEM_PYTHON, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", f"patroni[etcd3,psycopg3]=={PATRONI_VERSION}"],
    ]
    for argv in steps:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if res.returncode != 0:
            raise PatroniUnavailable(f"{' '.join(argv)} failed: {(res.stderr or res.stdout).strip()[-800:]}")
    os.chmod(venv, 0o755)
    if installed_version(venv) != PATRONI_VERSION:
        raise PatroniUnavailable(f"patroni {PATRONI_VERSION} did not install in {venv}")
    return patroni_bin(venv)


def ensure_haproxy(install: bool = True) -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PatroniUnavailable("haproxy is not installed: apt-get install haproxy (as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    res = subprocess.run(
        ["apt-get", "install", "-y", "-q", "haproxy"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if res.returncode != 0 or not found:
        raise PatroniUnavailable(
            f"apt-get install haproxy failed: {(res.stderr or res.stdout).strip()[-800:]}"
        )
    return found


# -- the cluster ------------------------------------------------------------------------------
@dataclass
class PatroniNode:
    name: str
    dir: Path
    pg_port: int
    rest_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def config_path(self) -> Path:
        return self.dir / "patroni.json"

    @property
    def log_path(self) -> Path:
        return self.dir / "patroni.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class PatroniCluster:
    base: Path
    etcd_hosts: list[str]  # host:port
    timings: PatroniTimings = PATRONI_DEFAULT
    synchronous: bool = False
    patroni: Path = field(default_factory=patroni_bin)
    haproxy: str = "haproxy"
    pg_bin: str = PG_BIN
    size: int = 3
    scope: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    nodes: dict[str, PatroniNode] = field(default_factory=dict)
    haproxy_port: int = 0
    haproxy_proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        self._su_password = secrets.token_urlsafe(18)
        self._repl_password = secrets.token_urlsafe(18)
        self._user = pwd.getpwnam(PG_OS_USER) if os.geteuid() == 0 else None
        for i in range(self.size):
            name = f"patroni{i}"
            node = PatroniNode(name, self.base / name, free_port(), free_port())
            node.dir.mkdir(mode=0o700)
            if self._user is not None:
                os.chown(node.dir, self._user.pw_uid, self._user.pw_gid)
            self.nodes[name] = node
        self.haproxy_port = free_port()

    # -- configuration ----------------------------------------------------------------------
    def _config(self, node: PatroniNode) -> dict[str, Any]:
        t = self.timings
        return {
            "scope": self.scope,
            "namespace": "/stolon-bench/",
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{node.rest_port}",
                "connect_address": f"127.0.0.1:{node.rest_port}",
            },
            "etcd3": {"hosts": self.etcd_hosts},
            "bootstrap": {
                "dcs": {
                    "ttl": t.ttl,
                    "loop_wait": t.loop_wait,
                    "retry_timeout": t.retry_timeout,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": self.synchronous,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_log_hints": "on",
                            "max_connections": 100,
                            "wal_keep_size": "128MB",
                            "log_min_messages": "warning",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": self.pg_bin,
                "pgpass": str(node.dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": SU_USER, "password": self._su_password},
                    "replication": {"username": REPL_USER, "password": self._repl_password},
                    "rewind": {"username": SU_USER, "password": self._su_password},
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 scram-sha-256",
                    f"host replication {REPL_USER} 127.0.0.1/32 scram-sha-256",
                ],
                "parameters": {"unix_socket_directories": str(node.dir)},
            },
        }

    def _write_private(self, path: Path, text: str) -> None:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _haproxy_config(self) -> str:
        t = self.timings
        servers = "\n".join(
            f"    server {n.name} 127.0.0.1:{n.pg_port} maxconn 100 check port {n.rest_port}"
            for n in self.nodes.values()
        )
        return f"""global
    maxconn 300

defaults
    mode tcp
    retries 1
    timeout connect 4s
    timeout client 30m
    timeout server 30m
    timeout check 2s

listen primary
    bind 127.0.0.1:{self.haproxy_port}
    option httpchk
    http-check send meth GET uri /primary
    http-check expect status 200
    default-server inter {t.check_inter} fall {t.check_fall} rise {t.check_rise} on-marked-down shutdown-sessions
{servers}
"""

    # -- processes --------------------------------------------------------------------------
    def start(self) -> None:
        for node in self.nodes.values():
            self._write_private(node.config_path, json.dumps(self._config(node), indent=2) + "\n")
            self.start_node(node.name)
        cfg = self.base / "haproxy.cfg"
        cfg.write_text(self._haproxy_config())
        check = subprocess.run(
            [self.haproxy, "-c", "-q", "-f", str(cfg)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses {cfg}: {check.stderr.strip() or check.stdout.strip()}")
        with open(self.base / "haproxy.log", "ab") as out:
            self.haproxy_proc = subprocess.Popen(
                [self.haproxy, "-db", "-f", str(cfg)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def start_node(self, name: str) -> None:
        node = self.nodes[name]
        if node.alive:
            return
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(node.dir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        kwargs: dict[str, Any] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        with open(node.log_path, "ab") as out:
            node.proc = subprocess.Popen(
                [str(self.patroni), str(node.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=node.dir,
                start_new_session=True, **kwargs,
            )  # fmt: skip

    def postmaster_pid(self, name: str) -> int | None:
        try:
            first = (self.nodes[name].data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first)
            os.kill(pid, 0)
            return pid if pid > 1 else None
        except (OSError, ValueError, IndexError):
            return None

    def kill_postmaster(self, name: str) -> int | None:
        pid = self.postmaster_pid(name)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pid

    def kill_node(self, name: str) -> None:
        """SIGKILL Patroni and its postmaster together (a machine dying)."""
        node = self.nodes[name]
        pid = self.postmaster_pid(name)
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_postmaster_gone(name, pid, 30)

    def _wait_postmaster_gone(self, name: str, pid: int | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every Patroni (each stops its PostgreSQL), kill leftovers, stop HAProxy, clean up."""
        try:
            for node in self.nodes.values():
                if node.alive and node.proc is not None:
                    node.proc.send_signal(signal.SIGTERM)
            for node in self.nodes.values():
                if node.proc is not None:
                    try:
                        node.proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        node.proc.kill()
                        node.proc.wait()
            for name in self.nodes:
                pid = self.kill_postmaster(name)
                self._wait_postmaster_gone(name, pid, 30)
            if self.haproxy_proc is not None and self.haproxy_proc.poll() is None:
                self.haproxy_proc.terminate()
                try:
                    self.haproxy_proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.haproxy_proc.kill()
                    self.haproxy_proc.wait()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- observing --------------------------------------------------------------------------
    def rest(self, name: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        node = self.nodes[name]
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{node.rest_port}{path}",
            data=data,
            method="POST" if body is not None else "GET",
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode()
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def members(self) -> list[dict[str, Any]] | None:
        """``GET /cluster`` from the first live node that answers."""
        for name, node in self.nodes.items():
            if not node.alive:
                continue
            try:
                got = self.rest(name, "/cluster", timeout=2.0)
            except (OSError, urllib.error.URLError):
                continue
            if isinstance(got, dict):
                return list(got.get("members") or [])
        return None

    def leader(self) -> str | None:
        for m in self.members() or []:
            if m.get("role") == "leader" and m.get("state") == "running":
                return str(m.get("name"))
        return None

    def healthy(self) -> tuple[bool, str]:
        members = self.members()
        if members is None:
            return False, "no Patroni REST API answers"
        leaders = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
        streaming = [m for m in members if m.get("role") != "leader" and m.get("state") == "streaming"]
        if len(leaders) != 1:
            return False, "waiting for a leader"
        if len(streaming) < self.size - 1:
            return False, f"{len(streaming)}/{self.size - 1} replicas streaming"
        if self.synchronous and not any(m.get("role") in SYNC_ROLES for m in streaming):
            # in synchronous_mode only a synchronous standby may be promoted: a fault
            # injected before Patroni named one would never fail over
            return False, "waiting for Patroni to name a synchronous standby"
        try:
            with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False, "waiting for HAProxy to route to the leader"
        if row is None or row[0]:
            return False, "HAProxy routes to a replica"
        return True, "healthy"

    def wait_healthy(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        what = ""
        while time.monotonic() < deadline:
            ok, what = self.healthy()
            if ok:
                return
            for node in self.nodes.values():
                if node.proc is not None and node.proc.poll() not in (None, 0, -9):
                    raise RuntimeError(
                        f"{node.name} exited with status {node.proc.returncode}: {self.log_tail(node.name)}"
                    )
            time.sleep(0.5)
        raise TimeoutError(f"the Patroni cluster is not healthy after {timeout:g}s: {what}")

    def log_tail(self, name: str, chars: int = 2000) -> str:
        try:
            return self.nodes[name].log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def switchover(self, leader: str, timeout: float = 120.0) -> tuple[bool, str]:
        """``POST /switchover`` to the leader; Patroni answers once it saw a new leader."""
        try:
            got = self.rest(leader, "/switchover", {"leader": leader}, timeout=timeout)
            return True, str(got)
        except urllib.error.HTTPError as e:
            return False, f"HTTP {e.code}: {e.read().decode(errors='replace')}"
        except (OSError, urllib.error.URLError) as e:
            return False, str(e)

    def dsn(self) -> str:
        return (
            f"host=127.0.0.1 port={self.haproxy_port} user={SU_USER} dbname=postgres"
            f" password={self._su_password}"
        )
