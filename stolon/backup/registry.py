"""Finding a backup method by name among the installed ``stolon.backup`` plugins and
building it from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stolon.backup.base import BackupConfigError, BackupError, BackupMethod

if TYPE_CHECKING:  # handed in by the keeper and stolonctl; the services don't load plugins
    from stolon.plugins import StolonPluginManager


def open_method(pm: StolonPluginManager, name: str, settings: Mapping[str, Any] | None) -> BackupMethod:
    """The method called ``name`` built from ``settings``; :class:`BackupConfigError` with a
    one-line message when the name is unknown, the plugin failed to load or the settings
    are refused."""
    methods = pm.backup_methods()
    spec = methods.get(name)
    if spec is None:
        for rec in pm.records:
            if rec.kind == "backup" and rec.name == name and (rec.error or rec.blocked):
                why = "is blocked by STOLON_BLOCK_PLUGINS" if rec.blocked else f"failed to load: {rec.error}"
                raise BackupConfigError(f"backup.method: {name!r} ({rec.distribution} {rec.version}) {why}")
        installed = ", ".join(sorted(methods)) or "none"
        raise BackupConfigError(
            f"backup.method: unknown backup method {name!r} (installed: {installed});"
            f" install its plugin, e.g. pip install 'stolon[{name}]'"
        )
    try:
        method = spec.factory(dict(settings or {}))
    except BackupError:
        raise
    except (ValueError, TypeError) as e:
        raise BackupConfigError(f"backup.settings: {e}") from None
    if not isinstance(method, BackupMethod):
        raise BackupConfigError(f"backup.method: the {name!r} plugin did not return a backup method")
    return method
