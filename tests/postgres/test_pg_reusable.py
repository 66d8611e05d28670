"""Kept connections (stolon.postgres.connection.ReusableConnection) and the collector's use
of them, against a real server: reused between calls, replaced when the server restarted,
bounded by the deadline, and no obstacle to a fast shutdown; and the executor's reuse of
its pending_restart reading."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pytest

from stolon.keeper.config import KeeperConfig
from stolon.keeper.pgstate import StateConnections, collect_state
from stolon.postgres.connection import Connection, ReusableConnection
from stolon.postgres.errors import QueryError, QueryTimeoutError

if TYPE_CHECKING:
    from tests.postgres.conftest import PgEnv

pytestmark = pytest.mark.integration


def backend_pid(conn: Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_kept_between_calls_and_replaced_after_a_restart(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    kept = ReusableConnection(inst.admin_params)
    try:
        first = kept.run(backend_pid, 5)
        assert kept.run(backend_pid, 5) == first
        inst.restart("fast")
        inst.wait_ready(30)
        # the kept connection died with the server: the call runs again on a new one
        again = kept.run(backend_pid, 5)
        assert again != first
        assert kept.run(backend_pid, 5) == again
        inst.stop()
        with pytest.raises(QueryError):
            kept.run(backend_pid, 2)
        assert not kept.is_open
    finally:
        kept.close()


def test_a_query_past_the_deadline_fails_and_the_next_call_works(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    kept = ReusableConnection(inst.admin_params)
    try:
        first = kept.run(backend_pid, 5)
        with pytest.raises(QueryTimeoutError):
            kept.run(lambda c: c.execute("SELECT pg_sleep(10)"), 1)
        assert not kept.is_open
        assert kept.run(backend_pid, 5) != first
    finally:
        kept.close()


def test_collect_state_with_kept_connections(pg: PgEnv) -> None:
    inst = pg.new_primary("a")
    conns = StateConnections(inst)
    try:
        fresh = collect_state(inst, timeout=5)
        st = collect_state(inst, timeout=5, conns=conns)
        assert st.healthy, st.errors
        assert (st.system_id, st.timeline_id, st.pg_parameters) == (
            fresh.system_id, fresh.timeline_id, fresh.pg_parameters,
        )  # fmt: skip
        assert conns.admin.is_open
        admin_pid = conns.admin.run(backend_pid, 5)
        assert collect_state(inst, timeout=5, conns=conns).healthy
        assert conns.admin.run(backend_pid, 5) == admin_pid
        # no walsender is kept: pg_stat_replication lists standbys only
        with inst.connect_admin() as c:
            assert c.execute("SELECT count(*) FROM pg_stat_replication").fetchone() == (0,)
        inst.stop("fast")
        st = collect_state(inst, timeout=2, conns=conns)
        assert st.initialized and not st.healthy and st.errors
        inst.start()
        inst.wait_ready(30)
        st = collect_state(inst, timeout=5, conns=conns)
        assert st.healthy, st.errors
    finally:
        conns.close()


def test_pending_restart_is_read_again_when_it_may_have_changed(
    pg: PgEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor's CheckRestart (every cycle) reads pending_restart again after a
    configuration it applied, for another postmaster, or once its reading is
    PENDING_RESTART_MAX_AGE old; in between it reuses its reading."""
    from stolon.keeper import executor as ex_mod

    inst = pg.new_primary("a")
    ex = ex_mod.Executor(cast(KeeperConfig, None), inst, pg.sandbox)
    try:
        assert ex._pending_restart() == []
        # changed behind the keeper's back (the keeper is the only writer of the files)
        inst.set_config(parameters={**pg.parameters(inst), "shared_buffers": "32MB"})
        inst.reload()
        assert ex._pending_restart() == []  # the reading is reused
        monkeypatch.setattr(ex_mod, "PENDING_RESTART_MAX_AGE", 0.0)
        assert ex._pending_restart() == ["shared_buffers"]  # too old: read again
        monkeypatch.undo()
        assert ex._pending_restart() == ["shared_buffers"]
        inst.restart("fast")
        inst.wait_ready(30)
        assert ex._pending_restart() == []  # another postmaster: read again
    finally:
        ex.kept.close()


def test_replication_answers_are_asked_again_after_the_refresh_age(pg: PgEnv) -> None:
    from stolon.keeper import pgstate

    inst = pg.new_primary("a")
    now = [1000.0]
    conns = StateConnections(inst, clock=lambda: now[0])
    try:
        assert collect_state(inst, timeout=5, conns=conns).healthy
        assert collect_state(inst, timeout=5, conns=conns).healthy
        assert conns.reused == 1
        now[0] += pgstate.REPLICATION_REFRESH
        assert collect_state(inst, timeout=5, conns=conns).healthy
        assert conns.reused == 1, "old answers: asked again"
        assert collect_state(inst, timeout=5, conns=conns).healthy
        assert conns.reused == 2
        # a failed collection forgets them
        inst.stop("fast")
        assert not collect_state(inst, timeout=2, conns=conns).healthy
        inst.start()
        inst.wait_ready(30)
        assert collect_state(inst, timeout=5, conns=conns).healthy
        assert conns.reused == 2
    finally:
        conns.close()
