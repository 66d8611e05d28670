"""Proxy health policies: where a listener's new connections may go.

A policy is a plugin (entry-point group ``stolon.proxy_health``, hook
``stolon_proxy_health_policies``), chosen per listener by name. Its factory gets the
listener's settings (``--listener policy=readonly,max-lag=1MiB`` gives
``{"max-lag": "1MiB"}``) and returns an object with the :class:`HealthPolicy` interface.
The checker calls it once per check with the cluster data it just read; the data path
never calls it.

Built in:

``master``
    Go Stolon's proxy: the DB named by ``proxy.spec.masterDbUid``, only while this proxy
    is in ``proxy.spec.enabledProxies``.
``readonly``
    healthy, converged standbys on the master's timeline whose lag behind the master
    (master ``xLogPos`` minus standby ``xLogPos``, as the keepers report them in the
    cluster data) is at most ``max-lag`` bytes (default: the cluster's
    ``maxStandbyLag``); optionally the master too (``include-master=true``). Connections
    are spread with ``balance=least-conn`` (default) or ``round-robin``.

Both route nowhere while this proxy is not enabled: the sentinel lists a proxy only once
it knows the proxy is alive and converged, so an unknown proxy never serves anyone.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import stolon
from stolon.hookspecs import MethodSpec, ProxyHealthPolicySpec
from stolon.model.cluster import DB, ROLE_STANDBY, ClusterData
from stolon.model.spec import ClusterSpec
from stolon.plugins import StolonPluginManager
from stolon.proxy.routing import Balance, Destination


class PolicyError(ValueError):
    """An unknown policy or unusable policy settings."""


@dataclass(frozen=True)
class ClusterView:
    """What a policy decides from: the cluster data and who this proxy is."""

    cd: ClusterData
    proxy_uid: str

    @property
    def enabled(self) -> bool:
        """Whether this proxy is in ``proxy.spec.enabledProxies``."""
        proxy = self.cd.proxy
        return proxy is not None and self.proxy_uid in (proxy.spec.enabled_proxies or ())

    @property
    def dbs(self) -> Mapping[str, DB]:
        return self.cd.dbs or {}


@runtime_checkable
class HealthPolicy(Protocol):
    """The interface a ``stolon.proxy_health`` plugin's factory returns."""

    @property
    def name(self) -> str:
        """The policy's registry name (for logs, spans and metrics)."""

    @property
    def balance(self) -> Balance:
        """How a new connection picks among several destinations."""

    def destinations(self, view: ClusterView) -> Sequence[Destination] | None:
        """Where new connections may go; ``None`` or empty: nowhere (refuse them).

        Pure: no I/O, no clock. Connections to a destination that is no longer returned
        are closed, so a policy decides both where new clients go and which existing
        clients must be cut off. Only DBs of the cluster data at the address their keeper
        published (:func:`db_destination`), and nowhere while this proxy is not enabled;
        never raise, whatever the document holds (it comes from the store). Checked by
        :class:`stolon.testing.proxy_health_contract.HealthPolicyContract`.
        """


def db_destination(db: DB) -> Destination | None:
    """The address a DB's keeper reports, or ``None`` when it reports none usable."""
    host = db.status.listen_address
    port = db.status.port
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return Destination(db.uid, host, int(port))


# -- master ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterPolicy:
    """Go Stolon's routing: the master DB, only while enabled."""

    name: str = "master"
    balance: Balance = Balance.LEAST_CONNECTIONS

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MasterPolicy:
        _check_keys("master", settings, ())
        return cls()

    def destinations(self, view: ClusterView) -> Sequence[Destination] | None:
        dest = master_destination(view)
        return None if dest is None else (dest,)


def master_destination(view: ClusterView) -> Destination | None:
    proxy = view.cd.proxy
    if proxy is None or not view.enabled:
        return None
    db = view.dbs.get(proxy.spec.master_db_uid)
    return None if db is None else db_destination(db)


# -- readonly -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadOnlyPolicy:
    """Standbys close enough to the master, spread over; see the module docstring."""

    #: bytes; ``None``: the cluster spec's maxStandbyLag
    max_lag: int | None = None
    include_master: bool = False
    balance: Balance = Balance.LEAST_CONNECTIONS
    name: str = "readonly"

    SETTINGS = ("max-lag", "include-master", "balance")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ReadOnlyPolicy:
        _check_keys("readonly", settings, cls.SETTINGS)
        max_lag = None
        if settings.get("max-lag") not in (None, ""):
            max_lag = parse_size(str(settings["max-lag"]), "max-lag")
        include_master = parse_bool(str(settings.get("include-master", "false")), "include-master")
        balance_text = str(settings.get("balance", Balance.LEAST_CONNECTIONS.value))
        try:
            balance = Balance(balance_text)
        except ValueError:
            choices = ", ".join(b.value for b in Balance)
            raise PolicyError(f"readonly: balance={balance_text!r}: use one of {choices}") from None
        return cls(max_lag=max_lag, include_master=include_master, balance=balance)

    def lag_bound(self, cd: ClusterData) -> int:
        if self.max_lag is not None:
            return self.max_lag
        cluster = cd.cluster
        spec = cluster.spec if cluster is not None else None
        return (spec or ClusterSpec()).d().max_standby_lag

    def destinations(self, view: ClusterView) -> Sequence[Destination] | None:
        if not view.enabled:
            return None
        out = [dest for db in self.usable_standbys(view.cd) if (dest := db_destination(db)) is not None]
        if self.include_master:
            master = master_destination(view)
            if master is not None:
                out.append(master)
        return out or None

    def usable_standbys(self, cd: ClusterData) -> list[DB]:
        """Standbys that may serve reads now, in DB uid order."""
        cluster = cd.cluster
        dbs = cd.dbs or {}
        master = dbs.get(cluster.status.master) if cluster is not None else None
        if master is None:
            return []  # no master: lag unknown, so no standby is known to be close enough
        bound = self.lag_bound(cd)
        out: list[DB] = []
        for uid in sorted(dbs):
            db = dbs[uid]
            if uid == master.uid or db.spec is None or db.spec.role != ROLE_STANDBY:
                continue
            st = db.status
            if not st.healthy or st.current_generation != db.generation:
                continue
            if st.timeline_id != master.status.timeline_id:
                continue
            if max(0, master.status.xlog_pos - st.xlog_pos) > bound:
                continue
            out.append(db)
        return out


# -- settings parsing -----------------------------------------------------------------------------

_SIZE = re.compile(r"\s*([0-9]+)\s*([a-zA-Z]*)\s*")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}


def parse_size(text: str, what: str) -> int:
    """A byte count: ``1048576``, ``512kB``, ``1MiB``, ``2G`` (units are powers of 1024, as
    PostgreSQL's)."""
    m = _SIZE.fullmatch(text)
    if m is None or m.group(2).lower() not in _SIZE_UNITS:
        raise PolicyError(f"{what}={text!r}: use a byte count such as 1048576, 512kB or 1MiB")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def parse_bool(text: str, what: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise PolicyError(f"{what}={text!r}: use true or false")


def _check_keys(policy: str, settings: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in settings:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            fix = f' (did you mean "{hint[0]}"?)' if hint else ""
            allowed = f"; it takes {', '.join(known)}" if known else "; it takes none"
            raise PolicyError(f"{policy} policy: unknown setting {key!r}{fix}{allowed}")


# -- the plugins (entry points ``stolon.proxy_health``: master, readonly) ---------------------------


class _MasterPlugin:
    @stolon.hookimpl
    def stolon_proxy_health_policies(self) -> Sequence[ProxyHealthPolicySpec]:
        return [
            MethodSpec(
                name="master",
                factory=MasterPolicy.from_settings,
                description="the current master, while this proxy is enabled (Go Stolon's proxy)",
            )
        ]


class _ReadOnlyPlugin:
    @stolon.hookimpl
    def stolon_proxy_health_policies(self) -> Sequence[ProxyHealthPolicySpec]:
        return [
            MethodSpec(
                name="readonly",
                factory=ReadOnlyPolicy.from_settings,
                description="healthy standbys within a lag bound, spread over (read-only listener)",
                details={"settings": ", ".join(ReadOnlyPolicy.SETTINGS)},
            )
        ]


master_plugin = _MasterPlugin()
readonly_plugin = _ReadOnlyPlugin()


def plugin_policy(plugins: StolonPluginManager, name: str, settings: Mapping[str, Any]) -> HealthPolicy:
    """Build the policy ``name`` from the installed plugins (:func:`load_policy`); a policy
    whose plugin is blocked or failed to load is named with its distribution."""
    registry = plugins.proxy_health_policies()
    if name not in registry:
        for rec in plugins.records:
            if rec.kind == "proxy_health" and rec.name == name and (rec.error or rec.blocked):
                why = "is blocked by STOLON_BLOCK_PLUGINS" if rec.blocked else f"failed to load: {rec.error}"
                raise PolicyError(f"proxy health policy {name!r} ({rec.distribution} {rec.version}) {why}")
    return load_policy(name, settings, registry)


def load_policy(
    name: str, settings: Mapping[str, Any], registry: Mapping[str, ProxyHealthPolicySpec]
) -> HealthPolicy:
    """Build the policy ``name`` from ``registry`` (the first plugin providing a name wins),
    with ``settings``; :class:`PolicyError` says what is wrong."""
    spec = registry.get(name)
    if spec is None:
        installed = ", ".join(sorted(registry)) or "none"
        raise PolicyError(f"unknown proxy health policy {name!r}: installed policies are {installed}")
    try:
        policy = spec.factory(dict(settings))
    except PolicyError:
        raise
    except (ValueError, TypeError) as e:
        raise PolicyError(f"{name} policy: {e}") from None
    if not isinstance(policy, HealthPolicy):
        raise PolicyError(f"proxy health policy {name!r} returned {policy!r}, which has no destinations()")
    return policy
