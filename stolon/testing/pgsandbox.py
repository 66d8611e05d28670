"""Throw-away PostgreSQL instances for tests and for plugin authors' contract tests.

A :class:`PgSandbox` is a fresh directory under ``/tmp`` that PostgreSQL's OS user owns
(``postgres`` when the tests run as root, else the current user); :meth:`PgSandbox.primary`
initialises and starts an instance in it the way the keeper does (generated
postgresql.conf and pg_hba.conf, superuser and replication roles with passwords). Closing
the sandbox stops every instance it made and removes the directory.

PostgreSQL binaries are found like the keeper finds them (``PATH``, then Debian's
``/usr/lib/postgresql/<major>/bin``); :func:`find_binaries_or_skip` and
:func:`pg_os_user_or_skip` skip a pytest test with the reason when there are none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stolon.netutil import free_port
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.credentials import AuthMethod, Credentials
from stolon.postgres.errors import BinaryNotFoundError, OSUserError
from stolon.postgres.instance import Instance
from stolon.postgres.runas import OSUser, resolve_pg_os_user

SU_USER = "stolon_su"
SU_PASSWORD = "sandbox-su-secret"
REPL_USER = "repl"
REPL_PASSWORD = "sandbox-repl-secret"

#: Parameters that keep a test instance small and quick.
FAST_PARAMETERS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "on",
    "shared_buffers": "16MB",
    "max_connections": "30",
    "max_wal_senders": "5",
    "wal_level": "replica",
    "listen_addresses": "127.0.0.1",
    "log_min_messages": "warning",
}


def open_sandbox(prefix: str = "stolon-sandbox-") -> PgSandbox:
    """A sandbox with the binaries and OS user found as the keeper finds them (outside
    pytest, e.g. the benchmarks); :class:`BinaryNotFoundError` or :class:`OSUserError` say
    what is missing."""
    return PgSandbox(PgBinaries.find(), resolve_pg_os_user(os.environ.get("STOLON_TEST_PG_OS_USER")), prefix)


def find_binaries_or_skip() -> PgBinaries:
    """The PostgreSQL binaries; skip the test without them (fail under
    ``STOLON_TESTS_REQUIRE=postgres``)."""
    from stolon.testing.requirements import tool_missing  # imports pytest

    try:
        return PgBinaries.find()
    except BinaryNotFoundError as e:
        tool_missing("postgres", f"PostgreSQL binaries not found ({e}): install PostgreSQL 12 or later")


def pg_os_user_or_skip() -> OSUser:
    """The OS user PostgreSQL runs as; skip the test without one (fail under
    ``STOLON_TESTS_REQUIRE=postgres``)."""
    from stolon.testing.requirements import tool_missing  # imports pytest

    try:
        return resolve_pg_os_user(os.environ.get("STOLON_TEST_PG_OS_USER"))
    except OSUserError as e:
        tool_missing("postgres", f"no usable OS user for PostgreSQL: {e}")


def lease_module_or_skip(binaries: PgBinaries) -> Path:
    """The ``stolon_lease`` module of these binaries; skip the test without it (fail under
    ``STOLON_TESTS_REQUIRE=pglease``)."""
    from stolon.postgres.lease import LIBRARY, library_dirs
    from stolon.testing.requirements import tool_missing  # imports pytest

    dirs = library_dirs(binaries)
    for d in dirs:
        if (d / f"{LIBRARY}.so").is_file():
            return d / f"{LIBRARY}.so"
    tool_missing(
        "pglease",
        f"the stolon_lease PostgreSQL module is not installed in {dirs[-1]}"
        " (scripts/setup --tests as root builds it: contrib/pg_stolon_lease)",
    )


class PgSandbox:
    def __init__(self, binaries: PgBinaries, os_user: OSUser, prefix: str = "stolon-sandbox-") -> None:
        self.binaries = binaries
        self.os_user = os_user
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(self.dir, 0o700)
        os_user.chown(self.dir)
        self.instances: list[Instance] = []

    @property
    def pg_major(self) -> int:
        return self.binaries.version().major

    def path(self, name: str) -> Path:
        """A directory ``name`` in the sandbox (created, the PostgreSQL user's, 0700)."""
        p = self.dir / name
        p.mkdir(mode=0o700, exist_ok=True)
        self.os_user.chown(p)
        return p

    def instance(self, name: str, *, data_dir: Path | None = None) -> Instance:
        """An :class:`Instance` (not initialised) with the sandbox's credentials."""
        home = self.path(name)
        inst = Instance(
            data_dir or home / "postgres",
            self.binaries,
            self.os_user,
            port=free_port(),
            socket_dir=home / "run",
            superuser=Credentials(SU_USER, SU_PASSWORD, AuthMethod.MD5),
            replication=Credentials(REPL_USER, REPL_PASSWORD, AuthMethod.MD5),
            request_timeout=15.0,
            log_file=self.dir / f"{name}.log",
        )
        self.instances.append(inst)
        return inst

    def parameters(self, inst: Instance, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **FAST_PARAMETERS,
            "port": str(inst.port),
            "unix_socket_directories": str(inst.socket_dir),
            **(extra or {}),
        }

    def primary(self, name: str, parameters: Mapping[str, str] | None = None) -> Instance:
        """initdb, configure with ``parameters`` on top of :data:`FAST_PARAMETERS`, start,
        create the roles."""
        inst = self.instance(name)
        inst.initdb(no_sync=True)
        inst.set_config(parameters=self.parameters(inst, parameters))
        inst.start()
        inst.wait_ready(60)
        inst.setup_roles()
        return inst

    def log(self, name: str) -> str:
        p = self.dir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        for inst in self.instances:
            try:
                inst.stop("immediate", timeout=30)
            except Exception as e:  # teardown goes on
                print(f"sandbox teardown: stopping {inst} failed: {e}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgSandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
