"""Health policies: the master policy (Go Stolon's routing) and the read-only policy."""

from __future__ import annotations

import pytest

from stolon.hookspecs import MethodSpec
from stolon.plugins import load_plugins
from stolon.proxy.policies import (
    ClusterView,
    HealthPolicy,
    MasterPolicy,
    PolicyError,
    ReadOnlyPolicy,
    load_policy,
    parse_size,
    plugin_policy,
)
from stolon.proxy.routing import Balance, Destination
from stolon.testing.proxy_harness import CDDef, DBDef, make_cd, master_db

ME = "p1"
MB = 1024 * 1024


def cd_def(**kw: object) -> CDDef:
    d = CDDef(
        dbs=[
            master_db("m", 5000, xlog_pos=10 * MB),
            DBDef("s1", 5001, xlog_pos=10 * MB - 100),
            DBDef("s2", 5002, xlog_pos=8 * MB),
        ],
        master="m",
        enabled_proxies=[ME],
    )
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def view(d: CDDef, uid: str = ME) -> ClusterView:
    return ClusterView(make_cd(d), uid)


def ports(dests: object) -> list[int]:
    assert dests is not None
    return [d.port for d in dests]  # type: ignore[attr-defined]


# -- master -------------------------------------------------------------------------------------


def test_master_routes_to_master_db_when_enabled() -> None:
    assert MasterPolicy().destinations(view(cd_def())) == (Destination("m", "127.0.0.1", 5000),)


def test_master_not_enabled_routes_nowhere() -> None:
    assert MasterPolicy().destinations(view(cd_def(), uid="other")) is None
    assert MasterPolicy().destinations(view(cd_def(enabled_proxies=[]))) is None


def test_master_follows_master_db_uid_not_cluster_master() -> None:
    # during a failover the sentinel clears masterDbUid before anything else
    assert MasterPolicy().destinations(view(cd_def(master_db_uid=""))) is None
    assert ports(MasterPolicy().destinations(view(cd_def(master_db_uid="s1")))) == [5001]
    assert MasterPolicy().destinations(view(cd_def(master_db_uid="gone"))) is None


def test_master_with_unusable_address_routes_nowhere() -> None:
    d = cd_def()
    cd = make_cd(d)
    assert cd.dbs is not None
    cd.dbs["m"].status.port = "not-a-port"
    assert MasterPolicy().destinations(ClusterView(cd, ME)) is None
    cd.dbs["m"].status.port = "5000"
    cd.dbs["m"].status.listen_address = ""
    assert MasterPolicy().destinations(ClusterView(cd, ME)) is None


def test_no_proxy_object() -> None:
    cd = make_cd(cd_def())
    cd.proxy = None
    v = ClusterView(cd, ME)
    assert not v.enabled
    assert MasterPolicy().destinations(v) is None


def test_master_takes_no_settings() -> None:
    with pytest.raises(PolicyError, match=r"unknown setting 'max-lag'.*takes none"):
        MasterPolicy.from_settings({"max-lag": "1"})


# -- readonly ------------------------------------------------------------------------------------


def test_readonly_default_bound_is_the_cluster_max_standby_lag() -> None:
    # default maxStandbyLag is Go's 1,232,896 bytes: s1 (100 bytes behind) qualifies, s2 (2 MiB) doesn't
    assert ports(ReadOnlyPolicy().destinations(view(cd_def()))) == [5001]
    assert ports(ReadOnlyPolicy().destinations(view(cd_def(max_standby_lag=3 * MB)))) == [5001, 5002]


def test_readonly_explicit_bound() -> None:
    assert ports(ReadOnlyPolicy(max_lag=3 * MB).destinations(view(cd_def()))) == [5001, 5002]
    assert ReadOnlyPolicy(max_lag=50).destinations(view(cd_def())) is None
    assert ports(ReadOnlyPolicy(max_lag=100).destinations(view(cd_def()))) == [5001]


def test_readonly_standby_ahead_of_the_reported_master_counts_as_no_lag() -> None:
    d = cd_def()
    d.dbs[1].xlog_pos = 11 * MB
    assert ports(ReadOnlyPolicy(max_lag=0).destinations(view(d))) == [5001]


@pytest.mark.parametrize(
    "change",
    [
        {"healthy": False},
        {"current_generation": 0},  # not converged
        {"timeline_id": 2},  # not on the master's timeline
        {"role": "master"},  # e.g. being promoted
    ],
)
def test_readonly_skips_unusable_standbys(change: dict[str, object]) -> None:
    d = cd_def()
    for k, v in change.items():
        setattr(d.dbs[1], k, v)
    assert ReadOnlyPolicy().destinations(view(d)) is None


def test_readonly_needs_a_master_and_enablement() -> None:
    assert ReadOnlyPolicy(max_lag=3 * MB).destinations(view(cd_def(master=""))) is None
    assert ReadOnlyPolicy(max_lag=3 * MB).destinations(view(cd_def(), uid="other")) is None
    # masterDbUid cleared (failover in progress): reads go on to the standbys
    assert ports(ReadOnlyPolicy().destinations(view(cd_def(master_db_uid="")))) == [5001]


def test_readonly_include_master() -> None:
    p = ReadOnlyPolicy(include_master=True)
    assert ports(p.destinations(view(cd_def()))) == [5001, 5000]
    # the master is included only as the master policy would route to it
    assert ports(p.destinations(view(cd_def(master_db_uid="")))) == [5001]


def test_readonly_settings() -> None:
    p = ReadOnlyPolicy.from_settings({"max-lag": "2MiB", "include-master": "true", "balance": "round-robin"})
    assert p == ReadOnlyPolicy(max_lag=2 * MB, include_master=True, balance=Balance.ROUND_ROBIN)
    assert ReadOnlyPolicy.from_settings({}) == ReadOnlyPolicy()
    with pytest.raises(PolicyError, match=r'unknown setting.*did you mean "max-lag"'):
        ReadOnlyPolicy.from_settings({"maxlag": "1"})
    with pytest.raises(PolicyError, match="max-lag='lots'"):
        ReadOnlyPolicy.from_settings({"max-lag": "lots"})
    with pytest.raises(PolicyError, match="balance='random'"):
        ReadOnlyPolicy.from_settings({"balance": "random"})
    with pytest.raises(PolicyError, match="include-master='maybe'"):
        ReadOnlyPolicy.from_settings({"include-master": "maybe"})


def test_parse_size() -> None:
    assert parse_size("1048576", "x") == MB
    assert parse_size("512kB", "x") == 512 * 1024
    assert parse_size("1MiB", "x") == MB
    assert parse_size("2G", "x") == 2 * 1024**3
    with pytest.raises(PolicyError):
        parse_size("-1", "x")


# -- the registry ---------------------------------------------------------------------------------


def test_builtin_policies_come_from_the_plugin_registry() -> None:
    pm = load_plugins(env={})
    registry = pm.proxy_health_policies()
    assert {"master", "readonly"} <= set(registry)
    recs = {r.name: r for r in pm.records if r.kind == "proxy_health"}
    assert recs["master"].loaded and recs["readonly"].loaded
    assert isinstance(plugin_policy(pm, "master", {}), MasterPolicy)
    ro = load_policy("readonly", {"max-lag": "10"}, registry)
    assert isinstance(ro, ReadOnlyPolicy) and ro.max_lag == 10
    assert isinstance(ro, HealthPolicy)


def test_unknown_policy_names_the_installed_ones() -> None:
    with pytest.raises(PolicyError, match=r"unknown proxy health policy 'nearest'.*master, readonly"):
        plugin_policy(load_plugins(env={}), "nearest", {})


def test_a_third_party_policy_is_used_through_the_registry() -> None:
    class Fixed:
        name = "fixed"
        balance = Balance.ROUND_ROBIN

        def __init__(self, settings: dict[str, str]) -> None:
            self.port = int(settings["port-of-db"])

        def destinations(self, view: ClusterView) -> list[Destination]:
            return [Destination("x", "127.0.0.1", self.port)]

    registry = {"fixed": MethodSpec("fixed", Fixed, "test")}
    policy = load_policy("fixed", {"port-of-db": "7"}, registry)
    assert ports(policy.destinations(view(cd_def()))) == [7]
    with pytest.raises(PolicyError, match="fixed policy"):
        load_policy("fixed", {"port-of-db": "x"}, registry)
    # a plugin whose factory does not build a HealthPolicy (mypy would catch it; a plugin
    # may not be type-checked): refused at run time
    bad = {"bad": MethodSpec("bad", lambda s: object(), "test")}
    with pytest.raises(PolicyError, match="has no destinations"):
        load_policy("bad", {}, bad)  # type: ignore[arg-type]
