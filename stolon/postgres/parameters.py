"""The ``postgresql.conf`` the keeper generates (Go Stolon's ``createPGParameters``).

Precedence, lowest first: the instance's own parameters from before it was managed (only
when the DB spec says ``includePreviousConfig``), the user's ``pgParameters``, then the
parameters the keeper imposes (:func:`build_parameters`). The file is always rewritten
whole; recovery parameters are appended when the instance must recover (PostgreSQL 12+).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stolon.model.pgparams import DIRECTIVES, PARAMETER_NAME
from stolon.model.text import check_no_control

#: The keeper sets these itself: they are ignored in the user's spec and filtered out of the
#: parameters reported to the sentinel (Go's ``managedPGParameters``).
MANAGED_PARAMETERS: frozenset[str] = frozenset(
    {
        "unix_socket_directories",
        "wal_keep_segments",
        "wal_keep_size",
        "hot_standby",
        "listen_addresses",
        "port",
        "max_replication_slots",
        "max_wal_senders",
        "wal_log_hints",
        "synchronous_standby_names",
        # recovery parameters (in postgresql.conf since PostgreSQL 12)
        "primary_conninfo",
        "primary_slot_name",
        "recovery_min_apply_delay",
        "restore_command",
        "recovery_target_timeline",
        "recovery_target",
        "recovery_target_lsn",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_xid",
        "recovery_target_action",
    }
)

STOLON_PREFIX = "stolon_"
MIN_WAL_KEEP_SEGMENTS = 8
#: wal_level values a user may choose instead of the default ``replica``.
USER_WAL_LEVELS = frozenset({"logical"})
#: The file used for the "merged" starts: it includes postgresql.conf, then our settings.
TMP_CONF_NAME = "stolon-temp-postgresql.conf"

_SSN_RE = re.compile(r"(?:(?:FIRST|ANY)\s+)?\d+\s*\((.*)\)", re.IGNORECASE | re.DOTALL)
_SSN_NUMBER_RE = re.compile(r"^(?:(?:FIRST|ANY)\s+)?\d+\s", re.IGNORECASE)


def stolon_name(name: str) -> str:
    """``stolon_<name>``: application_name and replication slot of a DB UID."""
    return STOLON_PREFIX + name


def is_stolon_name(name: str) -> bool:
    return name.startswith(STOLON_PREFIX)


def name_from_stolon_name(name: str) -> str:
    return name.removeprefix(STOLON_PREFIX)


def filter_managed(parameters: Mapping[str, str]) -> dict[str, str]:
    """``parameters`` without :data:`MANAGED_PARAMETERS`."""
    return {k: v for k, v in parameters.items() if k not in MANAGED_PARAMETERS}


def synchronous_standby_names(names: Sequence[str]) -> str:
    """``""`` for none, the name alone for one, ``"N (a,b,c)"`` with N = count otherwise.

    N is always the full count (never FIRST/ANY with fewer): the sentinel must know that
    every listed standby has every commit, or it could promote one that lacks some.
    """
    if len(names) > 1:
        return f"{len(names)} ({','.join(names)})"
    return ",".join(names)


def parse_synchronous_standby_names(value: str) -> list[str]:
    """Names in a ``synchronous_standby_names`` value.

    Handles ``a,b``, ``N (a,b)`` and ``FIRST|ANY N (a,b)``; quotes around names are removed.
    A number without brackets is an error.
    """
    s = value.strip()
    if not s:
        return []
    m = _SSN_RE.fullmatch(s)
    if m:
        s = m.group(1)
    elif _SSN_NUMBER_RE.match(s):
        raise ValueError(f"synchronous standby string has number but lacks brackets: {value!r}")
    return [n.strip().strip('"') for n in s.split(",") if n.strip()]


@dataclass(frozen=True)
class ParameterInputs:
    """What :func:`build_parameters` needs, from the keeper flags and the DB spec."""

    pg_major: int
    socket_dir: str
    listen_address: str
    port: int | str
    max_standbys: int
    additional_wal_senders: int
    use_pg_rewind: bool = False
    #: DB spec ``pgParameters``
    user_parameters: Mapping[str, str] | None = None
    #: the parameters saved at init (``InitPGParameters``)
    init_parameters: Mapping[str, str] | None = None
    include_init_parameters: bool = False
    synchronous_replication: bool = False
    #: DB UIDs; written as ``stolon_<uid>``
    synchronous_standbys: Sequence[str] = field(default_factory=tuple)
    #: raw names (e.g. ``stolonfakestandby``)
    external_synchronous_standbys: Sequence[str] = field(default_factory=tuple)


def build_parameters(inp: ParameterInputs) -> dict[str, str]:
    """The full parameter set for postgresql.conf (precedence in the module docstring)."""
    user = dict(inp.user_parameters or {})
    params: dict[str, str] = {}
    if inp.include_init_parameters and inp.init_parameters:
        params.update(inp.init_parameters)
    params.update(user)

    # mandatory parameters
    params["unix_socket_directories"] = inp.socket_dir
    params["hot_standby"] = "on"
    params["wal_level"] = (
        user["wal_level"]
        if user.get("wal_level") in USER_WAL_LEVELS
        else ("replica" if inp.pg_major >= 10 else "hot_standby")
    )
    if inp.pg_major >= 13:
        # the user value verbatim (not checked against the minimum, as in Go), else 8*16 MB
        params["wal_keep_size"] = user.get("wal_keep_size", str(MIN_WAL_KEEP_SEGMENTS * 16))
    else:
        segments = MIN_WAL_KEEP_SEGMENTS
        try:
            segments = max(segments, int(user.get("wal_keep_segments", "")))
        except ValueError:
            pass
        params["wal_keep_segments"] = str(segments)

    params["listen_addresses"] = inp.listen_address
    params["port"] = str(inp.port)
    params["max_replication_slots"] = str(inp.max_standbys)
    # the keeper itself uses wal senders too (pg_basebackup, pg_rewind, IDENTIFY_SYSTEM)
    params["max_wal_senders"] = str(2 * inp.max_standbys + 2 + inp.additional_wal_senders)
    if inp.use_pg_rewind:
        params["wal_log_hints"] = "on"

    names: list[str] = []
    if inp.synchronous_replication:
        names = [stolon_name(u) for u in inp.synchronous_standbys]
        names += list(inp.external_synchronous_standbys)
    params["synchronous_standby_names"] = synchronous_standby_names(names)
    return params


def quote_conf_value(value: str) -> str:
    """A postgresql.conf string literal.

    Go Stolon only doubles ``'``; the server's configuration lexer also interprets
    backslash escapes inside quotes, so a ``\\`` (e.g. the ``\\ `` Go writes into
    ``primary_conninfo`` for a password with a space) would be mangled. Here ``\\`` is
    doubled too and line breaks become ``\\n``/``\\r``, so any value round-trips exactly.
    """
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _check_name(name: str) -> None:
    """Refuse what the configuration file lexer can't read (the keeper leaves such
    ``pgParameters`` out before rendering: this is the last line of defence)."""
    if not PARAMETER_NAME.fullmatch(name) or name.lower() in DIRECTIVES:
        raise ValueError(f"bad configuration parameter name {name!r}")


def _check_value(name: str, value: str) -> None:
    """No control character in a value (:mod:`stolon.model.text`): quoting would keep it in
    the value, but nothing legitimate needs one and PostgreSQL's lexer turns ``\\n`` back
    into a newline inside ``primary_conninfo`` or ``restore_command``."""
    check_no_control(value, f"configuration parameter {name}")


def render_postgresql_conf(
    parameters: Mapping[str, str],
    *,
    recovery_parameters: Mapping[str, str] | None = None,
    include: str | None = None,
) -> str:
    """The text of a generated ``postgresql.conf``: ``key = 'value'`` lines, sorted.

    ``include`` (for the temporary merged config) is included first, so every line here
    overrides it. Recovery parameters come last and override everything.
    """
    lines = ["# Generated by stolon keeper. Do not edit: it is rewritten on every change."]
    if include is not None:
        lines.append(f"include {quote_conf_value(include)}")
    for key in sorted(parameters):
        _check_name(key)
        _check_value(key, parameters[key])
        lines.append(f"{key} = {quote_conf_value(parameters[key])}")
    for key in sorted(recovery_parameters or {}):
        _check_name(key)
        _check_value(key, (recovery_parameters or {})[key])
        lines.append(f"{key} = {quote_conf_value((recovery_parameters or {})[key])}")
    return "\n".join(lines) + "\n"
