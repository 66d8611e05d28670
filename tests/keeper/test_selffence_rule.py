"""The self-fencing rule (stolon.keeper.selffence): pure, table-driven, no store, no sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from stolon.keeper.selffence import Action, Contact, SelfFence, deadline, reading, verdict
from stolon.model import ClusterData, ClusterSpec
from stolon.model.duration import Duration
from stolon.model.spec import SpecError
from stolon.store import ClusterStore

T = 2.0  # the self-fencing timeout of the table

#: (what, now, contact, master_since, fenced, expected action)
CASES: list[Any] = [
    pytest.param(5.0, Contact(4.0, 4.0), None, False, Action.NOTHING, id="not a master: nothing"),
    pytest.param(5.0, Contact(), None, True, Action.FORGET, id="no longer a master while fenced: forget"),
    pytest.param(5.0, Contact(4.0, 4.5), 1.0, False, Action.NOTHING, id="confirmed recently: nothing"),
    pytest.param(5.0, Contact(2.9, 4.5), 1.0, False, Action.FENCE, id="info not written for > T: fence"),
    pytest.param(5.0, Contact(4.5, 2.9), 1.0, False, Action.FENCE, id="not named master for > T: fence"),
    pytest.param(5.0, Contact(3.0, 3.0), 1.0, False, Action.NOTHING, id="exactly T: not yet"),
    pytest.param(5.0, Contact(None, None), 4.0, False, Action.NOTHING, id="a master for less than T: grace"),
    pytest.param(
        5.0, Contact(None, None), 2.5, False, Action.FENCE, id="a master for > T, never confirmed: fence"
    ),
    pytest.param(
        5.0, Contact(1.0, 1.0), 4.0, False, Action.NOTHING, id="confirmations older than mastership"
    ),
    pytest.param(
        5.0, Contact(4.9, 4.0, 4.5), 1.0, False, Action.FENCE, id="the store names another master: at once"
    ),
    pytest.param(5.0, Contact(4.9, 4.6, 4.5), 1.0, False, Action.NOTHING, id="named another, then us again"),
    pytest.param(5.0, Contact(2.0, 2.0), 1.0, True, Action.NOTHING, id="fenced and still cut off: stay"),
    pytest.param(5.0, Contact(4.8, 4.9), 1.0, True, Action.UNFENCE, id="fenced, then confirmed: lift"),
    pytest.param(5.0, Contact(4.8, 2.0), 1.0, True, Action.NOTHING, id="fenced, info written but not named"),
    pytest.param(5.0, Contact(4.8, 4.9, 4.95), 1.0, True, Action.NOTHING, id="fenced, named another: stay"),
]


@pytest.mark.parametrize(("now", "contact", "master_since", "fenced", "want"), CASES)
def test_verdict(
    now: float, contact: Contact, master_since: float | None, fenced: bool, want: Action
) -> None:
    assert verdict(now, contact, timeout=T, master_since=master_since, fenced=fenced) is want


def test_off_never_fences_and_lifts_a_fence() -> None:
    cut_off = Contact(0.0, 0.0)
    assert verdict(100.0, cut_off, timeout=0, master_since=0.0, fenced=False) is Action.NOTHING
    assert verdict(100.0, cut_off, timeout=0, master_since=0.0, fenced=True) is Action.UNFENCE
    assert deadline(cut_off, timeout=0, master_since=0.0) is None


def test_deadline_is_the_older_confirmation_plus_the_timeout() -> None:
    assert deadline(Contact(3.0, 4.0), timeout=T, master_since=1.0) == 5.0
    assert deadline(Contact(None, 4.0), timeout=T, master_since=1.0) == 3.0
    assert deadline(Contact(3.0, 4.0), timeout=T, master_since=None) is None
    assert deadline(Contact(3.0, 4.0, 4.5), timeout=T, master_since=1.0) is None  # fencing already


def _cd(master: str, *, our_role: str = "master") -> ClusterData:
    return ClusterData.from_obj(
        {
            "formatVersion": 1,
            "cluster": {
                "uid": "c",
                "generation": 1,
                "spec": {"initMode": "new"},
                "status": {"phase": "normal", "master": master},
            },
            "keepers": {
                "k0": {"uid": "k0", "spec": {}, "status": {}},
                "k1": {"uid": "k1", "spec": {}, "status": {}},
            },
            "dbs": {
                "db0": {
                    "uid": "db0",
                    "generation": 1,
                    "spec": {"keeperUID": "k0", "role": our_role},
                    "status": {},
                },
                "db1": {
                    "uid": "db1",
                    "generation": 1,
                    "spec": {"keeperUID": "k1", "role": "standby"},
                    "status": {},
                },
            },
        }
    )


def test_reading_the_cluster_data() -> None:
    assert reading(_cd("db0"), "k0") is True
    assert reading(_cd("db1"), "k0") is False
    assert reading(_cd(""), "k0") is None  # no master yet: says nothing
    assert reading(None, "k0") is None
    assert reading(_cd("db0"), "k9") is False  # we have no DB and db0 is the master
    assert reading(_cd("db0", our_role="standby"), "k0") is False


def is_fenced(sf: SelfFence) -> bool:
    return sf.fenced


def _no_store() -> ClusterStore:
    raise AssertionError("check() never opens the store")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_runner_fences_and_lifts_through_its_callback() -> None:
    """SelfFence.check(): the reports of the publisher, the main loop and the probe drive
    the callback; a failing callback leaves the state unchanged."""
    clock = _Clock()
    calls: list[bool] = []
    sf = SelfFence("k0", calls.append, _no_store, clock=clock)
    sf.configure(T, 1.0)
    sf.local_master(True)
    sf.wrote(100.0)
    sf.read(100.0, _cd("db0"))
    clock.now = 101.9
    assert sf.check() is Action.NOTHING and calls == []
    clock.now = 102.1
    assert sf.check() is Action.FENCE and calls == [True] and is_fenced(sf)
    assert sf.check() is Action.NOTHING  # stays fenced, no second call
    sf.wrote(102.2)
    assert sf.check() is Action.NOTHING  # written, but not named master yet
    sf.read(102.3, _cd("db0"))
    assert sf.check() is Action.UNFENCE and calls == [True, False] and not is_fenced(sf)
    sf.read(102.4, _cd("db1"))
    assert sf.check() is Action.FENCE and calls == [True, False, True]
    sf.local_master(False)
    # no longer a master: the fence leaves the configuration (else a later promotion of
    # this server would start it read-only with nobody to lift it)
    assert sf.check() is Action.FORGET and not is_fenced(sf) and calls == [True, False, True, False]
    assert sf.check() is Action.NOTHING and calls == [True, False, True, False]


def test_probe_reads_only_when_nobody_read_for_a_probe_period() -> None:
    """The probe covers a main loop busy with a long step: it reads the cluster data itself
    only ``every`` (min(sleepInterval, timeout/3)) after the last successful read by anyone;
    a usable or an unusable read both count, a failed one (no report) does not."""
    clock = _Clock()
    sf = SelfFence("k0", lambda on: None, _no_store, clock=clock)
    sf.configure(T, 1.0)  # every = min(1.0, T/3)
    every = min(1.0, T / 3)
    assert sf.probe_due(100.0) == 0.0  # never read: now
    sf.read(100.0, _cd("db0"))
    assert sf.probe_due(100.2) == pytest.approx(every - 0.2)
    sf.read(100.5, _cd("db1"))  # a read naming another master counts as a read too
    assert sf.probe_due(100.6) == pytest.approx(every - 0.1)
    sf.read(100.3, _cd("db0"))  # an older read (started before) moves nothing
    assert sf.probe_due(100.6) == pytest.approx(every - 0.1)
    sf.read_unusable(101.0)
    assert sf.probe_due(101.0) == pytest.approx(every)
    assert sf.probe_due(101.0 + every + 5) == 0.0  # nobody read since: due


def test_runner_keeps_state_when_the_server_cannot_be_told() -> None:
    from stolon.postgres.errors import PostgresError

    clock = _Clock()

    def broken(on: bool) -> None:
        raise PostgresError("connection refused")

    sf = SelfFence("k0", broken, _no_store, clock=clock)
    sf.configure(T, 1.0)
    sf.local_master(True)
    clock.now = 103.0
    assert sf.check() is Action.NOTHING and not is_fenced(sf)  # retried at the next check


def _spec(**kw: str) -> ClusterSpec:
    return ClusterSpec.from_obj({"initMode": "new", **kw})


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ({}, "17.5s"),  # Go's defaults: sleepInterval 5s, failInterval 20s
        ({"sleepInterval": "1s", "failInterval": "3s"}, "2.5s"),
        ({"sleepInterval": "1s", "failInterval": "2s"}, "1.5s"),
        ({"sleepInterval": "1s", "failInterval": "5s"}, "4.5s"),
        ({"sleepInterval": "2s", "failInterval": "2s"}, "0s"),  # no room below failInterval: off
        ({"sleepInterval": "1s", "failInterval": "3s", "selfFencingTimeout": "2s"}, "2s"),
        ({"sleepInterval": "1s", "failInterval": "3s", "selfFencingTimeout": "0s"}, "0s"),
    ],
)
def test_timeout_in_force(fields: dict[str, str], want: str) -> None:
    got = _spec(**fields).d().self_fencing_timeout
    assert got == Duration.parse(want), (got, want)


@pytest.mark.parametrize("value", ["1s", "500ms", "3s", "10s"])
def test_new_input_out_of_range_is_refused_stored_warns_and_turns_it_off(value: str) -> None:
    spec = _spec(sleepInterval="1s", failInterval="3s", selfFencingTimeout=value)
    with pytest.raises(SpecError) as e:
        spec.validate()
    assert str(e.value).startswith("selfFencingTimeout") and "0s to turn self-fencing off" in str(e.value)
    warnings = spec.validate_stored()
    assert [w.path for w in warnings] == ["selfFencingTimeout"]
    in_force = spec.d().self_fencing_timeout
    assert in_force == Duration(0) or in_force > Duration.parse("1s")


def has_residue(sf: SelfFence) -> bool:
    return sf.residue


class _HalfWay:
    """A server that takes the fence into its configuration, then cannot be told (reload
    refused: it is shutting down), as the chaos matrix's freeze row hit it."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.broken = True

    def __call__(self, on: bool) -> None:
        from stolon.postgres.errors import PostgresError

        self.calls.append(on)
        if self.broken:
            raise PostgresError("reload failed: the database system is shutting down")


def test_a_fence_that_failed_half_way_is_dropped_when_the_server_is_demoted() -> None:
    """Regression (chaos matrix, freeze row): the master resumed from SIGSTOP, its fence
    failed half-way (written, reload refused: the server was being stopped to rejoin as a
    standby), the keeper counted it unfenced and never dropped it: promoted again in a
    later failover, the server refused every write, forever."""
    clock = _Clock()
    server = _HalfWay()
    sf = SelfFence("k0", server, _no_store, clock=clock)
    sf.configure(T, 1.0)
    sf.local_master(True)
    clock.now = 103.0
    assert sf.check() is Action.NOTHING and not is_fenced(sf) and has_residue(sf)
    assert sf.check() is Action.NOTHING and server.calls == [True, True]  # still due: retried
    sf.local_master(False)  # demoted; the next configuration must not carry the fence
    assert sf.check() is Action.NOTHING and server.calls == [True, True, False]  # refused: retried
    server.broken = False
    assert sf.check() is Action.FORGET and server.calls == [True, True, False, False] and not has_residue(sf)
    assert sf.check() is Action.NOTHING and server.calls == [True, True, False, False]


def test_a_fence_that_failed_half_way_is_lifted_when_the_store_confirms_again() -> None:
    clock = _Clock()
    server = _HalfWay()
    sf = SelfFence("k0", server, _no_store, clock=clock)
    sf.configure(T, 1.0)
    sf.local_master(True)
    clock.now = 103.0
    assert sf.check() is Action.NOTHING and has_residue(sf)
    server.broken = False
    sf.wrote(103.1)
    sf.read(103.1, _cd("db0"))
    assert sf.check() is Action.UNFENCE and server.calls == [True, False] and not has_residue(sf)
    assert not is_fenced(sf)


def test_an_unusable_cluster_data_confirms_the_last_usable_reading() -> None:
    """A malformed cluster data (skipped by every component) can't hide a new master: it
    keeps a confirmed master unfenced and a superseded one fenced."""
    clock = _Clock()
    calls: list[bool] = []
    sf = SelfFence("k0", calls.append, _no_store, clock=clock)
    sf.configure(T, 1.0)
    sf.local_master(True)
    sf.wrote(100.0)
    sf.read(100.0, _cd("db0"))
    for t in (101.0, 102.0, 103.0, 104.0):
        clock.now = t + 0.5
        sf.wrote(t)
        sf.read_unusable(t)
        assert sf.check() is Action.NOTHING and calls == []
    sf.read(104.6, _cd("db1"))
    assert sf.check() is Action.FENCE and calls == [True]
    sf.read_unusable(105.0)
    clock.now = 105.1
    assert sf.check() is Action.NOTHING and calls == [True]  # still fenced
