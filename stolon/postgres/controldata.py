"""``pg_controldata``: facts of a data directory that is not running (system identifier,
timeline, and the primary's hot-standby parameter values a standby has replayed)."""

from __future__ import annotations

from stolon.postgres.instance import Instance
from stolon.postgres.runas import run_command


def read_controldata(instance: Instance, timeout: float = 30.0) -> dict[str, str]:
    """``pg_controldata -D PGDATA`` as a dict of its ``key: value`` lines."""
    res = run_command(
        [instance.binaries.path("pg_controldata"), "-D", str(instance.data_dir)],
        user=instance.os_user,
        timeout=timeout,
        env={"LC_ALL": "C"},
    )
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def system_identifier(instance: Instance, timeout: float = 30.0) -> str:
    """The data directory's system identifier, or "" when it can't be read."""
    if not instance.is_initialized():
        return ""
    try:
        return read_controldata(instance, timeout).get("Database system identifier", "")
    except Exception:
        return ""
