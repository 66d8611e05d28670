"""The ``stolon_lease`` module (contrib/pg_stolon_lease) in a real PostgreSQL.

A server that loads it refuses the commit of a client transaction that wrote once the
lease in its file has lapsed, and when the file is missing, malformed or from another
boot (fail closed); read-only transactions never read the file. The last test is the
case the module exists for: a paused machine (postmaster and every backend SIGSTOPped)
whose clients sent writes during the pause, resumed after the lease lapsed.

Skipped when the module is not installed (``scripts/setup --tests`` as root builds it);
failed instead under ``STOLON_TESTS_REQUIRE=pglease``.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import pq

from stolon.postgres import lease
from stolon.postgres.instance import Instance
from stolon.postgres.lease import LeaseFile
from stolon.testing.chaos import instance_pids
from stolon.testing.pgsandbox import lease_module_or_skip

if TYPE_CHECKING:
    from psycopg.pq.abc import PGresult

    from tests.postgres.conftest import PgEnv

pytestmark = pytest.mark.integration

LEASE_ERROR = "stolon: this server's master lease expired"


@dataclass
class LeasedServer:
    inst: Instance
    lease: LeaseFile

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        p = self.inst.admin_params()
        return psycopg.connect(
            host=p.host, port=p.port, user=p.user, password=p.password, dbname=p.dbname, autocommit=True
        )

    def grant(self, seconds: float) -> int:
        """A lease lapsing ``seconds`` from now (negative: already lapsed); its deadline."""
        deadline = lease.to_ns(time.monotonic() + seconds)
        self.lease.write(deadline)
        return deadline


@pytest.fixture
def leased(pg: PgEnv) -> Iterator[LeasedServer]:
    lease_module_or_skip(pg.binaries)
    lf = LeaseFile(pg.sandbox / lease.LEASE_FILE, pg.os_user, pg.binaries)
    lf.write(lease.FAR_FUTURE_NS)  # the roles are created after the start: a write
    inst = pg.new_primary(
        "leased",
        user=lease.with_lease({"max_prepared_transactions": "2"}, str(lf.path)),
    )
    server = LeasedServer(inst, lf)
    with server.connect() as conn:
        conn.execute("CREATE TABLE t (id int)")
    yield server


def refused(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> str:
    """Run ``sql``: it must be refused by the lease; the error's detail."""
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as e:
        conn.execute(sql)
    assert LEASE_ERROR in str(e.value)
    return e.value.diag.message_detail or ""


def count(server: LeasedServer) -> int:
    with server.connect() as conn:
        row = conn.execute("SELECT count(*) FROM t").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_write_commits_only_under_a_valid_lease(leased: LeasedServer) -> None:
    with leased.connect() as conn:
        assert conn.execute("SHOW stolon_lease.file").fetchone() == (str(leased.lease.path),)
        leased.grant(60)
        conn.execute("INSERT INTO t VALUES (1)")

        leased.grant(-0.5)
        assert "lapsed" in refused(conn, "INSERT INTO t VALUES (2)")
        # an explicit transaction: refused at COMMIT, and rolled back
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (3)")
        refused(conn, "COMMIT")
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        # two-phase commit: refused at PREPARE TRANSACTION
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (4)")
        refused(conn, "PREPARE TRANSACTION 'p1'")

        leased.lease.write(lease.REVOKED_NS)
        assert "revoked" in refused(conn, "INSERT INTO t VALUES (5)")

        leased.grant(60)
        conn.execute("INSERT INTO t VALUES (6)")
    assert count(leased) == 2


def test_read_only_transactions_never_read_the_lease(leased: LeasedServer) -> None:
    leased.grant(-1)
    with leased.connect() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
        conn.execute("BEGIN")
        conn.execute("SELECT 1")
        conn.execute("SAVEPOINT s")
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("ROLLBACK")  # an abort writes nothing either


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (None, "cannot be read: No such file or directory"),
        (b"", "malformed"),
        (b"soon\n", "malformed"),
        (b"99999999999999999999999 x\n", "malformed"),  # out of range
        (b"-5 " + lease.boot_id().encode() + b"\n", "malformed"),
        (str(lease.FAR_FUTURE_NS).encode() + b"\n", "malformed"),  # no boot id
        (f"{lease.FAR_FUTURE_NS} 00000000-0000-0000-0000-000000000000\n".encode(), "another boot"),
        (b"1" * 200, "too long"),
    ],
    ids=["missing", "empty", "word", "overflow", "negative", "no-boot-id", "other-boot", "too-long"],
)
def test_an_unusable_lease_file_refuses_commits(
    leased: LeasedServer, content: bytes | None, detail: str
) -> None:
    if content is None:
        leased.lease.path.unlink()
    else:
        from stolon.postgres import safefs

        safefs.write_file_atomic(leased.lease.path, content, owner=leased.inst.os_user, durable=False)
    with leased.connect() as conn:
        assert detail in refused(conn, "INSERT INTO t VALUES (1)")
    assert count(leased) == 0


def test_an_empty_setting_turns_the_check_off(leased: LeasedServer, pg: PgEnv) -> None:
    leased.grant(-1)
    params = dict(leased.inst.config.parameters)
    params[lease.FILE_PARAMETER] = ""
    leased.inst.set_config(parameters=params)
    leased.inst.reload(confirm_timeout=10)
    with leased.connect() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    assert count(leased) == 1


def _wait_stopped(pids: list[int]) -> None:
    """Until every pid is in the stopped state (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + 10
    for pid in pids:
        while True:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                break  # gone
            if state in ("T", "t"):
                break
            assert time.monotonic() < deadline, f"pid {pid} not stopped (state {state})"
            time.sleep(0.01)


def _result(conn: psycopg.Connection[tuple[object, ...]], timeout: float = 30) -> PGresult:
    """The result of the query sent with ``send_query`` (waits on the socket)."""
    pgconn = conn.pgconn
    deadline = time.monotonic() + timeout
    while pgconn.is_busy():
        left = deadline - time.monotonic()
        assert left > 0, "no answer from the server"
        select.select([pgconn.socket], [], [], left)
        pgconn.consume_input()
    res = pgconn.get_result()
    assert res is not None
    while pgconn.get_result() is not None:
        pass
    return res


def test_a_frozen_master_refuses_the_commits_sent_while_it_was_frozen(leased: LeasedServer) -> None:
    """A paused machine: every PostgreSQL process stopped while its clients send writes (an
    autocommit INSERT on one connection, the COMMIT of an open write transaction on
    another); the lease lapses during the pause; on resume both commits are refused,
    first thing (no other process had the time to act: no keeper here)."""
    with leased.connect() as auto, leased.connect() as tx:
        tx.execute("BEGIN")
        tx.execute("INSERT INTO t VALUES (1)")
        deadline = leased.grant(1.0)
        pm = leased.inst.postmaster_pid
        assert pm is not None
        os.kill(pm, signal.SIGSTOP)  # first: a stopped postmaster forks nothing more
        pids = instance_pids(pm)
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pids)
            for conn, sql in ((auto, b"INSERT INTO t VALUES (2)"), (tx, b"COMMIT")):
                conn.pgconn.send_query(sql)
                while conn.pgconn.flush() != 0:  # all of it in the server's socket buffer
                    select.select([], [conn.pgconn.socket], [], 1)
            while time.monotonic_ns() <= deadline:  # the lease lapses during the pause
                time.sleep(0.05)
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        for conn in (auto, tx):
            res = _result(conn)
            assert res.status == pq.ExecStatus.FATAL_ERROR, res.status
            assert res.error_field(pq.DiagnosticField.SQLSTATE) == b"25006"
            message = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            assert LEASE_ERROR in message
    assert count(leased) == 0
