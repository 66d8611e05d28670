"""What a ``pgParameters`` entry may be before it reaches ``postgresql.conf``.

Go Stolon writes every entry as ``name = 'value'``. A name PostgreSQL's configuration lexer
can't read (``"a b"``, ``"ü"``, ``"x=y"``) makes the whole file unreadable: the server
refuses to start and ignores every reload, including the ``synchronous_standby_names`` the
sentinel asks for. ``include``, ``include_if_exists`` and ``include_dir`` are directives,
not parameters: written as ``include = '/path'`` they make the server read any file the
spec names. A control character in a value has no use and would be written into the file
(the rule of :mod:`stolon.model.text`: Unicode ``Cc`` but the tab, C1 included).

The name rule is the lexer's (``guc-file.l``): an identifier ``[A-Za-z_][A-Za-z0-9_]*``,
or two joined by one dot for a custom (extension) parameter, ASCII only (the lexer also
takes bytes >= 0x80, whose meaning depends on the server encoding: refused here). Names are
case-insensitive in PostgreSQL; the directives are refused in any case.

Whether a value fits its parameter (``work_mem = 'banana'``) only the server knows: the
keeper asks it (``pg_file_settings``) before every reload (docs/security.md).
"""

from __future__ import annotations

import re

from stolon.model.text import control_chars

PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")

#: configuration file directives, not parameters
DIRECTIVES = frozenset({"include", "include_if_exists", "include_dir"})


def parameter_problem(name: str, value: str) -> str | None:
    """Why ``name = value`` can't go into postgresql.conf, or ``None`` if it can."""
    if name.lower() in DIRECTIVES:
        return f"{name!r} is a configuration file directive, not a parameter: remove it"
    if not PARAMETER_NAME.fullmatch(name):
        return (
            f"{name!r} is not a valid parameter name: use letters, digits and _"
            " (a custom parameter is two such names joined by a dot, e.g. pg_stat_statements.max)"
        )
    if control_chars(value):
        return f"the value of {name} contains a control character (e.g. a newline): remove it"
    return None


def invalid_parameters(parameters: dict[str, str] | None) -> dict[str, str]:
    """Name → problem for every entry of ``parameters`` that can't be written."""
    out: dict[str, str] = {}
    for name, value in (parameters or {}).items():
        problem = parameter_problem(name, value)
        if problem is not None:
            out[name] = problem
    return out
