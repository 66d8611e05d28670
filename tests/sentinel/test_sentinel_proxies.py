"""Proxy liveness (Go's TestActiveProxiesInfos) and enabled proxies."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from stolon.model.infos import ProxyInfo
from stolon.sentinel import Memory, Observations, ProxyInfoSeen, active_proxies, decide
from stolon.sentinel import events as ev
from stolon.testing.sentinel_builders import CD, MASTER, NOW, pick_first, uids

T = 1000.0
TIMEOUT_NS = 15 * 10**9
P1 = ProxyInfo(uid="proxy1", info_uid="infoUID1", proxy_timeout_ns=TIMEOUT_NS)
P2 = ProxyInfo(uid="proxy2", info_uid="infoUID2", proxy_timeout_ns=TIMEOUT_NS)
P2_NEW = ProxyInfo(uid="proxy2", info_uid="differentInfoUID")


@dataclass
class Case:
    name: str
    history: dict[str, ProxyInfoSeen]
    infos: dict[str, ProxyInfo]
    active: list[str]
    new_history: dict[str, str] = field(default_factory=dict)  # uid -> infoUID


CASES = [
    Case("should do nothing when called with empty proxyInfos", {}, {}, [], {}),
    Case(
        "should append to histories when called with proxyInfos",
        {},
        {"proxy1": P1, "proxy2": P2},
        ["proxy1", "proxy2"],
        {"proxy1": "infoUID1", "proxy2": "infoUID2"},
    ),
    Case(
        "should update to histories if infoUID is different",
        {"proxy1": ProxyInfoSeen("infoUID1", T), "proxy2": ProxyInfoSeen("infoUID2", T)},
        {"proxy1": P1, "proxy2": P2_NEW},
        ["proxy1", "proxy2"],
        {"proxy1": "infoUID1", "proxy2": "differentInfoUID"},
    ),
    Case(
        "should remove from active proxies if is not updated for twice the DefaultProxyTimeout",
        {"proxy1": ProxyInfoSeen("infoUID1", T - 45), "proxy2": ProxyInfoSeen("infoUID2", T - 15)},
        {"proxy1": P1, "proxy2": P2},
        ["proxy2"],
        {"proxy1": "infoUID1", "proxy2": "infoUID2"},
    ),
    Case(
        "should remove proxy from sentinel's local history if the proxy is removed in store",
        {"proxy1": ProxyInfoSeen("infoUID1", T), "proxy2": ProxyInfoSeen("infoUID2", T)},
        {"proxy2": P2},
        ["proxy2"],
        {"proxy2": "infoUID2"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_active_proxies_infos(case: Case) -> None:
    history_before = dict(case.history)
    active, history = active_proxies(case.infos, case.history, T)
    assert sorted(active) == case.active
    assert {uid: h.info_uid for uid, h in history.items()} == case.new_history
    assert case.history == history_before  # inputs untouched


def test_changed_info_restarts_the_timer() -> None:
    _, history = active_proxies({"proxy2": P2_NEW}, {"proxy2": ProxyInfoSeen("infoUID2", T - 100)}, T)
    assert history["proxy2"] == ProxyInfoSeen("differentInfoUID", T)


def settled() -> CD:
    return (
        CD()
        .keeper("keeper1")
        .db("db1", "keeper1", role=MASTER)
        .master("db1")
        .spec(max_standbys_per_sender=1)
        .proxy(generation=3, master="db1", enabled=["proxy1"])
    )


def test_enabled_proxies_follow_the_active_ones() -> None:
    b = settled().proxy_info("proxy1", 3).proxy_info("proxy2", 3)
    d = b.decide()
    assert d.of(ev.EnabledProxiesChanged) == [ev.EnabledProxiesChanged(("proxy1",), ("proxy1", "proxy2"), 4)]
    assert d.active_proxies == ("proxy1", "proxy2")
    assert d.cluster_data is not None and d.cluster_data.proxy is not None
    assert d.cluster_data.proxy.spec.enabled_proxies == ["proxy1", "proxy2"]


def test_no_active_proxy_does_not_bump_the_generation_every_cycle() -> None:
    """Go compares the stored nil list with [] and bumps the proxy generation each cycle."""
    b = settled().proxy(generation=3, master="db1", enabled=None)
    cd, mem, t = b.build(), Memory.empty(), NOW
    for _ in range(3):
        d = decide(cd, b.observations(), mem, t, new_uid=uids(), pick_index=pick_first)
        assert d.cluster_data is not None and d.cluster_data.proxy is not None
        cd, mem, t = d.cluster_data, d.memory, t.after(5)
        assert cd.proxy is not None and cd.proxy.generation == 3
    assert not d.of(ev.EnabledProxiesChanged)


def test_stale_proxy_dropped_from_enabled_proxies() -> None:
    b = settled().proxy(generation=3, master="db1", enabled=["proxy1", "proxy2"])
    b.proxy_info("proxy1", 3).proxy_info("proxy2", 3)
    obs = b.observations()
    mem = Memory(proxy_infos={"proxy1": ProxyInfoSeen("proxy1-info", NOW.mono - 31)})
    d = decide(
        b.build(),
        Observations(keepers_info=obs.keepers_info, proxies_info=obs.proxies_info),
        mem,
        NOW,
        new_uid=uids(),
        pick_index=pick_first,
    )
    assert d.active_proxies == ("proxy2",)
    assert d.of(ev.EnabledProxiesChanged) == [ev.EnabledProxiesChanged(("proxy1", "proxy2"), ("proxy2",), 4)]
