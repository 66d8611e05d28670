"""Primary and standby made with our tooling: base backup, streaming, sync replication,
promotion with timeline history, pg_rewind of the old primary, which then follows."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from stolon.keeper.pgstate import collect_state
from stolon.postgres import slots, state
from stolon.postgres.datadir import LocalRole
from stolon.postgres.errors import CommandError
from stolon.postgres.instance import Instance
from stolon.postgres.recovery import NO_RECOVERY, internal_standby_config
from stolon.postgres.replication import SourceServer, basebackup, rewind

if TYPE_CHECKING:
    from tests.postgres.conftest import PgEnv

pytestmark = pytest.mark.integration


def _eventually(check: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _ids(inst: Instance) -> list[int]:
    with inst.connect_admin() as c:
        return [r[0] for r in c.execute("SELECT id FROM t ORDER BY id").fetchall()]


def _exec(inst: Instance, query: str) -> None:
    with inst.connect_admin() as c:
        c.execute(query)


def _repl_source(pg: PgEnv, inst: Instance) -> SourceServer:
    return SourceServer(host="127.0.0.1", port=inst.port, user="repl", password=pg.repl_password)


def _make_standby(pg: PgEnv, primary: Instance, name: str, uid: str, rewind: bool) -> Instance:
    with primary.connect_admin() as c:
        slots.create_slot(c, f"stolon_{uid}")
    sb = pg.instance(name)
    basebackup(sb, _repl_source(pg, primary), db_uid=uid, fast_checkpoint=True, timeout=120)
    sb.set_config(
        parameters=pg.parameters(sb, use_pg_rewind=rewind),
        recovery=internal_standby_config(
            host="127.0.0.1", port=primary.port, user="repl", password=pg.repl_password, db_uid=uid
        ),
    )
    sb.start()
    sb.wait_ready(30)
    standby: Instance = sb
    return standby


def test_basebackup_standby_streaming_and_sync(pg: PgEnv) -> None:
    a = pg.new_primary("a")
    _exec(a, "CREATE TABLE t (id int PRIMARY KEY)")
    _exec(a, "INSERT INTO t VALUES (1)")

    # a failed base backup: clear error without the password, nothing left behind
    b = pg.instance("b")
    bad = SourceServer(host="127.0.0.1", port=a.port, user="repl", password="wrong-pw-xyz")
    with pytest.raises(CommandError, match="password authentication failed") as ei:
        basebackup(b, bad, db_uid="bbbb", timeout=60)
    assert "wrong-pw-xyz" not in str(ei.value)
    assert not b.data_dir.exists()
    pg.instances.remove(b)

    b = _make_standby(pg, a, "b", "bbbb", rewind=False)
    assert b.local_role() is LocalRole.STANDBY
    conf = b.data_dir / "postgresql.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert "primary_slot_name = 'stolon_bbbb'" in conf.read_text()

    _exec(a, "INSERT INTO t VALUES (2)")
    _eventually(lambda: _ids(b) == [1, 2], what="row 2 on the standby")

    with a.connect_replication() as ra, b.connect_replication() as rb:
        ia, ib = state.identify_system(ra), state.identify_system(rb)
    assert ia.system_id == ib.system_id
    assert ia.timeline_id == ib.timeline_id == 1
    assert 0 < ib.xlog_pos <= ia.xlog_pos + 1024

    with b.connect_admin() as c:
        assert state.is_in_recovery(c)
    st_b = collect_state(b)
    assert st_b.healthy, st_b.errors
    assert st_b.system_id == ia.system_id

    with a.connect_admin() as c:
        (slot,) = [s for s in slots.list_slots(c) if s.name == "stolon_bbbb"]
        assert slot.active
        (sb,) = state.standbys(c)
        assert (sb.application_name, sb.state, sb.sync_state) == ("stolon_bbbb", "streaming", "async")
        assert state.sync_standbys(c) == []

    # synchronous replication with this standby
    a.set_config(parameters=pg.parameters(a, synchronous_standbys=("bbbb",)))
    a.reload()

    def in_sync() -> bool:
        with a.connect_admin() as c:
            return state.sync_standbys(c) == ["bbbb"]

    _eventually(in_sync, what="standby in sync state")
    st_a = collect_state(a)
    assert st_a.synchronous_standbys == ["bbbb"]
    _exec(a, "INSERT INTO t VALUES (3)")  # commits: the sync standby acknowledges
    # flushed on the standby at commit (remote_flush), visible once replayed
    _eventually(lambda: _ids(b) == [1, 2, 3], what="row 3 on the sync standby")
    b.stop()
    with a.connect_admin(timeout=3) as c:
        c.execute("SET synchronous_commit = local")
        c.execute("INSERT INTO t VALUES (4)")


def test_promote_then_rewind_old_primary(pg: PgEnv) -> None:
    a = pg.new_primary("a", use_pg_rewind=True)
    _exec(a, "CREATE TABLE t (id int PRIMARY KEY)")
    _exec(a, "INSERT INTO t VALUES (1)")
    b = _make_standby(pg, a, "b", "bbbb", rewind=True)
    _eventually(lambda: _ids(b) == [1], what="row 1 on the standby")

    # failover: promote b (recovery settings cleared first, as the keeper does)
    b.set_config(recovery=NO_RECOVERY)
    b.promote()
    assert b.local_role() is LocalRole.MASTER
    assert "primary_conninfo" not in (b.data_dir / "postgresql.conf").read_text()
    with b.connect_admin() as c:
        assert not state.is_in_recovery(c)
    with b.connect_replication() as rb:
        ident = state.identify_system(rb)
        history = state.last_timeline_history(rb, ident.timeline_id)
    assert ident.timeline_id == 2
    assert len(history) == 1
    assert history[0].timeline_id == 1
    assert 0 < history[0].switch_point <= ident.xlog_pos
    assert history[0].reason  # "no recovery target specified"
    st_b = collect_state(b)
    assert st_b.timeline_id == 2 and st_b.timelines_history == history

    # both sides diverge
    _exec(a, "INSERT INTO t VALUES (10)")  # lost: only on the old primary
    _exec(b, "INSERT INTO t VALUES (20)")
    a.stop()

    # the old primary is rewound against the new one (superuser over TCP), then follows it
    su = SourceServer(host="127.0.0.1", port=b.port, user="stolon_su", password=pg.su_password)
    rewind(a, su, timeout=120)
    with b.connect_admin() as c:
        slots.create_slot(c, "stolon_aaaa")
    a.set_config(
        parameters=pg.parameters(a, use_pg_rewind=True),
        recovery=internal_standby_config(
            host="127.0.0.1", port=b.port, user="repl", password=pg.repl_password, db_uid="aaaa"
        ),
    )
    a.start()
    a.wait_ready(30)
    assert a.local_role() is LocalRole.STANDBY
    _exec(b, "INSERT INTO t VALUES (30)")
    _eventually(lambda: _ids(a) == [1, 20, 30], what="the rewound standby to catch up")
    with a.connect_replication() as ra:
        assert state.identify_system(ra).timeline_id == 2
    with b.connect_admin() as c:
        (sa,) = state.standbys(c)
        assert sa.application_name == "stolon_aaaa" and sa.state == "streaming"

    # a second promotion (the rewound standby): timeline 3, two history entries kept
    a.set_config(recovery=NO_RECOVERY)
    a.promote()
    with a.connect_replication() as ra:
        ident3 = state.identify_system(ra)
        full = state.timeline_history(ra, ident3.timeline_id)
        last_one = state.last_timeline_history(ra, ident3.timeline_id, keep=1)
    assert ident3.timeline_id == 3
    assert [e.timeline_id for e in full] == [1, 2]
    assert full[0] == history[0]
    assert full[0].switch_point <= full[1].switch_point
    assert last_one == full[-1:]
    assert collect_state(a).timelines_history == full


def test_synchronous_standby_names_in_force_from_the_promotion(pg: PgEnv) -> None:
    """A synchronous master-to-be gets synchronous_standby_names while still a standby (it
    has no effect there, streaming goes on); once promoted it waits for that standby from
    its first commit, before the configuration written after the CHECKPOINT is reloaded."""
    a = pg.new_primary("a")
    _exec(a, "CREATE TABLE t (id int PRIMARY KEY)")
    _exec(a, "INSERT INTO t VALUES (1)")
    b = _make_standby(pg, a, "b", "bbbb", rewind=False)
    _eventually(lambda: _ids(b) == [1], what="row 1 on the standby")

    assert b.synchronous_standby_names_before_promotion("stolon_cccc")
    assert not b.synchronous_standby_names_before_promotion("stolon_cccc"), "already in force"
    with b.connect_admin() as c:
        assert state.is_in_recovery(c)
        (value,) = c.execute("SHOW synchronous_standby_names").fetchone() or ("",)
        assert value == "stolon_cccc"
    # still a standby of a, still streaming from it
    _exec(a, "INSERT INTO t VALUES (2)")
    _eventually(lambda: _ids(b) == [1, 2], what="row 2 streamed after the change")
    assert "primary_conninfo" in (b.data_dir / "postgresql.conf").read_text()

    # promoted without any reload of the master configuration (no CHECKPOINT, no rewrite)
    b.set_config(
        parameters=pg.parameters(b, synchronous_standbys=("cccc",)),
        recovery=NO_RECOVERY,
    )
    b.promote(do_checkpoint=False)
    with b.connect_admin() as c:
        assert not state.is_in_recovery(c)
        (value,) = c.execute("SHOW synchronous_standby_names").fetchone() or ("",)
        assert value == "stolon_cccc"


def test_collector_reuses_replication_answers_only_while_nothing_moved(pg: PgEnv) -> None:
    """The kept collector (StateConnections) opens no replication connection while the WAL
    probe is unchanged, and reports what a fresh collection reports: on an idle primary,
    after a write, on a standby, and across the standby's promotion (new timeline)."""
    from stolon.keeper.pgstate import StateConnections

    def same_as_fresh(inst: Instance, conns: StateConnections) -> None:
        kept = collect_state(inst, timeout=5, conns=conns)
        fresh = collect_state(inst, timeout=5)
        assert kept.healthy and fresh.healthy, (kept.errors, fresh.errors)
        assert (kept.system_id, kept.timeline_id, kept.xlog_pos, kept.timelines_history) == (
            fresh.system_id, fresh.timeline_id, fresh.xlog_pos, fresh.timelines_history,
        )  # fmt: skip

    a = pg.new_primary("a")
    _exec(a, "CREATE TABLE t (id int PRIMARY KEY)")
    b = _make_standby(pg, a, "b", "bbbb", rewind=False)
    _eventually(lambda: _ids(b) == [], what="table on the standby")
    ca, cb = StateConnections(a), StateConnections(b)
    try:
        first = collect_state(a, timeout=5, conns=ca)
        assert first.healthy, first.errors
        same_as_fresh(a, ca)  # idle: the answers were reused
        assert ca.reused >= 1
        _exec(a, "INSERT INTO t VALUES (1)")
        reused = ca.reused
        moved = collect_state(a, timeout=5, conns=ca)
        assert ca.reused == reused, "the WAL moved: asked again"
        assert moved.xlog_pos > first.xlog_pos
        _eventually(lambda: _ids(b) == [1], what="row 1 on the standby")
        _eventually(
            lambda: collect_state(b, timeout=5, conns=cb).xlog_pos >= moved.xlog_pos,
            what="the standby's position",
        )
        same_as_fresh(b, cb)
        assert cb.reused >= 1
        before = collect_state(b, timeout=5, conns=cb)
        assert before.timeline_id == 1
        b.set_config(recovery=NO_RECOVERY)
        b.promote()
        after = collect_state(b, timeout=5, conns=cb)
        assert after.timeline_id == 2 and after.timelines_history, after
        same_as_fresh(b, cb)
    finally:
        ca.close()
        cb.close()
