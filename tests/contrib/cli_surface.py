"""What our command lines accept, read from the real CLIs: the flags each one lists in its
``--help`` and the environment variables derived from them (``--foo-bar`` of stolon-keeper
is ``STKEEPER_FOO_BAR``). The contrib checks compare the commands, flags and variables
that deployment files use against these, so a renamed or removed flag breaks a test, not a
user's deployment.

The entry points are found through the installed console scripts (not module paths), so
moving a parser inside the package does not break these checks.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points

#: console script -> prefix of its environment variables
ENV_PREFIXES = {
    "stolon-keeper": "STKEEPER",
    "stolon-sentinel": "STSENTINEL",
    "stolon-proxy": "STPROXY",
    "stolonctl": "STOLONCTL",
}
DAEMONS = ("stolon-keeper", "stolon-sentinel", "stolon-proxy")

_OPTION_LINE = re.compile(r"^ {2,4}(-\S.*)$")


def _main(command: str) -> Callable[[list[str]], object]:
    found = entry_points(group="console_scripts", name=command)
    if not found:
        raise LookupError(f"{command} is not an installed console script")
    fn: Callable[[list[str]], object] = next(iter(found)).load()
    return fn


def help_text(command: str, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        _main(command)([*args, "--help"])
    return out.getvalue()


def parse_option_names(text: str) -> frozenset[str]:
    """Option strings of an argparse help text's option lines (``--uid UID, --id UID``)."""
    names: set[str] = set()
    for line in text.splitlines():
        m = _OPTION_LINE.match(line)
        if not m:
            continue
        invocation = re.split(r" {2,}", m.group(1).strip(), maxsplit=1)[0]
        for part in invocation.split(", "):
            name = part.split(" ", 1)[0].split("=", 1)[0]
            if name.startswith("-"):
                names.add(name)
    return frozenset(names)


def parse_primary_long_options(text: str) -> frozenset[str]:
    """The first long option of each option line: the one an environment variable names
    (``--uid UID, --id UID`` -> ``--uid``)."""
    names: set[str] = set()
    for line in text.splitlines():
        m = _OPTION_LINE.match(line)
        if not m:
            continue
        invocation = re.split(r" {2,}", m.group(1).strip(), maxsplit=1)[0]
        longs = [p.split(" ", 1)[0] for p in invocation.split(", ") if p.startswith("--")]
        if longs:
            names.add(longs[0])
    return frozenset(names)


@functools.cache
def flags(command: str, subcommand: str = "") -> frozenset[str]:
    """Every option ``command`` (or ``command subcommand``) accepts, global ones included."""
    own = parse_option_names(help_text(command, *([subcommand] if subcommand else [])))
    if subcommand:
        own |= flags(command)
    if not own:
        raise AssertionError(f"no options found in `{command} {subcommand} --help`")
    return own


@functools.cache
def subcommands(command: str = "stolonctl") -> frozenset[str]:
    text = help_text(command)
    block = text.split("positional arguments:", 1)[1].split("\noptions:", 1)[0]
    return frozenset(m.group(1) for m in re.finditer(r"^ {4}([a-z][a-z-]*)", block, re.M))


def env_var(command: str, flag: str) -> str:
    return f"{ENV_PREFIXES[command]}_{flag.lstrip('-').replace('-', '_').upper()}"


@functools.cache
def env_vars(command: str) -> frozenset[str]:
    """The variables ``command`` reads: one per flag, named after its first long spelling
    (``--help``/``--version`` excluded)."""
    primaries = parse_primary_long_options(help_text(command))
    return frozenset(env_var(command, f) for f in primaries if f not in ("--help", "--version"))


def command_for_env(name: str) -> str | None:
    """The command whose prefix ``name`` has (``STKEEPER_UID`` -> stolon-keeper), else None."""
    for command, prefix in ENV_PREFIXES.items():
        if name.startswith(prefix + "_"):
            return command
    return None


def unknown_flags(command: str, argv: Iterable[str], subcommand: str = "") -> list[str]:
    """The options in ``argv`` (``--flag`` or ``--flag=value``) that ``command`` lacks."""
    known = flags(command, subcommand)
    out = []
    for arg in argv:
        if arg.startswith("-") and arg not in ("-", "--"):
            name = arg.split("=", 1)[0]
            if name not in known and not (name.startswith("--no-") and "--" + name[5:] in known):
                out.append(name)
    return out


def unknown_env(names: Iterable[str]) -> list[str]:
    """Variables with one of our prefixes that no command reads."""
    out = []
    for name in names:
        command = command_for_env(name)
        if command is not None and name not in env_vars(command):
            out.append(name)
    return out
