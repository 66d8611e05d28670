from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stolon.testing.pgsandbox import pg_os_user_or_skip


@pytest.fixture
def make_repository() -> Iterator[Callable[[], Path]]:
    """Makes empty directories the PostgreSQL user owns (removed afterwards)."""
    made: list[Path] = []

    def make() -> Path:
        user = pg_os_user_or_skip()
        base = Path(tempfile.mkdtemp(prefix="stolon-dirrepo-", dir="/tmp"))
        os.chmod(base, 0o700)
        user.chown(base)
        made.append(base)
        return base

    yield make
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture
def repository(make_repository: Callable[[], Path]) -> Path:
    return make_repository()
