"""stolonctl: the administration command line (Go Stolon's commands, flags and env vars)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from stolon.cli import ctl_commands
from stolon.cli.common import (
    CliError,
    add_kube_client_flags,
    add_store_flags,
    add_version_flag,
    apply_env_defaults,
    log_level,
    normalize_bool_flags,
    setup_logging,
)
from stolon.cli.ctlcontext import CtlContext
from stolon.model import ModelError
from stolon.model.text import printable
from stolon.plugins import PluginError, StolonPluginManager, plugin_manager
from stolon.store.base import ConflictError, StoreError, UnreachableError

ENV_PREFIX = "STOLONCTL"


def build_parser(pm: StolonPluginManager) -> argparse.ArgumentParser:
    """The command line: global flags, then every command added through ``pm``'s
    ``stolonctl_add_commands`` hook (the built-in ones by :mod:`stolon.cli.ctl_commands`)."""
    if not pm.has_plugin(ctl_commands.NAME):
        pm.register(ctl_commands.plugin, name=ctl_commands.NAME)
    parser = argparse.ArgumentParser(
        prog="stolonctl",
        description="stolon command line client",
        epilog="Every global flag --foo-bar can also be set with the environment variable STOLONCTL_FOO_BAR.",
    )
    add_store_flags(parser)
    add_version_flag(parser)
    add_kube_client_flags(parser)
    parser.add_argument(
        "--log-level", default="info", type=log_level, help="debug, info (default), warn or error"
    )
    # Go's common flag; stolonctl serves no metrics (neither does Go's): accepted, unused
    parser.add_argument(
        "--metrics-listen-address",
        default="",
        help='metrics listen address i.e "0.0.0.0:8080" (disabled by default; unused by stolonctl)',
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    pm.hook.stolonctl_add_commands(subparsers=sub)
    # Only the global flags take their value from the environment, as in Go Stolon.
    apply_env_defaults(parser, ENV_PREFIX)
    return parser


def main(argv: Sequence[str] | None = None, plugins: StolonPluginManager | None = None) -> int:
    """Run one stolonctl command; ``plugins`` defaults to the process's plugin manager."""
    pm = plugin_manager() if plugins is None else plugins
    parser = build_parser(pm)
    try:
        args = parser.parse_args(normalize_bool_flags(sys.argv[1:] if argv is None else argv))
    except CliError as e:
        print(f"stolonctl: {e}", file=sys.stderr)
        return e.exit_code
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    setup_logging(args.log_level)
    with CtlContext(args, pm) as ctx:
        try:
            return int(args.func(ctx))
        # Messages may quote what the store holds: control characters are escaped.
        except CliError as e:
            ctx.err(f"stolonctl: {printable(str(e))}")
            return e.exit_code
        except UnreachableError as e:
            ctx.err(f"stolonctl: cannot reach the store: {printable(str(e))}")
            return 1
        except ConflictError as e:
            ctx.err(f"stolonctl: cannot update cluster data: {printable(str(e))}")
            return 1
        except (StoreError, PluginError, ModelError) as e:
            ctx.err(f"stolonctl: {printable(str(e))}")
            return 1
        except BrokenPipeError:  # e.g. `stolonctl status | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0


if __name__ == "__main__":
    sys.exit(main())
