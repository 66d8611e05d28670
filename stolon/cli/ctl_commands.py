"""stolonctl's built-in commands, added through the ``stolonctl_add_commands`` hook.

They take the same path as a plugin's commands (as tox registers its own commands through
its plugin hooks): :func:`stolon.cli.stolonctl.build_parser` registers :data:`plugin` in the
plugin manager and calls the hook once for everyone. ``tryfirst`` keeps the built-in
commands first in ``stolonctl --help``.
"""

from __future__ import annotations

import argparse

import stolon
from stolon import __version__
from stolon.cli import (
    ctl_backup,
    ctl_clusterdata,
    ctl_keepers,
    ctl_local,
    ctl_plugins,
    ctl_spec,
    ctl_status,
    ctl_switchover,
)
from stolon.cli.ctlcontext import CtlContext

#: The name the built-in commands are registered under in the plugin manager.
NAME = "stolonctl:builtin"


def cmd_version(ctx: CtlContext) -> int:
    ctx.out(f"stolonctl version {__version__}")
    return 0


class _BuiltinCommands:
    @stolon.hookimpl(tryfirst=True)
    def stolonctl_add_commands(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        ctl_spec.register(subparsers)
        ctl_status.register(subparsers)
        ctl_keepers.register(subparsers)
        ctl_switchover.register(subparsers)
        ctl_backup.register(subparsers)
        ctl_clusterdata.register(subparsers)
        ctl_plugins.register(subparsers)
        ctl_local.register(subparsers)
        subparsers.add_parser("version", help="Display the version").set_defaults(func=cmd_version)


plugin = _BuiltinCommands()
