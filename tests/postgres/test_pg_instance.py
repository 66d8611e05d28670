"""One real PostgreSQL instance: init, start/stop/reload, auth, config files, state, slots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from stolon.keeper.pgstate import collect_state
from stolon.postgres import datadir, slots, state
from stolon.postgres.credentials import AuthMethod
from stolon.postgres.datadir import LocalRole
from stolon.postgres.errors import (
    DataDirError,
    InstanceRunningError,
    NotReadyError,
    QueryError,
    QueryTimeoutError,
    StartError,
)
from stolon.postgres.lsn import is_wal_file_name
from stolon.postgres.runas import run_command

if TYPE_CHECKING:
    from tests.postgres.conftest import PgEnv

pytestmark = pytest.mark.integration


def _tcp(
    port: int, user: str, password: str | None, replication: str | None = None
) -> psycopg.Connection[tuple[Any, ...]]:
    extra = f" replication={replication}" if replication else ""
    return psycopg.connect(
        f"host=127.0.0.1 port={port} dbname=postgres connect_timeout=5{extra}",
        user=user,
        password=password or "",
        autocommit=True,
    )


def _owned_by(root: Path, uid: int) -> list[str]:
    """Paths under ``root`` not owned by ``uid``."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.lstat(p).st_uid != uid:
                bad.append(p)
    return bad


@pytest.mark.parametrize("method", [AuthMethod.MD5, AuthMethod.SCRAM_SHA_256])
def test_initdb_start_and_login(pg: PgEnv, method: AuthMethod) -> None:
    inst = pg.new_primary("a", su_auth=method, repl_auth=method, user={"log_statement": "all"})
    assert inst.is_initialized()
    assert inst.is_running()
    assert inst.local_role() is LocalRole.MASTER
    assert inst.data_version().major == pg.binaries.version().major
    assert _owned_by(inst.data_dir, pg.os_user.uid) == []

    prefix = "SCRAM-SHA-256$" if method is AuthMethod.SCRAM_SHA_256 else "md5"
    with inst.connect_admin() as conn:
        rows = conn.execute(
            "SELECT rolname, rolpassword, rolreplication, rolsuper FROM pg_authid"
            " WHERE rolname IN ('stolon_su', 'repl') ORDER BY rolname"
        ).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [("repl", True, False), ("stolon_su", True, True)]
    assert all(r[1].startswith(prefix) for r in rows), [r[1][:14] for r in rows]

    # superuser over TCP (host rules), the replication user as a walsender
    with _tcp(inst.port, "stolon_su", pg.su_password) as c:
        assert c.execute("SELECT current_user").fetchone() == ("stolon_su",)
    with _tcp(inst.port, "repl", pg.repl_password, replication="true") as c:
        assert c.execute("IDENTIFY_SYSTEM").fetchone() is not None
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _tcp(inst.port, "stolon_su", "wrong")

    # neither password nor its verifier reaches the server log, despite log_statement=all
    inst.stop()
    log = pg.log("a")
    assert "CREATE ROLE" not in log
    for secret in (pg.su_password, pg.repl_password, rows[0][1], rows[1][1]):
        assert secret not in log
    assert "ALTER SYSTEM" not in log


def test_superuser_is_replication_user_and_trust(pg: PgEnv) -> None:
    inst = pg.new_primary("a", su_user="stolon", repl_user="stolon", su_auth=AuthMethod.TRUST)
    with inst.connect_admin() as conn:
        assert conn.execute(
            "SELECT rolreplication, rolpassword IS NULL FROM pg_authid WHERE rolname = 'stolon'"
        ).fetchone() == (True, True)
    with inst.connect_replication() as rconn:
        assert state.identify_system(rconn).timeline_id == 1
    with _tcp(inst.port, "stolon", None) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_stop_reload_restart_and_pending_restart(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    params = pg.parameters(inst)

    inst.set_config(parameters={**params, "work_mem": "7MB"})
    inst.reload()
    with inst.connect_admin() as conn:
        for _ in range(50):  # SIGHUP is asynchronous
            if conn.execute("SHOW work_mem").fetchone() == ("7MB",):
                break
            time.sleep(0.1)
        assert conn.execute("SHOW work_mem").fetchone() == ("7MB",)
        assert state.pending_restart(conn) == []

    inst.set_config(parameters={**params, "work_mem": "7MB", "max_connections": "31"})
    inst.reload()
    with inst.connect_admin() as conn:
        for _ in range(50):
            if state.pending_restart(conn):
                break
            time.sleep(0.1)
        assert state.pending_restart(conn) == ["max_connections"]
    assert inst.applied_config is not None
    assert inst.applied_config.parameters["max_connections"] == "31"

    pid = inst.postmaster_pid
    inst.restart()
    inst.wait_ready(30)
    assert inst.postmaster_pid not in (None, pid)
    with inst.connect_admin() as conn:
        assert conn.execute("SHOW max_connections").fetchone() == ("31",)
        assert state.pending_restart(conn) == []

    assert inst.stop() is True
    assert inst.is_running() is False
    assert inst.stop() is False
    with pytest.raises(NotReadyError):
        inst.wait_ready(0.5)


@pytest.mark.parametrize("fsync", ["on", "off"])
def test_alter_system_is_blocked_and_auto_conf_replaced(pg: PgEnv, fsync: str) -> None:
    inst = pg.new_primary("a", user={"fsync": fsync})
    auto = inst.data_dir / "postgresql.auto.conf"
    assert auto.is_symlink() and os.readlink(auto) == "/dev/null"
    blocked = r'could not open file "postgresql\.auto\.conf\.tmp": Is a directory'
    with pytest.raises(QueryError, match=blocked), inst.connect_admin() as c:
        c.execute("ALTER SYSTEM SET work_mem = '9MB'")
    with pytest.raises(QueryError, match=blocked), inst.connect_admin() as c:
        c.execute("ALTER SYSTEM RESET ALL")
    assert os.readlink(auto) == "/dev/null"
    with inst.connect_admin() as conn:
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
        assert conn.execute("SHOW work_mem").fetchone() != ("9MB",)

    # a real auto.conf (what pg_basebackup -R or an older ALTER SYSTEM leaves) is replaced
    inst.stop()
    auto.unlink()
    auto.write_text("work_mem = '77MB'\nprimary_conninfo = 'host=elsewhere'\n")
    inst.start()
    inst.wait_ready(30)
    assert os.readlink(auto) == "/dev/null"
    with inst.connect_admin() as conn:
        assert conn.execute("SHOW work_mem").fetchone() != ("77MB",)


def test_config_values_round_trip_and_reported_parameters(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    tricky = "it's a \\back\\slash, 'quoted' %p and a tab\t!"
    inst.set_config(parameters={**pg.parameters(inst), "stolon.test_value": tricky})
    inst.reload()
    with inst.connect_admin() as conn:
        for _ in range(50):
            row = conn.execute("SELECT current_setting('stolon.test_value', true)").fetchone()
            if row and row[0] == tricky:
                break
            time.sleep(0.1)
        assert row == (tricky,)
        reported = state.user_config_parameters(conn)
    assert reported["stolon.test_value"] == tricky
    assert reported["fsync"] == "off"
    assert reported["wal_level"] == "replica"
    for managed in ("port", "listen_addresses", "unix_socket_directories", "hot_standby"):
        assert managed not in reported


def test_collect_state_on_primary(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    st = collect_state(inst)
    assert st.healthy, st.errors
    assert st.system_id.isdigit()
    assert st.timeline_id == 1
    assert st.xlog_pos > 0
    assert st.timelines_history == []
    assert st.synchronous_standbys == []
    assert is_wal_file_name(st.older_wal_file)
    assert st.pg_parameters["fsync"] == "off"
    with inst.connect_admin() as conn:
        assert state.is_in_recovery(conn) is False
    # stopped: initialized but not healthy, and no exception
    inst.stop()
    st = collect_state(inst, timeout=2)
    assert st.initialized and not st.healthy and st.errors


def test_replication_slots(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    with inst.connect_admin() as conn:
        conn.execute("SELECT pg_create_physical_replication_slot('external_slot')")
        slots.create_slot(conn, "stolon_old")
        res = slots.refresh_slots(conn, slots.wanted_slots("self", ["self", "b1", "c2"], None))
        assert res.created == ["stolon_b1", "stolon_c2"]
        assert res.dropped == ["stolon_old"]
        listed = {s.name: s for s in slots.list_slots(conn)}
        assert set(listed) == {"external_slot", "stolon_b1", "stolon_c2"}
        assert listed["stolon_b1"].wal_status == "reserved"
        assert listed["stolon_b1"].restart_lsn is not None
        assert not listed["external_slot"].managed and listed["stolon_c2"].managed

        res = slots.refresh_slots(conn, {"stolon_c2"})
        assert res.dropped == ["stolon_b1"] and res.created == [] and not res.drop_errors
        assert {s.name for s in slots.list_slots(conn)} == {"external_slot", "stolon_c2"}
        with pytest.raises(ValueError):
            slots.create_slot(conn, "Bad-Name")


def test_query_deadlines(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    # server-side statement_timeout
    t0 = time.monotonic()
    with pytest.raises(QueryTimeoutError), inst.connect_admin(timeout=1) as conn:
        conn.execute("SELECT pg_sleep(10)")
    assert time.monotonic() - t0 < 4

    # a backend that does not answer at all (SIGSTOP): the client-side watchdog fires
    with inst.connect_admin(timeout=30) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    t0 = time.monotonic()
    with (
        pytest.raises(QueryTimeoutError, match=r"did not complete within 1\.5s"),
        inst.connect_admin(timeout=1.5) as conn,
    ):
        (bpid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (0,)
        os.kill(bpid, signal.SIGSTOP)
        try:
            conn.execute("SELECT 1")
        finally:
            os.kill(bpid, signal.SIGCONT)
    assert time.monotonic() - t0 < 5

    # a postmaster that does not answer: the connection attempt times out
    pid = inst.postmaster_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(QueryTimeoutError):
            inst.ping(timeout=1)
        assert time.monotonic() - t0 < 6
    finally:
        os.kill(pid, signal.SIGCONT)
    inst.ping()


def test_start_failure_is_reported(pg: PgEnv) -> None:
    inst = pg.instance("a")
    with pytest.raises(DataDirError, match="not initialized"):
        inst.start()
    inst.initdb(no_sync=True)
    with pytest.raises(DataDirError, match="already initialized"):
        inst.initdb(no_sync=True)
    inst.set_config(parameters={**pg.parameters(inst), "shared_buffers": "lots"})
    with pytest.raises(StartError, match="exited unexpectedly") as ei:
        inst.start()
    assert "shared_buffers" in str(ei.value)
    assert not inst.is_running()


def test_stale_postmaster_is_stopped(pg: PgEnv, subreaper: Callable[[int], None]) -> None:
    inst = pg.instance("a")
    inst.initdb(no_sync=True)
    inst.set_config(parameters=pg.parameters(inst))
    inst.write_config_files()
    inst.prepare_socket_dir()
    # a postmaster not started by this Instance (an earlier keeper)
    run_command(
        [pg.binaries.path("pg_ctl"), "start", "-w", "-D", str(inst.data_dir),
         "-l", str(inst.data_dir.parent / "other.log")],
        user=pg.os_user,
        timeout=60,
    )  # fmt: skip
    stale_pid = datadir.read_postmaster_pid(inst.data_dir)
    assert stale_pid is not None
    subreaper(stale_pid)  # pg_ctl exited: the postmaster is an orphan
    assert inst.is_running()
    assert inst.postmaster_pid is None
    with pytest.raises(InstanceRunningError):
        inst.start()
    with pytest.raises(InstanceRunningError):
        inst.remove_data_dir()
    assert inst.stop_stale_postmaster(timeout=30) is True
    assert not inst.is_running()
    assert inst.stop_stale_postmaster() is False
    inst.remove_data_dir()
    assert not inst.data_dir.exists()


_KEEPER_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from stolon.postgres.binaries import PgBinaries
    from stolon.postgres.credentials import AuthMethod, Credentials
    from stolon.postgres.instance import Instance
    from stolon.postgres.runas import resolve_pg_os_user

    a = json.loads(sys.argv[1])
    su = Credentials("stolon_su", a["su_password"], AuthMethod.MD5)
    repl = Credentials("repl", a["repl_password"], AuthMethod.MD5)
    inst = Instance(a["data_dir"], PgBinaries(a["bin_dir"]), resolve_pg_os_user(a["os_user"]),
                    port=a["port"], socket_dir=a["socket_dir"], superuser=su, replication=repl,
                    log_file=a["log_file"])
    inst.set_config(parameters=a["parameters"])
    # start from a short-lived thread: the postmaster must survive that thread
    t = threading.Thread(target=inst.start)
    t.start()
    t.join()
    inst.wait_ready(30)
    print(inst.postmaster_pid, flush=True)
    time.sleep(1000)
    """
)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_keeper_sigkill_stops_its_postmaster(
    pg: PgEnv,
    run_script: Callable[[str], subprocess.Popen[str]],
    subreaper: Callable[[int], None],
) -> None:
    inst = pg.instance("a")
    inst.initdb(no_sync=True)
    args = {
        "data_dir": str(inst.data_dir),
        "bin_dir": str(pg.binaries.bin_dir),
        "os_user": pg.os_user.name,
        "port": inst.port,
        "socket_dir": str(inst.socket_dir),
        "su_password": pg.su_password,
        "repl_password": pg.repl_password,
        "log_file": str(pg.sandbox / "a.log"),
        "parameters": pg.parameters(inst),
    }
    code = _KEEPER_SCRIPT.replace("sys.argv[1]", repr(json.dumps(args)))
    keeper = run_script(code)
    assert keeper.stdout is not None and keeper.stderr is not None
    line = keeper.stdout.readline()
    assert line.strip(), keeper.stderr.read()
    postmaster = int(line)
    subreaper(postmaster)
    assert _alive(postmaster)
    backends = _children(postmaster)
    assert backends, "expected checkpointer, walwriter... under the postmaster"
    # one client session too: fast shutdown must end it
    client = psycopg.connect(
        host=str(inst.socket_dir), port=inst.port, user="stolon_su", password=pg.su_password,
        dbname="postgres", autocommit=True,
    )  # fmt: skip
    try:
        os.kill(keeper.pid, signal.SIGKILL)
        keeper.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in [postmaster, *backends]):
            time.sleep(0.05)
        assert not any(_alive(p) for p in [postmaster, *backends]), "postgres outlived its keeper"
        with pytest.raises(psycopg.OperationalError):
            client.execute("SELECT 1")
    finally:
        client.close()
    assert "received fast shutdown request" in pg.log("a")
    assert not inst.is_running()
    assert sys.executable  # the keeper script ran with this interpreter


def test_initdb_options_and_temporary_merged_start(pg: PgEnv) -> None:
    """The keeper's first start of a new or existing instance: its own postgresql.conf is
    included by the temporary config, and our parameters override it."""
    inst = pg.instance("a")
    inst.initdb(locale="C", encoding="UTF8", data_checksums=True, no_sync=True)
    own_conf = inst.data_dir / "postgresql.conf"
    with own_conf.open("a") as f:
        f.write("stolon.from_own_conf = 'kept'\nwork_mem = '3MB'\n")
    inst.set_config(parameters={**pg.parameters(inst), "work_mem": "5MB"})
    inst.start(tmp_merged=True)
    inst.wait_ready(30)
    with inst.connect_admin() as conn:
        config_file = conn.execute("SHOW config_file").fetchone()
        assert config_file == (str(inst.data_dir / "stolon-temp-postgresql.conf"),)
        assert conn.execute("SHOW stolon.from_own_conf").fetchone() == ("kept",)
        assert conn.execute("SHOW work_mem").fetchone() == ("5MB",)
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        assert conn.execute("SHOW lc_collate").fetchone() == ("C",)
        # what the keeper saves as InitPGParameters
        init_params = state.user_config_parameters(conn)
    assert init_params["stolon.from_own_conf"] == "kept"
    assert init_params["work_mem"] == "5MB"  # last one wins
    assert "port" not in init_params
    inst.setup_roles()
    inst.stop()
    # the regular start: our postgresql.conf replaced the original one
    inst.start()
    inst.wait_ready(30)
    with inst.connect_admin() as conn:
        assert conn.execute("SHOW config_file").fetchone() == (str(own_conf),)
        assert conn.execute("SELECT current_setting('stolon.from_own_conf', true)").fetchone() in (
            (None,),
            ("",),
        )


def test_strict_hba_from_hostile_addresses_opens_nothing(pg: PgEnv) -> None:
    """Issue 10 item 9, on a real server: with trust for the superuser, strict-mode lines
    built from published addresses that try to be a keyword (``all``, ``samehost``) or to
    inject a line must not let a TCP connection from 127.0.0.1 in, and PostgreSQL must
    load the file without errors."""
    from stolon.postgres.hba import SUReplAccessMode, build_hba

    inst = pg.new_primary("a", su_user="stolon", repl_user="stolon", su_auth=AuthMethod.TRUST)
    hba = build_hba(
        su_user="stolon",
        su_auth=AuthMethod.TRUST,
        repl_user="stolon",
        repl_auth=AuthMethod.TRUST,
        access_mode=SUReplAccessMode.STRICT,
        is_master_type=True,
        other_db_addresses=[
            "all",
            "samehost",
            "samenet",
            "10.0.0.3/32 trust\nhost all all 0.0.0.0/0 trust #",
        ],
        user_entries=[],
    )
    inst.set_config(hba=hba)
    inst.reload()
    with inst.connect_admin() as conn:
        errors = conn.execute(
            "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"
        ).fetchall()
        addresses = conn.execute(
            "SELECT address FROM pg_hba_file_rules WHERE type = 'host' ORDER BY line_number"
        ).fetchall()
    assert errors == []
    assert [a for (a,) in addresses] == ["all", "all", "samehost", "samehost", "samenet", "samenet"]
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        _tcp(inst.port, "stolon", None)


def test_write_fence_dropped_while_stopped_is_gone_at_the_next_start(pg: PgEnv) -> None:
    """Regression (chaos matrix, freeze row): lifting the fence of a server that is not
    running writes the configuration without it and succeeds (no reload to do), so a
    former master restarted as a standby, then promoted, takes writes."""
    inst = pg.new_primary("fence")
    inst.set_write_fence(True)
    with inst.connect_admin() as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    assert inst.stop() is True
    inst.set_write_fence(False)  # not running: no reload, no error
    assert "default_transaction_read_only" not in (inst.data_dir / "postgresql.conf").read_text()
    inst.start()
    inst.wait_ready(30)
    with inst.connect_admin() as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
