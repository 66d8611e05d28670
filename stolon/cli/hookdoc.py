"""Render ``docs/hooks.md`` from the hookspecs (:mod:`stolon.hookspecs`).

``python -m stolon.cli.hookdoc`` prints the page; ``--write`` writes it
(``scripts/gen-hooks-doc`` does that). ``tests/unit/test_hooks.py`` fails when the committed
page differs from what this renders, so the page is always the hookspecs' own words.

The built-in implementations listed are those of the ``stolon`` distribution: its entry
points (loaded with autoload disabled, so installed third-party plugins don't change the
page) and the two it registers in process, stolonctl's built-in commands and the
sentinel's fencing counter.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stolon import hookspecs
from stolon.cli import ctl_commands
from stolon.hookspecs import hook_facts
from stolon.plugins import load_plugins
from stolon.sentinel.daemon import FencingOutcomeCounter, SentinelMetrics

#: Where the page lives in a checkout.
PAGE = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"

_ROLE = re.compile(r":(?:class|func|mod|data|meth|attr):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def hookspec_functions() -> list[Callable[..., Any]]:
    """Every hookspec of :mod:`stolon.hookspecs`, in source order."""
    marker = f"{hookspecs.hookspec.project_name}_spec"
    found = [
        f
        for _, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if getattr(f, marker, None) is not None
    ]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def _markdown(text: str) -> str:
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", text))


def _builtin_implementations() -> dict[str, list[str]]:
    """Hook name → the built-in implementations (registered plugin names)."""
    pm = load_plugins({"STOLON_DISABLE_PLUGIN_AUTOLOAD": "1"})
    pm.register(ctl_commands.plugin, name=ctl_commands.NAME)
    pm.register(FencingOutcomeCounter(SentinelMetrics("hookdoc")), name="sentinel:fencing-metrics")
    out: dict[str, list[str]] = {}
    for f in hookspec_functions():
        caller = getattr(pm.hook, f.__name__)
        out[f.__name__] = sorted(str(impl.plugin_name) for impl in caller.get_hookimpls())
    return out


def _signature(f: Callable[..., Any]) -> tuple[list[str], str]:
    sig = inspect.signature(f)
    params = [f"`{name}: {p.annotation}`" for name, p in sig.parameters.items()]
    return params, str(sig.return_annotation)


def render() -> str:
    impls = _builtin_implementations()
    lines = [
        "# Plugin hooks",
        "",
        "<!-- Generated from stolon/hookspecs.py by `python -m stolon.cli.hookdoc --write`"
        " (scripts/gen-hooks-doc); do not edit by hand. -->",
        "",
        "Every hook a plugin can implement (`@stolon.hookimpl`), who calls it and when. How plugins",
        "are found and registered: docs/plugins.md. No hook is `firstresult`: a registry collects",
        "every plugin's answers and an event informs every listener.",
        "",
        "| hook | style | called by | on the failover path | results |",
        "|---|---|---|---|---|",
    ]
    for f in hookspec_functions():
        facts = hook_facts(f)
        results = "first non-None" if _firstresult(f) else "all collected"
        lines.append(
            f"| [`{f.__name__}`](#{f.__name__}) | {facts.style} | {', '.join(facts.called_by)}"
            f" | {'yes' if facts.failover_path else 'no'} | {results} |"
        )
    for f in hookspec_functions():
        facts = hook_facts(f)
        params, returns = _signature(f)
        lines += [
            "",
            f"## {f.__name__}",
            "",
            f"- **Style**: {facts.style}",
            f"- **Called by**: {', '.join(facts.called_by)}",
            f"- **When**: {facts.when}",
            f"- **On the failover path**: {'yes: a failover waits for it' if facts.failover_path else 'no'}",
            f"- **Results**: {'the first non-None result (firstresult)' if _firstresult(f) else 'every implementation is called; all results are collected'}",
            f"- **Parameters**: {', '.join(params) if params else 'none'}",
            f"- **Returns**: `{returns}`",
            f"- **Built-in implementations**: {', '.join(f'`{n}`' for n in impls[f.__name__]) or 'none'}",
            "",
            _markdown(inspect.getdoc(f) or ""),
        ]
    return "\n".join(lines) + "\n"


def _firstresult(f: Callable[..., Any]) -> bool:
    opts = getattr(f, f"{hookspecs.hookspec.project_name}_spec", {}) or {}
    return bool(opts.get("firstresult"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stolon.cli.hookdoc", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE} instead of printing it")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PAGE.write_text(text, encoding="utf-8")
        print(f"wrote {PAGE}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
