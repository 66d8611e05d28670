"""``stolonctl switchover`` on the embedded store: refusals with one-line errors, the request
it writes, and ``--wait`` following the phases the sentinel writes."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from stolon.cli import ctl_switchover, stolonctl
from stolon.cli.ctlcontext import CtlContext
from stolon.model import (
    DB,
    Cluster,
    ClusterData,
    ClusterSpec,
    DBSpec,
    DBStatus,
    FollowConfig,
    Keeper,
    KeeperStatus,
    Switchover,
)
from stolon.model.cluster import PHASE_NORMAL
from stolon.model.gotime import now_utc
from stolon.plugins import load_plugins
from stolon.store import open_store
from stolon.store.base import StoreConfig

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


def cluster(sync: bool = False) -> ClusterData:
    """db1 master on keeper1; db2 (keeper2) healthy standby; db3 (keeper3) unhealthy."""
    spec = ClusterSpec.from_obj({"initMode": "new", "synchronousReplication": sync})
    cd = ClusterData.new(Cluster.new(spec))
    assert cd.cluster is not None
    cd.cluster.status.phase = PHASE_NORMAL
    cd.cluster.status.master = "db1"
    cd.keepers = {
        k: Keeper(uid=k, status=KeeperStatus(healthy=True)) for k in ("keeper1", "keeper2", "keeper3")
    }

    def db(uid: str, keeper: str, role: str, healthy: bool = True) -> DB:
        follow = FollowConfig(type="internal", dbuid="db1") if role == "standby" else None
        return DB(
            uid=uid,
            generation=2,
            spec=DBSpec(keeper_uid=keeper, role=role, follow_config=follow, synchronous_replication=sync),
            status=DBStatus(healthy=healthy, current_generation=2, timeline_id=1, xlog_pos=100),
        )

    cd.dbs = {
        "db1": db("db1", "keeper1", "master"),
        "db2": db("db2", "keeper2", "standby"),
        "db3": db("db3", "keeper3", "standby", healthy=False),
    }
    if sync:
        master = cd.dbs["db1"]
        assert master.spec is not None
        master.spec.synchronous_standbys = ["db3"]
        master.status.synchronous_standbys = ["db3"]
    return cd


@dataclass
class Ctl:
    """Runs ``stolonctl switchover`` in-process against one embedded store."""

    config: StoreConfig
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, cd: ClusterData | None, *args: str, stdin: str = "") -> tuple[int, str, str]:
        if cd is not None:
            with open_store(self.config, PLUGINS) as st:
                st.put_cluster_data(cd)
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        flags = [
            "--cluster-name",
            "c1",
            "--store-backend",
            "embedded",
            "--store-endpoints",
            self.config.endpoints[0],
        ]
        code = stolonctl.main([*flags, "switchover", *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def ctl(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Ctl:
    config = StoreConfig(backend="embedded", cluster_name="c1", endpoints=(str(tmp_path / "store.db"),))
    return Ctl(config, capsys, monkeypatch)


def stored(config: StoreConfig) -> ClusterData:
    with open_store(config, PLUGINS) as st:
        cd, _ = st.get_cluster_data()
    assert cd is not None
    return cd


def test_refusals_are_one_line_and_write_nothing(ctl: Ctl) -> None:
    running = cluster()
    assert running.cluster is not None
    running.cluster.status.switchover = Switchover(id="sw0", phase="catching_up", target_keeper="keeper2")
    initializing = cluster()
    assert initializing.cluster is not None
    initializing.cluster.status.phase = "initializing"
    none_eligible = cluster()
    assert none_eligible.dbs is not None
    none_eligible.dbs["db2"].status.current_generation = 1
    cases = [
        (cluster(), ["--to", "nokeeper"], "keeper doesn't exist: 'nokeeper' is not in the cluster data"),
        (cluster(), ["--to", "keeper1"], "keeper keeper1 already runs the master"),
        (cluster(), ["--to", "keeper3"], "keeper keeper3 is not eligible: it is not healthy"),
        (
            cluster(sync=True),
            ["--to", "keeper2"],
            "keeper2 is not eligible: it is not in the master's synchronous",
        ),
        (running, [], "a switchover is already running (id sw0, phase catching_up, target keeper keeper2)"),
        (initializing, [], "the cluster is not ready for a switchover (phase initializing)"),
        (
            none_eligible,
            [],
            "no standby is eligible: keeper2: it has not converged to its spec (e.g. still resyncing);"
            " keeper3: it is not healthy",
        ),
    ]
    for cd, args, message in cases:
        before = cd.to_obj()
        code, out, err = ctl(cd, *args, "-y")
        assert code == 1, (args, out, err)
        assert err.count("\n") == 1 and message in err, err
        assert stored(ctl.config).to_obj() == before
    code, _, err = ctl(cluster(), "--timeout", "0s", "-y")
    assert code == 1 and "--timeout must be positive" in err


def test_request_is_written_for_the_sentinel(ctl: Ctl) -> None:
    code, out, _ = ctl(cluster(), "--to", "keeper2", "--timeout", "30s", stdin="no\n")
    assert code == 0 and "will be shut down cleanly" in out and out.rstrip().endswith("exiting")
    cd = stored(ctl.config)
    assert cd.cluster is not None and cd.cluster.status.switchover is None
    code, out, _ = ctl(None, "--to", "keeper2", "--timeout", "30s", stdin="yes\n")
    assert code == 0 and "requested" in out
    cd = stored(ctl.config)
    assert cd.cluster is not None
    sw = cd.cluster.status.switchover
    assert sw is not None
    assert (sw.phase, sw.target_keeper, sw.master_db, str(sw.timeout)) == (
        "requested",
        "keeper2",
        "db1",
        "30s",
    )
    assert sw.request_time is not None and len(sw.id) == 8
    # stored under cluster.status.switchover, next to Go Stolon's keys
    assert cd.to_obj()["cluster"]["status"]["switchover"]["targetKeeper"] == "keeper2"


def test_wait_follows_the_phases(ctl: Ctl, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake sentinel moves the request on each time stolonctl --wait has printed the phase
    it is in: in the same thread, between two polls, so no phase can be missed however slow
    the machine is, and a failed assertion fails the test."""
    following = [
        ("requested", "stopping_master", "waiting for the old master to shut down cleanly"),
        ("stopping_master", "promoting", "waiting for db db2 to be promoted"),
        ("promoting", "completed", ""),
    ]
    printed: list[str] = []
    out = CtlContext.out

    def out_then_advance(self: CtlContext, text: str = "") -> None:
        out(self, text)
        printed.append(text)
        if not following or not text.startswith(following[0][0]):
            return
        _, phase, message = following.pop(0)
        with open_store(ctl.config, PLUGINS) as st:
            cd, rev = st.get_cluster_data()
            assert cd is not None and cd.cluster is not None and cd.cluster.status.switchover is not None
            cd.cluster.status.switchover.phase = phase
            cd.cluster.status.switchover.message = message
            st.cas_cluster_data(cd, rev)

    monkeypatch.setattr(CtlContext, "out", out_then_advance)
    monkeypatch.setattr(ctl_switchover, "POLL_S", 0.01)
    code, _, err = ctl(cluster(), "--to", "keeper2", "-y", "--wait")
    assert code == 0, err
    assert not following
    request = printed[0].split()
    assert request[0] == "switchover" and request[2] == "requested"
    assert printed[1:] == [
        "requested",
        "stopping_master: waiting for the old master to shut down cleanly",
        "promoting: waiting for db db2 to be promoted",
        "completed",
        f"switchover {request[1]} completed: keeper keeper2 runs the master",
    ]


def test_status_shows_a_switchover_in_progress(ctl: Ctl) -> None:
    """``stolonctl status`` (text and JSON) shows a switchover in progress, and nothing once
    it has ended."""
    cd = cluster()
    assert cd.cluster is not None
    cd.cluster.status.switchover = Switchover(
        id="sw1", phase="catching_up", target_db="db2", message="waiting for db2 to replay up to 0/3000028"
    )
    with open_store(ctl.config, PLUGINS) as st:
        st.put_cluster_data(cd)
    ctl.capsys.readouterr()
    flags = [
        "--cluster-name",
        "c1",
        "--store-backend",
        "embedded",
        "--store-endpoints",
        ctl.config.endpoints[0],
    ]
    assert stolonctl.main([*flags, "status"]) == 0
    text = ctl.capsys.readouterr().out
    assert "=== Switchover ===\n\ncatching_up: to keeper keeper2, requested " in text
    assert "(waiting for db2 to replay up to 0/3000028)" in text
    assert stolonctl.main([*flags, "status", "-f", "json"]) == 0
    sw = json.loads(ctl.capsys.readouterr().out)["switchover"]
    assert sw["phase"] == "catching_up" and sw["target_keeper"] == "keeper2" and sw["id"] == "sw1"
    cd.cluster.status.switchover = Switchover(id="sw1", phase="completed", target_db="db2")
    with open_store(ctl.config, PLUGINS) as st:
        st.put_cluster_data(cd)
    assert stolonctl.main([*flags, "status"]) == 0
    assert "=== Switchover ===" not in ctl.capsys.readouterr().out


def _concurrent_write(ctl: Ctl, change: Callable[[ClusterData], None]) -> Callable[[CtlContext, str], bool]:
    """A ``confirm`` that writes the cluster data (as the leader sentinel does every
    sleepInterval) while the user is being asked, then says yes."""

    def confirm(self: CtlContext, prompt: str) -> bool:
        with open_store(ctl.config, PLUGINS) as st:
            cd, rev = st.get_cluster_data()
            assert cd is not None
            change(cd)
            st.cas_cluster_data(cd, rev)
        return True

    return confirm


def test_a_concurrent_write_is_retried_on_a_fresh_read(ctl: Ctl, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentinel's heartbeat write between stolonctl's read and its compare-and-swap
    (here: while the user confirms) must not make the request fail."""

    def heartbeat(cd: ClusterData) -> None:
        assert cd.keepers is not None
        cd.keepers["keeper2"].status.last_healthy_time = now_utc()

    monkeypatch.setattr(CtlContext, "confirm", _concurrent_write(ctl, heartbeat))
    code, out, err = ctl(cluster(), "--to", "keeper2")
    assert code == 0 and "requested" in out, err
    cd = stored(ctl.config)
    assert cd.cluster is not None and cd.cluster.status.switchover is not None
    assert cd.keepers is not None and cd.keepers["keeper2"].status.last_healthy_time is not None


def test_a_master_change_meanwhile_refuses_and_writes_nothing(
    ctl: Ctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failover(cd: ClusterData) -> None:
        assert cd.cluster is not None and cd.dbs is not None
        cd.cluster.status.master = "db2"
        for uid, role in (("db1", "standby"), ("db2", "master")):
            spec = cd.dbs[uid].spec
            assert spec is not None
            spec.role = role
            spec.follow_config = FollowConfig(type="internal", dbuid="db2") if role == "standby" else None

    monkeypatch.setattr(CtlContext, "confirm", _concurrent_write(ctl, failover))
    code, _, err = ctl(cluster())  # no --to: db1, now a standby of db2, is eligible
    assert code == 1 and err.count("\n") == 1, err
    assert "the master changed while the switchover was being requested" in err
    cd = stored(ctl.config)
    assert cd.cluster is not None and cd.cluster.status.switchover is None
