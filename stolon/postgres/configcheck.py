"""Ask PostgreSQL itself which configuration entries it rejects, before they are used.

Only the server knows whether ``work_mem = 'banana'``, ``wrok_mem = '4MB'`` or
``shared_buffers = '1 parsec'`` are valid (units, ranges, enum values, names that an
extension reserves). Written blindly, one bad entry makes the postmaster refuse to start,
and makes every reload fail ("contains errors; no changes were applied"), so a change of
``synchronous_standby_names`` the sentinel asks for silently never happens.

:func:`rejected_parameters` writes the candidate ``postgresql.conf`` next to the real one
and runs ``postgres -D PGDATA -c config_file=<candidate> -C data_directory`` as the
PostgreSQL OS user: the postmaster's own configuration loading, in a process that exits at
once (about 30 ms), whether or not the server is running, with no effect on it. A
parameter that only needs a restart is not an error there (unlike ``pg_file_settings``,
which reports those as "setting could not be applied" too). The server stops checking
values at the first unknown name, so the check repeats without the entries it rejected
until the rest passes.

:func:`reload_rejections` is the check after a reload: what the server could not apply
from the files (``pg_file_settings.error`` for entries that are not simply waiting for a
restart, and ``pg_hba_file_rules.error``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stolon.postgres import safefs
from stolon.postgres.connection import Connection, text
from stolon.postgres.datadir import write_file_atomic
from stolon.postgres.errors import PostgresError
from stolon.postgres.parameters import render_postgresql_conf
from stolon.postgres.runas import run_command

if TYPE_CHECKING:
    from stolon.postgres.instance import Instance

log = logging.getLogger(__name__)

CHECK_CONF_NAME = "stolon-check-postgresql.conf"
_PARAMETER = re.compile(r'parameter "([^"]+)"')
#: a server message line, whatever ``log_line_prefix`` put before the severity
_SEVERITY = re.compile(r"\b(LOG|FATAL|ERROR|WARNING|DETAIL|HINT):\s+(.*)$")


@dataclass(frozen=True)
class CheckResult:
    """``rejected``: name → the server's message, for each entry it refused."""

    rejected: dict[str, str]
    #: the server refused the file for a reason it did not tie to a parameter
    unexplained: str = ""


def _messages(output: str) -> list[str]:
    """The server's log lines, each with its DETAIL/HINT lines appended."""
    out: list[str] = []
    for line in output.splitlines():
        m = _SEVERITY.search(line.strip())
        if m is None:
            continue
        level, msg = m.groups()
        if level in ("DETAIL", "HINT") and out:
            out[-1] += f" ({msg.rstrip('.')})"
        else:
            out.append(msg)
    return out


def check_once(
    instance: Instance,
    parameters: Mapping[str, str],
    recovery_parameters: Mapping[str, str],
    timeout: float,
) -> CheckResult:
    """One run of the server's configuration loading over the candidate file."""
    pgdata = instance.data_dir
    path = pgdata / CHECK_CONF_NAME
    content = render_postgresql_conf(parameters, recovery_parameters=recovery_parameters)
    write_file_atomic(path, content, instance.os_user)
    try:
        res = run_command(
            [
                instance.binaries.path("postgres"),
                "-D", str(pgdata),
                "-c", f"config_file={path}",
                "-c", "lc_messages=C",
                "-C", "data_directory",
            ],
            user=instance.os_user,
            timeout=timeout,
            check=False,
        )  # fmt: skip
    finally:
        safefs.unlink(path)  # never through a PGDATA replaced by a link
    if res.returncode == 0:
        return CheckResult({})
    names = {k.lower(): k for k in parameters}
    rejected: dict[str, str] = {}
    other: list[str] = []
    for msg in _messages(res.stderr + "\n" + res.stdout):
        m = _PARAMETER.search(msg)
        key = names.get(m.group(1).lower()) if m else None
        if key is not None:
            rejected.setdefault(key, msg)
        elif "contains errors" not in msg:
            other.append(msg)
    unexplained = "" if rejected else ("; ".join(other) or (res.stderr or res.stdout).strip()[-300:])
    return CheckResult(rejected, unexplained)


def rejected_parameters(
    instance: Instance,
    parameters: Mapping[str, str],
    recovery_parameters: Mapping[str, str],
    timeout: float,
) -> CheckResult:
    """Every entry of ``parameters`` the server rejects (checked again without the ones it
    named, until the rest passes). ``unexplained`` is set when it refuses the rest without
    naming a parameter (then there is nothing to leave out)."""
    remaining = dict(parameters)
    rejected: dict[str, str] = {}
    for _ in range(len(parameters) + 1):
        result = check_once(instance, remaining, recovery_parameters, timeout)
        if not result.rejected:
            return CheckResult(rejected, result.unexplained)
        rejected.update(result.rejected)
        for name in result.rejected:
            remaining.pop(name, None)
    return CheckResult(rejected)


def conf_load_time(conn: Connection) -> str:
    """When the server last loaded its configuration files (``pg_conf_load_time()``; a new
    session reports the postmaster's time)."""
    row = conn.execute("SELECT pg_conf_load_time()::text").fetchone()
    if row is None:
        raise PostgresError("pg_conf_load_time() returned no row")
    return text(row[0])


def reload_rejections(conn: Connection) -> list[str]:
    """What the server could not apply from the configuration files, after a reload.

    ``pg_file_settings`` re-reads the files: an entry with an ``error`` whose parameter is
    not ``pending_restart`` was refused (a parameter that only waits for a restart has the
    same error text there, and a restart-only parameter removed from the file is an error
    row without name and file). A ``pg_hba.conf`` error means the server kept its old rules.
    """
    rows = conn.execute(
        "SELECT coalesce(f.name, '(file)'), f.error, f.sourcefile, f.sourceline"
        " FROM pg_file_settings f LEFT JOIN pg_settings s ON s.name = f.name"
        " WHERE f.error IS NOT NULL AND NOT coalesce(s.pending_restart, false)"
        # a restart-only parameter removed from the file (e.g. recovery_target_timeline
        # after a promotion): a row with neither name nor file, waiting for a restart
        " AND NOT (f.name IS NULL AND f.sourcefile IS NULL)"
        " ORDER BY f.seqno"
    ).fetchall()
    out = [f"{text(name)}: {text(error)} ({text(src or '')}:{line})" for name, error, src, line in rows]
    hba = conn.execute(
        "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number"
    ).fetchall()
    out += [f"pg_hba.conf line {line}: {text(error)}" for line, error in hba]
    return out
