"""Exceptions raised by the PostgreSQL control layer.

Messages never contain passwords: commands carry none in their argv by construction, and
captured tool output is scrubbed of the secrets a call knows about before it is quoted.
"""

from __future__ import annotations

from collections.abc import Sequence


class PostgresError(Exception):
    """Base class of everything this package raises on purpose."""


class BinaryNotFoundError(PostgresError):
    """A PostgreSQL executable is missing or not executable."""


class UnsupportedVersionError(PostgresError):
    """The binaries or the data directory have a version this package does not handle."""


class OSUserError(PostgresError):
    """The OS user PostgreSQL should run as cannot be used."""


class CommandError(PostgresError):
    """A command exited with a non-zero status."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output = output
        detail = f": {output}" if output else ""
        super().__init__(f"command {_display(argv)} exited with status {returncode}{detail}")


class CommandTimeoutError(PostgresError):
    """A command did not finish in time; it has been killed."""

    def __init__(self, argv: Sequence[str], timeout: float, output: str = "") -> None:
        self.argv = tuple(argv)
        self.timeout = timeout
        self.output = output
        detail = f"; last output: {output}" if output else ""
        super().__init__(f"command {_display(argv)} timed out after {timeout:g}s and was killed{detail}")


class StartError(PostgresError):
    """The postmaster could not be started (it exited, or never wrote its pid file)."""


class StopError(PostgresError):
    """The instance could not be stopped."""


class NotReadyError(PostgresError):
    """The instance did not accept connections in time."""


class InstanceRunningError(PostgresError):
    """An operation needs the instance stopped, but it is running."""


class DataDirError(PostgresError):
    """The data directory is missing, unreachable, or has unexpected content."""


class ReloadRejectedError(PostgresError):
    """The server did not apply the configuration files at a reload (or the reload was not
    confirmed in time): its running configuration is not what was written."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class QueryError(PostgresError):
    """A query or replication command failed (connection errors included)."""


class QueryTimeoutError(QueryError):
    """A query or connection attempt did not finish within its deadline."""


class WalSegmentSizeError(PostgresError):
    """A WAL file whose size is not the supported 16 MiB."""


def _display(argv: Sequence[str]) -> str:
    """The argv as one readable string (arguments are quoted only when needed)."""
    import shlex

    return shlex.join(argv)
