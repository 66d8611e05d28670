"""Fixtures and helpers for the WAL-G method's tests, reusable by whole-cluster tests
(``conftest.py`` registers the fixtures; another test tree can list this module in
``pytest_plugins`` with this directory on ``sys.path``).

* ``walg_standin``: the WAL-G stand-in (``walg_standin/wal-g``, see its docstring) copied
  into a world-traversable directory under ``/tmp`` so that PostgreSQL's OS user can run
  it (the checkout may sit under a 0700 directory such as ``/root``); removed at the end.
* ``walg_real``: the real ``wal-g`` from PATH; the test skips with "wal-g not installed"
  when there is none.
* ``walg_repository``: an empty directory for ``WALG_FILE_PREFIX``, PostgreSQL's user's,
  removed after the test.
* :func:`walg_settings`: the method's settings for a tool and a repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stolon.testing.pgsandbox import pg_os_user_or_skip
from stolon.testing.requirements import tool_missing

STANDIN_SOURCE = Path(__file__).resolve().parent / "walg_standin" / "wal-g"
STANDIN_MARK = "stolon-standin"


def install_standin(directory: Path) -> Path:
    """Copy the stand-in into ``directory`` as ``wal-g`` (mode 0755) and return its path."""
    target = directory / "wal-g"
    shutil.copyfile(STANDIN_SOURCE, target)
    os.chmod(target, 0o755)
    return target


def is_standin(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return STANDIN_MARK in out.stdout


@pytest.fixture(scope="session")
def walg_standin() -> Iterator[Path]:
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("/usr/bin/python3 (the WAL-G stand-in's interpreter) is not installed")
    base = Path(tempfile.mkdtemp(prefix="stolon-walg-tool-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        yield install_standin(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def walg_real() -> Path:
    found = shutil.which("wal-g")
    if found is None:
        tool_missing("walg", "wal-g not installed")
    if is_standin(found):
        tool_missing("walg", "the wal-g on PATH is stolon's stand-in, not WAL-G")
    return Path(found)


@pytest.fixture
def walg_repository() -> Iterator[Path]:
    """An empty directory for ``WALG_FILE_PREFIX`` that PostgreSQL's user owns."""
    user = pg_os_user_or_skip()
    base = Path(tempfile.mkdtemp(prefix="stolon-walg-repo-", dir="/tmp"))
    try:
        os.chmod(base, 0o700)
        user.chown(base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def walg_settings(walg: Path, repository: Path, **extra: Any) -> dict[str, Any]:
    """Settings of the ``walg`` method for the ``walg`` binary and a file repository."""
    return {"filePrefix": str(repository), "walgPath": str(walg), **extra}
