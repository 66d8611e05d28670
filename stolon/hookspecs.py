"""Every hook a stolon plugin can implement, grouped by lifecycle.

Plugins are modules or objects named by an entry point in one of the groups
``stolon.store``, ``stolon.fencing``, ``stolon.backup`` and ``stolon.proxy_health``; the
entry-point name is the name users write (``--store-backend etcdv3``). Each loaded plugin is
registered in one pluggy ``PluginManager`` as ``<kind>:<name>`` and implements hooks from
this module, marked with :data:`stolon.hookimpl`.

Two styles of hook:

* **Registries** (called once at start-up, all results collected, never on the failover
  path): a plugin hands the core a factory; the core then calls the object it builds
  directly on hot paths, without pluggy in between. Installed is not enabled: the
  configuration names which backend, fencing method or backup method to use.
* **Events and compositions**, e.g. plugin-added stolonctl commands. Hooks the keeper,
  sentinel and proxy call (a ``before_promote`` fencing step, a first-result proxy health
  verdict, ``after_decision`` notifications) are added here together with their call
  sites, so that no hook exists that nothing calls.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from stolon.fencing.base import FencingOutcome, FencingTarget
    from stolon.store.base import Store, StoreConfig

hookspec = pluggy.HookspecMarker("stolon")

#: Plugin kinds and their entry-point groups.
KIND_GROUPS: dict[str, str] = {
    "store": "stolon.store",
    "fencing": "stolon.fencing",
    "backup": "stolon.backup",
    "proxy_health": "stolon.proxy_health",
}


@dataclass(frozen=True)
class StoreBackendSpec:
    """A store backend a plugin provides.

    ``factory`` builds a connected :class:`stolon.store.base.Store` from the common store
    flags; it raises :class:`stolon.store.base.StoreConfigError` for unusable settings.
    """

    name: str
    factory: Callable[[StoreConfig], Store]
    description: str
    #: Used when ``--store-endpoints`` is empty (Go Stolon: etcd http://127.0.0.1:2379).
    default_endpoints: tuple[str, ...] = ()
    #: What ``--store-endpoints`` means for this backend, for help and error messages.
    endpoints_help: str = "comma-separated URLs"


@dataclass(frozen=True)
class MethodSpec:
    """A fencing method, backup method or proxy health policy a plugin provides.

    ``factory`` takes the method's settings from the cluster spec (a JSON object) and
    returns the object the core calls; its interface is defined by the component that
    calls it (sentinel fencing, keeper backup, proxy routing).
    """

    name: str
    factory: Callable[[dict[str, Any]], Any]
    description: str
    #: Free-form facts shown by ``stolonctl plugins`` (e.g. which binary it drives).
    details: dict[str, str] = field(default_factory=dict)


# -- registries: start-up, all results, off the failover path --------------------------------


@hookspec
def stolon_store_backends() -> Sequence[StoreBackendSpec]:  # type: ignore[empty-body]
    """Return the store backends this plugin provides.

    When: once, when a daemon or stolonctl opens its store. All results are collected.
    Not on the failover path. A name may be provided by one plugin only.
    """


@hookspec
def stolon_fencing_methods() -> Sequence[MethodSpec]:  # type: ignore[empty-body]
    """Return the fencing methods this plugin provides (used by the sentinel before it
    promotes a new master while the old one may be alive). All results are collected.

    ``MethodSpec.factory`` takes the method's ``config`` object from the cluster spec
    (``fencing.methods[]``) and returns a :class:`stolon.fencing.base.Fencer`; it raises
    ``ValueError`` for a bad config. The sentinel calls ``Fencer.fence`` directly.
    """


@hookspec
def stolon_backup_methods() -> Sequence[MethodSpec]:  # type: ignore[empty-body]
    """Return the backup and restore methods this plugin provides (WAL archiving, base
    backups, restores for ``initMode: pitr`` and new standbys). All results are collected;
    a name may be provided by one plugin only.

    ``MethodSpec.factory`` takes the method's ``settings`` from the cluster spec
    (``backup.settings``, or ``pitrConfig.fromBackup.settings``) and returns a
    :class:`stolon.backup.base.BackupMethod`; it raises
    :class:`stolon.backup.base.BackupConfigError` (or ``ValueError``) for bad settings.
    When: by the keeper when it applies a cluster spec with a ``backup`` section and when it
    restores a backup, and by ``stolonctl backup`` and ``stolonctl init/update`` (to check
    the settings). Not on the failover path: the keeper builds the method once per
    settings change and calls it directly. See docs/backup.md and the contract kit
    :mod:`stolon.testing.backup_contract`.
    """


@hookspec
def stolon_proxy_health_policies() -> Sequence[MethodSpec]:  # type: ignore[empty-body]
    """Return the proxy routing policies this plugin provides (which backends a proxy
    listener may route to). All results are collected; the first plugin providing a name
    wins. Each ``MethodSpec.factory`` takes the listener's settings (the ``key=value``
    pairs of its ``--listener`` flag) and returns a
    :class:`stolon.proxy.policies.HealthPolicy`. Called when a proxy starts, not per
    connection."""


# -- events on the failover path -------------------------------------------------------------


@hookspec
def stolon_fencing_done(target: FencingTarget, outcome: FencingOutcome) -> None:
    """An old master was fenced, or fencing it failed.

    When: in the leader sentinel, on the failover path, right after it ran the fencing
    methods configured in the cluster spec against ``target`` (the old master it is about to
    replace) and before the next decision promotes a new master, or refuses to under policy
    ``required`` when ``outcome.fenced`` is false. All implementations are called, in the
    sentinel's cycle thread: return quickly (hand slow work to a thread). The outcome is
    decided already; a hook can't change it, and an exception is logged and ignored. For
    alerting and audit.
    """


# -- stolonctl ---------------------------------------------------------------------------


@hookspec
def stolonctl_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add stolonctl subcommands.

    When: every stolonctl start, before parsing the command line. All implementations are
    called. A command sets ``func`` with ``parser.set_defaults(func=...)``; ``func`` gets
    the parsed namespace and a :class:`stolon.cli.ctlcontext.CtlContext` and returns the
    exit code.
    """
