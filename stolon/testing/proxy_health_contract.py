"""The proxy-health-policy contract test kit, importable by third-party policy plugins.

A health policy (``stolon.proxy_health`` entry point, hook ``stolon_proxy_health_policies``)
tells a proxy listener where new connections may go; connections to a destination it no
longer returns are closed (docs/proxy.md). The proxy's checker calls
``destinations(view)`` with every cluster data it reads, which is untrusted input. The kit
checks what the proxy relies on, over a set of cluster data documents (a healthy cluster,
a failover in progress, a cluster without a master, documents with missing or bad fields):

* the policy is installed and discoverable under its name; ``load_policy`` builds it from
  good settings and refuses bad ones with a one-line :class:`~stolon.proxy.policies.PolicyError`;
* ``name`` is the registry name and ``balance`` a :class:`~stolon.proxy.routing.Balance`;
* ``destinations()`` never raises, is pure (the same view gives the same answer, the view
  is not modified) and returns ``None`` or destinations;
* every destination is a DB of the cluster data at the address its keeper published
  (:func:`~stolon.proxy.policies.db_destination`), never an address of its own making;
* a proxy that is not in ``enabledProxies`` routes nowhere: the sentinel enables a proxy
  only once it knows it alive and converged.

Use it from a test module of your plugin::

    from stolon.testing.proxy_health_contract import HealthPolicyContract

    class TestMyPolicy(HealthPolicyContract):
        policy_name = "nearest"                       # your entry-point name
        invalid_settings = ({"zone": ""}, {"bogus": "1"})

        @pytest.fixture
        def policy_settings(self) -> dict[str, str]:
            return {"zone": "a"}                      # the listener's key=value pairs

Nothing here needs PostgreSQL, a store or the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from stolon.model.cluster import (
    DB,
    PHASE_NORMAL,
    ROLE_MASTER,
    ROLE_STANDBY,
    Cluster,
    ClusterData,
    ClusterStatus,
    DBSpec,
    DBStatus,
    Keeper,
    KeeperSpec,
    KeeperStatus,
    Proxy,
    ProxySpec,
)
from stolon.model.spec import ClusterSpec
from stolon.plugins import load_plugins
from stolon.proxy.policies import ClusterView, HealthPolicy, PolicyError, db_destination, load_policy
from stolon.proxy.routing import Balance, Destination

#: The UID of the proxy the kit asks for.
PROXY_UID = "proxy_contract"
MIB = 1024 * 1024


@dataclass(frozen=True)
class _DB:
    uid: str
    role: str = ROLE_STANDBY
    port: str = "5432"
    host: str = "127.0.0.1"
    healthy: bool = True
    xlog_pos: int = 10 * MIB
    timeline: int = 1
    converged: bool = True


def cluster_data(
    dbs: Sequence[_DB], *, master: str, proxy_master: str | None = None, enabled: bool = True
) -> ClusterData:
    """A cluster data document as the sentinel writes it (``proxy_master`` defaults to the
    master: proxies pointed; ``""``: fenced)."""
    out_dbs: dict[str, DB] = {}
    keepers: dict[str, Keeper] = {}
    for d in dbs:
        keepers[f"k_{d.uid}"] = Keeper(
            uid=f"k_{d.uid}", spec=KeeperSpec(), status=KeeperStatus(healthy=d.healthy)
        )
        out_dbs[d.uid] = DB(
            uid=d.uid,
            generation=2,
            spec=DBSpec(keeper_uid=f"k_{d.uid}", role=d.role),
            status=DBStatus(
                healthy=d.healthy,
                current_generation=2 if d.converged else 1,
                listen_address=d.host,
                port=d.port,
                timeline_id=d.timeline,
                xlog_pos=d.xlog_pos,
            ),
        )
    return ClusterData(
        cluster=Cluster(
            uid="contract",
            generation=1,
            spec=ClusterSpec(init_mode="new"),
            status=ClusterStatus(current_generation=1, phase=PHASE_NORMAL, master=master),
        ),
        keepers=keepers,
        dbs=out_dbs,
        proxy=Proxy(
            generation=3,
            spec=ProxySpec(
                master_db_uid=master if proxy_master is None else proxy_master,
                enabled_proxies=[PROXY_UID] if enabled else [],
            ),
        ),
    )


def documents() -> Iterator[tuple[str, ClusterData]]:
    """Named cluster data documents every policy must handle."""
    three = [_DB("m", ROLE_MASTER, "5000"), _DB("s1", port="5001"), _DB("s2", port="5002", xlog_pos=MIB)]
    yield "healthy", cluster_data(three, master="m")
    yield "fenced (failover step 1)", cluster_data(three, master="s1", proxy_master="")
    yield (
        "new master not yet promoted",
        cluster_data(
            [_DB("m", ROLE_MASTER, "5000", healthy=False), _DB("s1", ROLE_MASTER, "5001", converged=False)],
            master="s1",
            proxy_master="",
        ),
    )
    yield (
        "unhealthy standbys",
        cluster_data(
            [
                _DB("m", ROLE_MASTER, "5000"),
                _DB("s1", port="5001", healthy=False),
                _DB("s2", port="5002", timeline=2),
            ],
            master="m",
        ),
    )
    yield "no master", cluster_data([_DB("s1", port="5001")], master="")
    yield "master not in the dbs", cluster_data([_DB("s1", port="5001")], master="gone", proxy_master="gone")
    yield (
        "bad addresses",
        cluster_data(
            [_DB("m", ROLE_MASTER, "notaport"), _DB("s1", port="70000"), _DB("s2", port="", host="")],
            master="m",
        ),
    )
    yield "no dbs", cluster_data([], master="")
    yield "empty document", ClusterData()
    missing = cluster_data(three, master="m")
    for db in (missing.dbs or {}).values():
        db.spec = None
    missing.keepers = None
    yield "dbs without spec, no keepers", missing
    no_proxy = cluster_data(three, master="m")
    no_proxy.proxy = None
    yield "no proxy object", no_proxy


class HealthPolicyContract:
    """The behaviour every proxy health policy must have (see the module docstring)."""

    #: the ``stolon.proxy_health`` entry-point name of the policy under test
    policy_name: str = ""
    #: listener settings the factory must refuse
    invalid_settings: tuple[dict[str, str], ...] = ({"no-such-setting-for-any-policy": "1"},)

    @pytest.fixture
    def policy_settings(self) -> dict[str, str]:
        return {}

    @pytest.fixture
    def policy(self, policy_settings: dict[str, str]) -> HealthPolicy:
        assert self.policy_name, "set policy_name to your stolon.proxy_health entry-point name"
        return load_policy(self.policy_name, policy_settings, load_plugins().proxy_health_policies())

    def test_discoverable_with_a_description(self) -> None:
        specs = load_plugins().proxy_health_policies()
        assert self.policy_name in specs, (
            f"{self.policy_name!r} is not an installed stolon.proxy_health plugin"
        )
        assert specs[self.policy_name].description.strip()

    def test_names_itself_and_its_balance(self, policy: HealthPolicy) -> None:
        assert isinstance(policy, HealthPolicy)
        assert policy.name == self.policy_name
        assert isinstance(policy.balance, Balance)

    def test_bad_settings_are_refused_with_one_line(self) -> None:
        registry = load_plugins().proxy_health_policies()
        for settings in self.invalid_settings:
            with pytest.raises(PolicyError) as info:
                load_policy(self.policy_name, settings, registry)
            assert str(info.value) and "\n" not in str(info.value), (settings, str(info.value))

    @pytest.mark.parametrize("name, cd", list(documents()), ids=[name for name, _ in documents()])
    def test_any_document_gives_real_published_destinations(
        self, policy: HealthPolicy, name: str, cd: ClusterData
    ) -> None:
        before = json.dumps(cd.to_obj(), sort_keys=True)
        view = ClusterView(cd, PROXY_UID)
        got = policy.destinations(view)
        again = policy.destinations(view)
        assert json.dumps(cd.to_obj(), sort_keys=True) == before, "destinations() modified the cluster data"
        assert _plain(got) == _plain(again), "destinations() is not deterministic"
        dbs = cd.dbs or {}
        for dest in got or ():
            assert isinstance(dest, Destination), dest
            assert dest.db_uid in dbs, f"{dest} is not a DB of the cluster data"
            assert dest == db_destination(dbs[dest.db_uid]), f"{dest} is not the address its keeper published"

    @pytest.mark.parametrize("name, cd", list(documents()), ids=[name for name, _ in documents()])
    def test_a_proxy_that_is_not_enabled_routes_nowhere(
        self, policy: HealthPolicy, name: str, cd: ClusterData
    ) -> None:
        assert not policy.destinations(ClusterView(cd, "proxy_not_enabled"))


def _plain(dests: Sequence[Destination] | None) -> list[Destination]:
    return list(dests or ())
