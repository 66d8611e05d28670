"""The master lease that the ``stolon_lease`` PostgreSQL module checks at commit time.

The keeper's self-fencing (stolon/keeper/selffence.py) fences a master the store stopped
confirming by changing its configuration, which another process must then apply: a
machine resumed from a pause lets its backends commit what they were sent before the
keeper runs again. The ``stolon_lease`` module (contrib/pg_stolon_lease) refuses the
commit of a client transaction that wrote once the lease in a file has lapsed; this
module is the keeper's side: where the module is, the parameters that load it, and the
file (docs/self-fencing.md, "The lease").

The file (``<keeper data dir>/stolon_lease``, next to PGDATA, not in it: pg_basebackup and
pg_rewind would copy it between servers, and initdb and pg_basebackup want an empty
directory that a lease written at the wrong moment would not be) holds one line, ``<deadline> <boot id>``: the deadline
in nanoseconds of ``CLOCK_MONOTONIC`` (Python's :func:`time.monotonic` on Linux) and the
machine's boot id, since that clock restarts at every boot. ``0`` revokes the lease.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from collections.abc import Mapping
from pathlib import Path

from stolon.postgres import safefs
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.runas import OSUser

log = logging.getLogger(__name__)

#: the module's name in ``shared_preload_libraries`` (and its file, ``stolon_lease.so``)
LIBRARY = "stolon_lease"
#: the module's parameter: the lease file (absolute, or relative to PGDATA)
FILE_PARAMETER = "stolon_lease.file"
#: the lease file's name in the keeper's data directory
LEASE_FILE = "stolon_lease"
PRELOAD_PARAMETER = "shared_preload_libraries"
#: a revoked lease (the server is not, or no longer, the master)
REVOKED_NS = 0
#: self-fencing is off: a deadline no uptime reaches (146 years)
FAR_FUTURE_NS = 2**62
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def to_ns(monotonic_seconds: float) -> int:
    """A :func:`time.monotonic` time as the module's nanoseconds (never negative)."""
    return max(0, int(monotonic_seconds * 1_000_000_000))


@functools.cache
def boot_id() -> str:
    """This boot's id (it never changes while the machine runs)."""
    with open(BOOT_ID_FILE, encoding="ascii") as f:
        return f.read().strip()


def render(deadline_ns: int, boot: str) -> bytes:
    return f"{deadline_ns} {boot}\n".encode("ascii")


def parse(data: bytes) -> tuple[int, str] | None:
    """``(deadline ns, boot id)`` of a lease file's content, None if it is not one (the
    module's reading, for tests and tools)."""
    try:
        deadline, boot = data.decode("ascii").split()
        value = int(deadline)
    except (UnicodeDecodeError, ValueError):
        return None
    return (value, boot) if value >= 0 else None


def merge_preload(value: str | None) -> str:
    """``shared_preload_libraries`` with :data:`LIBRARY` added (last) to ``value``."""
    items = [i.strip() for i in (value or "").split(",") if i.strip()]
    if any(i.strip('"') == LIBRARY for i in items):
        return ", ".join(items)
    return ", ".join([*items, LIBRARY])


def with_lease(params: Mapping[str, str], lease_file: str) -> dict[str, str]:
    """``params`` plus what loads the module and points it at ``lease_file``."""
    out = dict(params)
    out[PRELOAD_PARAMETER] = merge_preload(out.get(PRELOAD_PARAMETER))
    out[FILE_PARAMETER] = lease_file
    return out


def without_lease(params: Mapping[str, str]) -> dict[str, str]:
    """``params`` without what :func:`with_lease` adds (what the keeper reports as the
    instance's parameters, and reads back as an existing instance's own)."""
    out = {k: v for k, v in params.items() if k != FILE_PARAMETER}
    spl = out.get(PRELOAD_PARAMETER)
    if spl is not None:
        items = [i.strip() for i in spl.split(",") if i.strip() and i.strip().strip('"') != LIBRARY]
        if items:
            out[PRELOAD_PARAMETER] = ", ".join(items)
        else:
            del out[PRELOAD_PARAMETER]
    return out


def library_dirs(binaries: PgBinaries, *, timeout: float = 10.0) -> list[Path]:
    """Where PostgreSQL loads modules from: ``<bindir>/../lib`` (Debian's and the wheel's
    layout), then ``pg_config --pkglibdir`` when ``pg_config`` sits with the binaries."""
    dirs = [binaries.bin_dir.parent / "lib"]
    pg_config = binaries.bin_dir / "pg_config"
    if pg_config.is_file():
        try:
            out = subprocess.run(
                [str(pg_config), "--pkglibdir"], capture_output=True, text=True, timeout=timeout, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            log.debug("pg_config --pkglibdir failed: %s", e)
        else:
            if out and Path(out) not in dirs:
                dirs.append(Path(out))
    return dirs


class LeaseFile:
    """The lease file of one keeper (``path``), and whether the module is installed.

    The module is looked for once (:func:`library_dirs`), then :meth:`installed` is a
    ``stat`` of the file found (or of the first candidate): a module installed or removed
    while the keeper runs is seen at the next cycle.
    """

    def __init__(self, path: Path | str, owner: OSUser, binaries: PgBinaries) -> None:
        self.path = Path(path).absolute()
        self.owner = owner
        dirs = library_dirs(binaries)
        found = [d / f"{LIBRARY}.so" for d in dirs if (d / f"{LIBRARY}.so").is_file()]
        self.module = found[0] if found else dirs[0] / f"{LIBRARY}.so"

    def installed(self) -> bool:
        return self.module.is_file()

    def write(self, deadline_ns: int) -> None:
        """Replace the lease (temp file + rename, PostgreSQL's OS user's, 0600; not
        fsynced: after a crash the boot id makes an old lease void, and a torn file fails
        closed). Raises OSError."""
        safefs.write_file_atomic(
            self.path, render(deadline_ns, boot_id()), owner=self.owner, mode=0o600, durable=False
        )

    def read(self) -> tuple[int, str] | None:
        data = safefs.read_file(self.path, limit=4096)
        return parse(data) if data is not None else None


__all__ = [
    "FAR_FUTURE_NS",
    "FILE_PARAMETER",
    "LEASE_FILE",
    "LIBRARY",
    "REVOKED_NS",
    "LeaseFile",
    "boot_id",
    "library_dirs",
    "merge_preload",
    "parse",
    "render",
    "to_ns",
    "with_lease",
    "without_lease",
]
