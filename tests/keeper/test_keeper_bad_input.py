"""A keeper with real PostgreSQL under bad input from the cluster data (issue 10, items 4
and 6): a stored spec Go Stolon accepts, ``pgParameters`` PostgreSQL can't use, a reload
the server rejects.

On main: a name like ``"a b"`` made rendering postgresql.conf fail on every cycle (no
reload, no start, no promotion checkpoint); ``wrok_mem`` made every reload "contain
errors; no changes were applied" while the keeper took it as applied, so the
``synchronous_standby_names`` the sentinel asked for never took effect.
"""

from __future__ import annotations

import pytest

from stolon.model import ClusterSpec, KeeperInfo, SpecError

from .harness import TestCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("logs_on_failure")]

FAST = {"sleepInterval": "1s", "requestTimeout": "5s", "failInterval": "5s", "initMode": "new"}

BAD = {
    "a b": "x",  # not a name the configuration lexer reads
    "ü": "x",
    "include": "/etc/passwd",  # a directive, not a parameter
    "application_name": "two\nlines",  # a control character
    "work_mem": "banana",  # the server rejects the value
    "wrok_mem": "4MB",  # the server does not know the name
    "maintenance_work_mem": "1",  # out of range
    "log_min_messages": "loud",  # not an enum value
}
GOOD = {"statement_timeout": "5min", "log_min_messages": "warning"}


def conditions(info: KeeperInfo) -> dict[str, str]:
    state = info.postgres_state
    assert state is not None
    return {f"{c.type}:{c.parameter}": c.message for c in state.conditions or []}


def test_bad_parameters_are_left_out_reported_and_failover_still_works(cluster: TestCluster) -> None:
    s = cluster.sentinel
    # stored as Go Stolon accepts it: refused as new input, but the keeper must run on it
    spec = ClusterSpec.from_obj(
        {
            **FAST,
            "synchronousReplication": True,
            "pgParameters": {"synchronous_commit": "local", **GOOD},
        }
    )
    with pytest.raises(SpecError, match="synchronous_commit"):
        spec.validate()  # refused as new input
    s.init(spec)
    k0 = cluster.keeper("keeper0").start()
    k1 = cluster.keeper("keeper1").start()
    s.wait_keeper("keeper0")
    s.wait_keeper("keeper1")
    s.set_db("db0", "keeper0", role="master", init_mode="new", followers=["db1"])
    s.wait_converged("db0")
    assert k0.query("show synchronous_commit") == [("local",)]
    s.set_db("db1", "keeper1", role="standby", init_mode="resync", follows="db0")
    s.wait_converged("db1", timeout=120)

    # every bad entry arrives at once, with a good one
    s.spec(pg_parameters={**BAD, "statement_timeout": "7min"})
    s.set_db("db0", "keeper0", role="master", followers=["db1"])
    s.set_db("db1", "keeper1", role="standby", follows="db0")
    s.wait_converged("db0", timeout=60)
    s.wait_converged("db1", timeout=60)
    assert k0.query("show statement_timeout") == [("7min",)], "the good entry is applied"
    assert k0.query("show work_mem") == [("4MB",)]
    assert k0.query("show log_min_messages") == [("warning",)]
    expected = {f"InvalidParameter:{name}" for name in BAD}
    got = wait_for(
        "conditions published", lambda: set(conditions(s.infos()["keeper0"])) >= expected or None, 20
    )
    assert got
    cond = conditions(s.infos()["keeper0"])
    assert 'invalid value for parameter "work_mem": "banana"' in cond["InvalidParameter:work_mem"]
    assert "unrecognized configuration parameter" in cond["InvalidParameter:wrok_mem"]
    assert "directive" in cond["InvalidParameter:include"]
    conf = (k0.data_dir / "postgres" / "postgresql.conf").read_text()
    assert "banana" not in conf and "wrok_mem" not in conf and "include" not in conf

    # the sentinel's synchronous_standby_names must still apply (a typo blocked it on main)
    s.set_db("db0", "keeper0", role="master", followers=["db1"], synchronous_standbys=["db1"])
    s.wait_converged("db0")
    wait_for(
        "synchronous_standby_names applied",
        lambda: k0.query("show synchronous_standby_names") == [("stolon_db1",)],
        20,
    )

    # failover with the bad entries present: the standby is promoted and checkpoints
    k0.stop()
    s.set_db("db1", "keeper1", role="master", followers=[])
    s.wait_converged("db1", timeout=60)
    assert k1.query("select pg_is_in_recovery()") == [(False,)]
    assert k1.query("select timeline_id from pg_control_checkpoint()") == [(2,)], "checkpointed after promote"
    assert k1.query("show statement_timeout") == [("7min",)]

    # a keeper restart with the bad entries present: PostgreSQL starts without them
    boot = s.infos()["keeper1"].boot_uuid
    assert k1.stop() == 0
    k1.start()
    s.wait_keeper("keeper1", not_boot=boot)
    s.wait_converged("db1", timeout=60)
    assert k1.query("show statement_timeout") == [("7min",)]

    # fixed in the spec: the conditions go away
    s.spec(pg_parameters=GOOD)
    s.set_db("db1", "keeper1", role="master", followers=[])
    s.wait_converged("db1")
    wait_for("conditions cleared", lambda: conditions(s.infos()["keeper1"]) == {}, 20)


def test_a_rejected_reload_is_reported_and_not_taken_as_applied(cluster: TestCluster) -> None:
    """An invalid pg_hba.conf line: the server keeps its old rules ("pg_hba.conf was not
    reloaded"); the keeper says so, and retries the reload every cycle instead of taking it
    as applied. It still converges: a bad pgHBA entry must not make a master fail over."""
    s = cluster.sentinel
    s.init(ClusterSpec.from_obj(FAST))
    k0 = cluster.keeper("keeper0").start()
    s.wait_keeper("keeper0")
    s.set_db("db0", "keeper0", role="master", init_mode="new")
    db = s.wait_converged("db0")
    s.spec(pg_hba=["host all all 999.1.1.1/32 md5"])
    s.set_db("db0", "keeper0", role="master")

    def rejected() -> str | None:
        return conditions(s.infos()["keeper0"]).get("ConfigReloadRejected:")

    message = wait_for("reload rejected condition", rejected, 30)
    assert "pg_hba.conf" in message
    converged = s.wait_converged("db0")
    assert converged.generation > db.generation
    wait_for(
        "the reload retried, not taken as applied",
        lambda: k0.output().count("pg_hba.conf was not reloaded") >= 3,
        30,
    )
    assert k0.output().count("the configuration reload was not applied") == 1, "logged once"
    s.spec(pg_hba=None)
    s.set_db("db0", "keeper0", role="master")
    s.wait_converged("db0")
    wait_for("condition cleared", lambda: rejected() is None, 20)
