"""Every hook a stolon plugin can implement, grouped by lifecycle.

Plugins are modules or objects named by an entry point in one of the groups
``stolon.store``, ``stolon.fencing``, ``stolon.backup`` and ``stolon.proxy_health``; the
entry-point name is the name users write (``--store-backend etcdv3``). Each loaded plugin is
registered in one pluggy ``PluginManager`` as ``<kind>:<name>`` and implements hooks from
this module, marked with :data:`stolon.hookimpl`.

Two styles of hook:

* **Registries** (called at start-up, all results collected, never on the failover
  path): a plugin hands the core a factory, typed per kind (:data:`FencingMethodSpec`,
  :data:`BackupMethodSpec`, :data:`ProxyHealthPolicySpec`, :class:`StoreBackendSpec`); the
  core then calls the object it builds directly on hot paths, without pluggy in between.
  Installed is not enabled: the configuration names which backend or method to use.
* **Events and compositions**: ``stolon_fencing_done`` (the sentinel, after fencing an old
  master) and ``stolonctl_add_commands`` (every stolonctl command, the built-in ones
  included).

No hook picks one answer among plugins (a registry collects every plugin's names; an
event informs every listener), so none is ``firstresult``. Each hook carries
:class:`HookFacts` (who calls it, when, whether on the failover path), from which
``docs/hooks.md`` is generated (:mod:`stolon.cli.hookdoc`). A hook is added together with
its call site and a built-in implementation; ``tests/unit/test_hooks.py`` checks that each
is documented and exercised.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import pluggy

# The store layer owns it (stolon/store/backends.py); the hook below returns it.
from stolon.store.backends import StoreBackendSpec

if TYPE_CHECKING:
    from stolon.backup.base import BackupMethod
    from stolon.fencing.base import Fencer, FencingOutcome, FencingTarget
    from stolon.proxy.policies import HealthPolicy

hookspec = pluggy.HookspecMarker("stolon")

F = TypeVar("F", bound=Callable[..., Any])
#: What a method factory builds (a fencer, a backup method, a proxy health policy).
M_co = TypeVar("M_co", covariant=True)


@dataclass(frozen=True)
class HookFacts:
    """What docs/hooks.md says about a hook besides its docstring and signature."""

    #: registry, event or composition
    style: str
    #: the processes that call it
    called_by: tuple[str, ...]
    #: when it is called
    when: str
    #: whether a failover waits for it
    failover_path: bool


def _facts(
    style: str, called_by: tuple[str, ...], when: str, *, failover_path: bool = False
) -> Callable[[F], F]:
    def mark(f: F) -> F:
        f.stolon_hook_facts = HookFacts(style, called_by, when, failover_path)  # type: ignore[attr-defined]
        return f

    return mark


def hook_facts(spec: Callable[..., Any]) -> HookFacts:
    """The :class:`HookFacts` of a hookspec function of this module."""
    facts = getattr(spec, "stolon_hook_facts", None)
    if not isinstance(facts, HookFacts):
        raise LookupError(f"hookspec {spec.__name__} has no HookFacts")
    return facts


#: Plugin kinds and their entry-point groups.
KIND_GROUPS: dict[str, str] = {
    "store": "stolon.store",
    "fencing": "stolon.fencing",
    "backup": "stolon.backup",
    "proxy_health": "stolon.proxy_health",
}


@dataclass(frozen=True)
class MethodSpec(Generic[M_co]):
    """A fencing method, backup method or proxy health policy a plugin provides.

    ``factory`` takes the method's settings (a JSON object from the cluster spec, or a
    proxy listener's ``key=value`` pairs) and returns the object the core calls, of the
    kind's interface: see :data:`FencingMethodSpec`, :data:`BackupMethodSpec` and
    :data:`ProxyHealthPolicySpec`.
    """

    name: str
    factory: Callable[[dict[str, Any]], M_co]
    description: str
    #: Free-form facts shown by ``stolonctl plugins`` (e.g. which binary it drives).
    details: dict[str, str] = field(default_factory=dict)


#: A fencing method: its factory builds a :class:`stolon.fencing.base.Fencer`.
FencingMethodSpec: TypeAlias = "MethodSpec[Fencer]"
#: A backup method: its factory builds a :class:`stolon.backup.base.BackupMethod`.
BackupMethodSpec: TypeAlias = "MethodSpec[BackupMethod]"
#: A proxy health policy: its factory builds a :class:`stolon.proxy.policies.HealthPolicy`.
ProxyHealthPolicySpec: TypeAlias = "MethodSpec[HealthPolicy]"


# -- registries: start-up, all results, off the failover path --------------------------------


@hookspec
@_facts(
    "registry",
    ("keeper", "sentinel", "proxy", "stolonctl"),
    "when the process opens its store (once, at start-up; stolonctl when a command needs the store)",
)
def stolon_store_backends() -> Sequence[StoreBackendSpec]:  # type: ignore[empty-body]
    """Return the store backends this plugin provides.

    All results are collected; a name may be provided by one plugin only (the first one
    registered is kept, the others are logged). ``StoreBackendSpec.factory`` builds a
    connected :class:`stolon.store.base.Store` from the common store flags; prove a backend
    with :class:`stolon.testing.store_contract.StoreContract`.
    """


@hookspec
@_facts(
    "registry",
    ("sentinel",),
    "when the leader sentinel runs the fencing step of a failover: once per fencing run, to find"
    " the configured methods by name (return a constant list; the fencing itself is Fencer.fence)",
    failover_path=True,
)
def stolon_fencing_methods() -> Sequence[FencingMethodSpec]:  # type: ignore[empty-body]
    """Return the fencing methods this plugin provides (used by the sentinel before it
    promotes a new master while the old one may be alive). All results are collected.

    The factory takes the method's ``config`` object from the cluster spec
    (``fencing.methods[]``) and returns a :class:`stolon.fencing.base.Fencer`; it raises
    ``ValueError`` for a bad config. The sentinel calls ``Fencer.fence`` directly, in a
    worker thread bounded by ``fencing.timeout``. Prove a method with
    :class:`stolon.testing.fencing_contract.FencingMethodContract`.
    """


@hookspec
@_facts(
    "registry",
    ("keeper", "stolonctl"),
    "when the keeper applies a cluster spec with a backup section or restores a backup"
    " (once per settings change), and when stolonctl backup/init/update checks the settings",
)
def stolon_backup_methods() -> Sequence[BackupMethodSpec]:  # type: ignore[empty-body]
    """Return the backup and restore methods this plugin provides (WAL archiving, base
    backups, restores for ``initMode: pitr`` and new standbys). All results are collected;
    a name may be provided by one plugin only.

    The factory takes the method's ``settings`` from the cluster spec (``backup.settings``,
    or ``pitrConfig.fromBackup.settings``) and returns a
    :class:`stolon.backup.base.BackupMethod`; it raises
    :class:`stolon.backup.base.BackupConfigError` (or ``ValueError``) for bad settings. The
    keeper builds the method once per settings change and calls it directly. See
    docs/backup.md and the contract kit :mod:`stolon.testing.backup_contract`.
    """


@hookspec
@_facts("registry", ("proxy",), "when the proxy starts (once per listener), never per connection")
def stolon_proxy_health_policies() -> Sequence[ProxyHealthPolicySpec]:  # type: ignore[empty-body]
    """Return the proxy routing policies this plugin provides (which backends a proxy
    listener may route to). All results are collected; the first plugin providing a name
    wins. Each factory takes the listener's settings (the ``key=value`` pairs of its
    ``--listener`` flag) and returns a :class:`stolon.proxy.policies.HealthPolicy`, which
    the proxy asks on every check of the cluster data. Prove a policy with
    :class:`stolon.testing.proxy_health_contract.HealthPolicyContract`."""


# -- events on the failover path -------------------------------------------------------------


@hookspec
@_facts(
    "event",
    ("sentinel",),
    "in the leader sentinel, right after it ran the fencing methods of the cluster spec"
    " against an old master and before the next decision promotes a new master (or refuses"
    " to, under policy required)",
    failover_path=True,
)
def stolon_fencing_done(target: FencingTarget, outcome: FencingOutcome) -> None:
    """An old master was fenced, or fencing it failed.

    All implementations are called, in the sentinel's cycle thread: return quickly (hand
    slow work to a thread), the promotion waits for it. The outcome is decided already; a
    hook can't change it, and an exception is logged and ignored. For alerting and audit;
    the built-in implementation counts outcomes in the sentinel's
    ``stolon_sentinel_fencing_total`` metric.
    """


# -- stolonctl ---------------------------------------------------------------------------


@hookspec
@_facts("composition", ("stolonctl",), "every stolonctl start, before the command line is parsed")
def stolonctl_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add stolonctl subcommands with ``subparsers.add_parser(...)``.

    All implementations are called; the built-in commands are added the same way (by
    :mod:`stolon.cli.ctl_commands`, first). A command sets its handler with
    ``parser.set_defaults(func=handler)``: stolonctl calls ``handler(ctx)`` with a
    :class:`stolon.cli.ctlcontext.CtlContext` (``ctx.args`` is the parsed namespace,
    ``ctx.store`` opens the store on first use, ``ctx.out``/``ctx.err`` print) and exits
    with the ``int`` it returns; a :class:`stolon.cli.common.CliError` it raises becomes a
    one-line error and its ``exit_code`` (1 by default).
    """
