"""Plugin discovery and registration.

Discovery goes through stevedore over the entry-point groups of
:data:`stolon.hookspecs.KIND_GROUPS`; each loaded plugin object is registered in one
pluggy ``PluginManager`` as ``<kind>:<name>``. Built-in plugins are entry points of the
``stolon`` distribution itself and take the same path.

A plugin that fails to import, or whose hook implementations don't match a hookspec, is
recorded with its distribution, version and exception, and the others still load.

Environment switches:

``STOLON_DISABLE_PLUGIN_AUTOLOAD=1``
    load only the built-in plugins (those of the ``stolon`` distribution) plus the ones
    named in ``STOLON_PLUGINS``.
``STOLON_PLUGINS=name,kind:name``
    plugins to load even when autoload is disabled.
``STOLON_BLOCK_PLUGINS=name,kind:name``
    plugins never to import.
``STOLON_TRACE_HOOKS=1``
    log every hook call and result (logger ``stolon.hooks``, level DEBUG).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy
import stevedore

from stolon import hookspecs
from stolon.hookspecs import (
    KIND_GROUPS,
    BackupMethodSpec,
    FencingMethodSpec,
    ProxyHealthPolicySpec,
)
from stolon.store.backends import StoreBackendSpec

log = logging.getLogger(__name__)
hook_log = logging.getLogger("stolon.hooks")

CORE_DISTRIBUTION = "stolon"
ENV_DISABLE_AUTOLOAD = "STOLON_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS = "STOLON_PLUGINS"
ENV_BLOCK = "STOLON_BLOCK_PLUGINS"
ENV_TRACE = "STOLON_TRACE_HOOKS"


class PluginError(Exception):
    """A plugin lookup that can't be satisfied (unknown name, load failure)."""


@dataclass
class PluginRecord:
    """What ``stolonctl plugins`` shows for one entry point."""

    kind: str
    name: str
    distribution: str
    version: str
    target: str
    loaded: bool = False
    blocked: bool = False
    error: str | None = None

    @property
    def registered_name(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def builtin(self) -> bool:
        return self.distribution == CORE_DISTRIBUTION

    @property
    def state(self) -> str:
        if self.blocked:
            return "blocked"
        if self.error:
            return "error"
        return "loaded" if self.loaded else "not loaded"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _name_set(value: str | None) -> set[str]:
    return {n.strip() for n in (value or "").split(",") if n.strip()}


def _dist_index() -> dict[tuple[str, str, str], tuple[str, str]]:
    """Map (group, name, value) of every stolon entry point to (distribution, version)."""
    groups = set(KIND_GROUPS.values())
    index: dict[tuple[str, str, str], tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        try:
            eps = dist.entry_points
        except Exception:  # a broken metadata directory must not stop discovery
            continue
        for ep in eps:
            if ep.group in groups:
                index.setdefault(
                    (ep.group, ep.name, ep.value),
                    (dist.metadata["Name"] or "?", dist.version or "?"),
                )
    return index


class StolonPluginManager(pluggy.PluginManager):
    """The project's plugin manager; build it with :func:`load_plugins`.

    A process builds one at its entry point and hands it to what needs plugins (the
    daemons, :func:`stolon.store.open_store` as a :class:`stolon.store.StoreBackends`,
    stolonctl's context), as pytest hands ``config.pluginmanager`` around."""

    def __init__(self) -> None:
        super().__init__("stolon")
        self.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []

    # registries ---------------------------------------------------------------------------
    def store_backends(self) -> dict[str, StoreBackendSpec]:
        return self._registry(self.hook.stolon_store_backends())

    def fencing_methods(self) -> dict[str, FencingMethodSpec]:
        return self._registry(self.hook.stolon_fencing_methods())

    def backup_methods(self) -> dict[str, BackupMethodSpec]:
        return self._registry(self.hook.stolon_backup_methods())

    def proxy_health_policies(self) -> dict[str, ProxyHealthPolicySpec]:
        return self._registry(self.hook.stolon_proxy_health_policies())

    @staticmethod
    def _registry(results: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for specs in results:
            for spec in specs or ():
                if spec.name in out:
                    log.warning("plugin name %r is provided twice; keeping the first", spec.name)
                    continue
                out[spec.name] = spec
        return out

    def store_backend(self, name: str) -> StoreBackendSpec:
        """The store backend called ``name``, or a :class:`PluginError` that says what to do."""
        backends = self.store_backends()
        if name in backends:
            return backends[name]
        if not name:
            raise PluginError(f"--store-backend is required: use one of {', '.join(sorted(backends))}")
        for rec in self.records:
            if rec.kind == "store" and rec.name == name and (rec.error or rec.blocked):
                why = "is blocked by STOLON_BLOCK_PLUGINS" if rec.blocked else f"failed to load: {rec.error}"
                raise PluginError(f"store backend {name!r} ({rec.distribution} {rec.version}) {why}")
        hint = _BACKEND_HINTS.get(name, "")
        raise PluginError(
            f"unknown store backend {name!r}{hint}: installed backends are"
            f" {', '.join(sorted(backends)) or 'none'}"
        )


_BACKEND_HINTS = {
    "etcd": " (Go Stolon's alias for the etcd v2 API, which is not supported; use etcdv3)",
    "etcdv2": " (the etcd v2 API is not supported; use etcdv3)",
    "consul": " (install the Consul plugin: pip install 'stolon[consul]')",
    "kubernetes": " (install the Kubernetes plugin: pip install 'stolon[kubernetes]')",
}


def load_plugins(env: Mapping[str, str] | None = None) -> StolonPluginManager:
    """Discover, load, register and check every plugin, honouring the env switches."""
    env = os.environ if env is None else env
    pm = StolonPluginManager()
    if _truthy(env.get(ENV_TRACE)):
        pm.trace.root.setwriter(lambda message: hook_log.debug("%s", message.rstrip()))
        pm.enable_tracing()
    autoload = not _truthy(env.get(ENV_DISABLE_AUTOLOAD))
    wanted = _name_set(env.get(ENV_PLUGINS))
    blocked = _name_set(env.get(ENV_BLOCK))
    dists = _dist_index()

    for kind, group in KIND_GROUPS.items():
        failures: dict[str, BaseException] = {}

        def on_failure(_mgr: Any, ep: importlib.metadata.EntryPoint, exc: BaseException) -> None:
            failures[ep.name] = exc  # noqa: B023 - consumed within this iteration

        listing = stevedore.NamedExtensionManager(group, names=[]).list_entry_points()
        selected: list[str] = []
        for ep in listing:
            dist, version = dists.get((group, ep.name, ep.value), ("?", "?"))
            rec = PluginRecord(kind, ep.name, dist, version, ep.value)
            pm.records.append(rec)
            ids = {ep.name, rec.registered_name}
            if ids & blocked:
                rec.blocked = True
                continue
            if autoload or rec.builtin or ids & wanted:
                selected.append(ep.name)
        if not selected:
            continue
        mgr = stevedore.NamedExtensionManager(
            group,
            names=selected,
            on_load_failure_callback=on_failure,
            invoke_on_load=False,
        )
        loaded = {ext.name: ext.plugin for ext in mgr}
        for rec in pm.records:
            if rec.kind != kind or rec.name not in selected:
                continue
            if rec.name in failures:
                exc = failures[rec.name]
                rec.error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "plugin %s from %s %s failed to load: %s",
                    rec.registered_name,
                    rec.distribution,
                    rec.version,
                    rec.error,
                )
                continue
            if rec.name not in loaded:
                continue
            _register(pm, rec, loaded[rec.name])
    return pm


def _register(pm: StolonPluginManager, rec: PluginRecord, plugin: Any) -> None:
    try:
        pm.register(plugin, name=rec.registered_name)
        pm.check_pending()
    except (ValueError, pluggy.PluginValidationError) as e:
        if pm.is_registered(plugin) and pm.get_name(plugin) == rec.registered_name:
            pm.unregister(plugin)
        rec.error = f"{type(e).__name__}: {e}"
        log.error(
            "plugin %s from %s %s was not registered: %s",
            rec.registered_name,
            rec.distribution,
            rec.version,
            rec.error,
        )
        return
    rec.loaded = True


_default: StolonPluginManager | None = None


def plugin_manager() -> StolonPluginManager:
    """The process-wide plugin manager, loaded on first use from ``os.environ``: for the
    entry points of :mod:`stolon.cli` only, which hand it down (nothing else calls this)."""
    global _default
    if _default is None:
        _default = load_plugins()
    return _default
