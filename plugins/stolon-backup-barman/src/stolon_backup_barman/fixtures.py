"""pytest fixtures for the ``barman`` method, for this plugin's tests and any other suite (a
whole-cluster PITR test): a moto S3 server for the session, the Barman Cloud tools on PATH,
a fresh bucket and credentials file per test, and settings pointing at them. Import the
ones you use into your ``conftest.py`` or test module::

    from stolon_backup_barman.fixtures import (  # noqa: F401
        barman_env_file, barman_settings, barman_tool_dir, moto_s3, s3_bucket,
    )

Needs pytest (a test dependency); the helpers themselves are in
:mod:`stolon_backup_barman.testing`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stolon.testing.pgsandbox import pg_os_user_or_skip
from stolon.testing.requirements import tool_missing
from stolon_backup_barman.testing import (
    MOTO_ENV,
    MotoS3Server,
    ToolsMissing,
    find_tool_dir,
    moto_available,
    write_env_file,
)


@pytest.fixture(scope="session")
def barman_tool_dir() -> Iterator[Path]:
    """The bin directory of Barman Cloud, prepended to PATH for this process and every
    command it starts (PostgreSQL's archive/restore commands, ``ctx.run``)."""
    user = pg_os_user_or_skip()
    try:
        tool_dir = find_tool_dir(user)
    except ToolsMissing as e:
        tool_missing("barman", str(e))
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{tool_dir}{os.pathsep}{old}"
    try:
        yield tool_dir
    finally:
        os.environ["PATH"] = old


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3Server]:
    """moto's S3 server on a free loopback port, for the whole session."""
    if not moto_available():
        tool_missing("barman", "moto[server] is not installed here: pip install -r requirements-dev.txt")
    with MotoS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def barman_env_file() -> Iterator[Path]:
    """A 0600 credentials file (``envFile``) with keys moto accepts."""
    d = Path(tempfile.mkdtemp(prefix="stolon-barman-env-", dir="/tmp"))
    try:
        yield write_env_file(d / "s3.env", MOTO_ENV)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def s3_bucket(moto_s3: MotoS3Server) -> str:
    """A fresh, empty bucket."""
    return moto_s3.create_bucket()


@pytest.fixture
def barman_settings(
    barman_tool_dir: Path, moto_s3: MotoS3Server, s3_bucket: str, barman_env_file: Path
) -> dict[str, Any]:
    """``backup.settings`` for a fresh repository (its own bucket) on the moto server; the
    tools are found on PATH."""
    return {
        "destinationUrl": f"s3://{s3_bucket}/stolon",
        "endpointUrl": moto_s3.endpoint,
        "envFile": str(barman_env_file),
    }
