"""Test helpers for the ``pgbackrest`` method, importable by other test suites (the plugin's
``tests/conftest.py`` wraps them in fixtures; a whole-cluster PITR test can use them too).

A repository is an empty directory under ``/tmp`` owned by PostgreSQL's OS user, mode 0700:
pgBackRest runs as that user (the archive command too), and ``/tmp`` is traversable by it,
unlike ``/root`` or a checkout in a 0700 ``mktemp -d``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stolon.postgres.runas import OSUser

#: the reason tests give when the tool is missing
NOT_INSTALLED_REASON = (
    "pgbackrest not installed (scripts/setup installs it as root: apt-get install pgbackrest)"
)


def find_pgbackrest() -> str | None:
    """The ``pgbackrest`` executable on PATH, or None."""
    return shutil.which("pgbackrest")


def pgbackrest_or_skip() -> str:
    from stolon.testing.requirements import tool_missing  # imports pytest

    path = find_pgbackrest()
    if path is None:
        tool_missing("pgbackrest", NOT_INSTALLED_REASON)
    return path


@contextmanager
def repository(owner: OSUser, prefix: str = "stolon-pgbackrest-repo-") -> Iterator[Path]:
    """A fresh, empty repository directory for ``repoPath``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        os.chmod(path, 0o700)
        owner.chown(path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
