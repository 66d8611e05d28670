"""Turning a method's argv template into ``archive_command`` / ``restore_command``.

PostgreSQL hands these settings to ``/bin/sh`` after replacing ``%p`` (the file's path),
``%f`` (its name), ``%r`` (restore only: the last restart point's file) and ``%%``. A
method returns an argv list in which the placeholders ``%p``, ``%f`` (and ``%r`` for
restore) are the only special sequences: they may stand alone (``"%p"``) or inside an
argument (``"--file=%f"``), and their expansion holds no shell-special character. Every
other character is literal: :func:`render_command` quotes each literal part for the shell
and escapes each ``%`` in it as ``%%``, so nothing in the settings (paths, prefixes) can
reach the shell or PostgreSQL's own substitution.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from stolon.backup.base import BackupConfigError

ARCHIVE_PLACEHOLDERS = frozenset({"%p", "%f"})
RESTORE_PLACEHOLDERS = frozenset({"%p", "%f", "%r"})
_TOKEN = re.compile(r"(%[pfr])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def render_command(argv: Sequence[str], placeholders: frozenset[str]) -> str:
    """A shell command line for PostgreSQL from ``argv`` (see the module docstring).

    Raises :class:`BackupConfigError` for an empty argv, a control character, or a
    placeholder that PostgreSQL does not replace in this command (``%r`` in an archive
    command).
    """
    if not argv or not argv[0]:
        raise BackupConfigError("the method rendered an empty command")
    words = []
    for arg in argv:
        if _CONTROL.search(arg):
            raise BackupConfigError(f"command argument {arg!r} contains a control character")
        parts = []
        for piece in _TOKEN.split(arg):
            if not piece:
                continue
            if piece in placeholders:
                parts.append(piece)
            elif _TOKEN.fullmatch(piece):
                raise BackupConfigError(
                    f"command argument {arg!r} uses {piece}, which PostgreSQL does not replace here"
                    f" (use {', '.join(sorted(placeholders))})"
                )
            else:
                parts.append(_quote(piece))
        words.append("".join(parts) if parts else "''")
    return " ".join(words)


def _quote(literal: str) -> str:
    return shlex.quote(literal).replace("%", "%%")


def archive_command(argv: Sequence[str]) -> str:
    return render_command(argv, ARCHIVE_PLACEHOLDERS)


def restore_command(argv: Sequence[str]) -> str:
    return render_command(argv, RESTORE_PLACEHOLDERS)


def expand_placeholders(command: str, values: Mapping[str, str]) -> str:
    """PostgreSQL's replacement in archive/restore commands: ``%p``, ``%f``, ``%r`` from
    ``values``, ``%%`` as ``%``; any other ``%x`` stays as it is. For running a rendered
    command the way PostgreSQL would (the keeper's catch-up after a promotion, tests)."""
    out = []
    i = 0
    while i < len(command):
        c = command[i]
        if c == "%" and i + 1 < len(command):
            key = command[i : i + 2]
            if key == "%%":
                out.append("%")
                i += 2
                continue
            if key in values:
                out.append(values[key])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)
