"""Fixtures for the PostgreSQL control layer tests.

Tests needing a real server use the ``pg`` fixture: it skips with a clear reason when no
PostgreSQL binaries are installed. Data directories live in a sandbox under /tmp owned by
the PostgreSQL OS user (pytest's own tmp dirs are 0700 root-owned, unreachable for it);
every instance a test makes is stopped and the sandbox removed at teardown.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stolon.netutil import free_port
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.credentials import AuthMethod, Credentials
from stolon.postgres.errors import BinaryNotFoundError, OSUserError
from stolon.postgres.instance import Instance
from stolon.postgres.parameters import ParameterInputs, build_parameters
from stolon.postgres.runas import OSUser, resolve_pg_os_user
from stolon.testing.requirements import tool_missing

SU_PASSWORD = "su pass'with\\odd:chars"
REPL_PASSWORD = "repl-secret-42"
PR_SET_CHILD_SUBREAPER = 36


def _find_binaries() -> PgBinaries | None:
    try:
        return PgBinaries.find()
    except BinaryNotFoundError:
        return None


@dataclass
class PgEnv:
    binaries: PgBinaries
    os_user: OSUser
    sandbox: Path
    instances: list[Instance] = field(default_factory=list)
    su_password: str = SU_PASSWORD
    repl_password: str = REPL_PASSWORD

    def instance(
        self,
        name: str,
        *,
        su_auth: AuthMethod = AuthMethod.MD5,
        repl_auth: AuthMethod = AuthMethod.MD5,
        su_user: str = "stolon_su",
        repl_user: str = "repl",
        port: int | None = None,
    ) -> Instance:
        port = port or free_port()
        su = Credentials(su_user, None if su_auth is AuthMethod.TRUST else SU_PASSWORD, su_auth)
        if repl_user == su_user:
            repl = su
        else:
            repl = Credentials(repl_user, None if repl_auth is AuthMethod.TRUST else REPL_PASSWORD, repl_auth)
        inst = Instance(
            self.sandbox / name / "postgres",
            self.binaries,
            self.os_user,
            port=port,
            socket_dir=self.sandbox / name / "run",
            superuser=su,
            replication=repl,
            request_timeout=10.0,
            log_file=self.sandbox / f"{name}.log",
        )
        (self.sandbox / name).mkdir(exist_ok=True)
        self.os_user.chown(self.sandbox / name)
        self.instances.append(inst)
        return inst

    def parameters(
        self,
        inst: Instance,
        *,
        use_pg_rewind: bool = False,
        synchronous_standbys: tuple[str, ...] = (),
        user: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Parameters as the keeper builds them, plus test speed-ups."""
        inputs = ParameterInputs(
            pg_major=self.binaries.version().major,
            socket_dir=str(inst.socket_dir),
            listen_address="127.0.0.1",
            port=inst.port,
            max_standbys=5,
            additional_wal_senders=5,
            use_pg_rewind=use_pg_rewind,
            user_parameters={
                "fsync": "off",
                "shared_buffers": "16MB",
                "max_connections": "30",
                **(user or {}),
            },
            synchronous_replication=bool(synchronous_standbys),
            synchronous_standbys=synchronous_standbys,
        )
        return build_parameters(inputs)

    def new_primary(
        self,
        name: str,
        *,
        use_pg_rewind: bool = False,
        su_auth: AuthMethod = AuthMethod.MD5,
        repl_auth: AuthMethod = AuthMethod.MD5,
        su_user: str = "stolon_su",
        repl_user: str = "repl",
        user: dict[str, str] | None = None,
    ) -> Instance:
        """initdb + configure + start + roles, as the keeper's init mode ``new`` does."""
        inst = self.instance(name, su_auth=su_auth, repl_auth=repl_auth, su_user=su_user, repl_user=repl_user)
        inst.initdb(no_sync=True)
        inst.set_config(parameters=self.parameters(inst, use_pg_rewind=use_pg_rewind, user=user))
        inst.start()
        inst.wait_ready(30)
        inst.setup_roles()
        return inst

    def log(self, name: str) -> str:
        p = self.sandbox / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture(scope="session")
def pg_binaries() -> PgBinaries:
    b = _find_binaries()
    if b is None:
        tool_missing(
            "postgres",
            "PostgreSQL binaries not found (no postgres in PATH nor in "
            "/usr/lib/postgresql/*/bin): install PostgreSQL 12+ to run these tests",
        )
    return b


@pytest.fixture(scope="session")
def pg_os_user() -> OSUser:
    try:
        return resolve_pg_os_user(os.environ.get("STOLON_TEST_PG_OS_USER"))
    except OSUserError as e:
        tool_missing("postgres", f"no usable OS user for PostgreSQL: {e}")


@contextmanager
def sandboxed_env(binaries: PgBinaries, os_user: OSUser, prefix: str = "stolon-pgtest-") -> Iterator[PgEnv]:
    """A PgEnv in a fresh /tmp directory owned by the PostgreSQL user; its instances are
    stopped and its files removed on exit."""
    sandbox = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(sandbox, 0o700)
    os_user.chown(sandbox)
    env = PgEnv(binaries, os_user, sandbox)
    try:
        yield env
    finally:
        for inst in env.instances:
            try:
                inst.stop("immediate", timeout=30)
            except Exception as e:  # teardown must go on
                print(f"teardown: stopping {inst} failed: {e}")
        shutil.rmtree(sandbox, ignore_errors=True)


@pytest.fixture
def pg(pg_binaries: PgBinaries, pg_os_user: OSUser) -> Iterator[PgEnv]:
    with sandboxed_env(pg_binaries, pg_os_user) as env:
        yield env


@pytest.fixture
def run_script() -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Start a Python child running a script (killed at teardown if still alive)."""
    procs: list[subprocess.Popen[str]] = []

    def start(code: str) -> subprocess.Popen[str]:
        import sys

        p = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        if p.stdout:
            p.stdout.close()
        if p.stderr:
            p.stderr.close()


@pytest.fixture
def subreaper() -> Iterator[Callable[[int], None]]:
    """Make this process the reaper of orphaned descendants for the test's duration.

    Tests that kill a parent (the "keeper") leave its children orphaned; without this they
    would be re-parented to PID 1, which in a container may never reap them. The test
    passes the pids it expects to adopt; they are reaped (waited for) at teardown.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("PR_SET_CHILD_SUBREAPER not available")
    adopted: list[int] = []
    try:
        yield adopted.append
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        deadline = time.monotonic() + 15
        for pid in adopted:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break  # not (or no longer) our child
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
