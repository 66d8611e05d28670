"""``stolonctl plugins``: every plugin entry point, loaded or not, and why."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from stolon.cli.common import CliError
from stolon.cli.ctlcontext import CtlContext
from stolon.cli.tabwriter import table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plugins", help="List installed plugins: name, kind, distribution, version, state")
    p.add_argument("-f", "--format", default="text", help="output format: text or json")
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(ctx: CtlContext) -> int:
    records = sorted(ctx.plugins.records, key=lambda r: (r.kind, r.name))
    if ctx.args.format == "json":
        ctx.out(json.dumps([asdict(r) | {"state": r.state} for r in records], indent="\t"))
        return 0
    if ctx.args.format not in ("text", ""):
        raise CliError(f"unrecognised output format {ctx.args.format!r}: use text or json")
    if not records:
        ctx.out("No plugins installed")
        return 0
    rows = [["NAME", "KIND", "DISTRIBUTION", "VERSION", "STATE", "ERROR"]]
    rows += [[r.name, r.kind, r.distribution, r.version, r.state, r.error or ""] for r in records]
    for line in table(rows):
        ctx.out(line.rstrip())
    return 0
