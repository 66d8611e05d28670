"""Root never follows a link the PostgreSQL OS user planted (issue 10, items 1 and 2).

Each test lays out what the ``postgres`` user may legitimately write (a directory it owns,
as PGDATA, its parent and the socket directory are), plants a link or a FIFO there *as that
user*, runs the root operation, and checks that a root-owned "victim" tree kept every owner
and mode and that nothing was created at a link's target. They need root (the attacker must
be another user) and are skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stolon.keeper.localstate import DataDirLock, KeeperLocalState
from stolon.postgres import datadir, safefs
from stolon.postgres.errors import DataDirError
from stolon.postgres.recovery import NO_RECOVERY
from stolon.postgres.runas import OSUser, ensure_dir, run_command
from stolon.postgres.safefs import UnsafePathError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacker must be another OS user: needs root")

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Owner, group and mode of ``root`` and everything under it (links not followed)."""
    out: Snapshot = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(p)
        out[str(p)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return out


@dataclass
class Layout:
    base: Path
    victim: Path  # root's: must never change
    home: Path  # the postgres user's: it may put anything here
    user: OSUser

    def as_pg(self, *argv: str) -> None:
        """Run a command as the PostgreSQL OS user (the attacker)."""
        run_command(list(argv), user=self.user, timeout=30)

    def pg_dir(self, name: str) -> Path:
        d = self.home / name
        self.as_pg("mkdir", "-p", str(d))
        return d


@pytest.fixture
def layout(pg_os_user: OSUser) -> Iterator[Layout]:
    base = Path(tempfile.mkdtemp(prefix="stolon-links-", dir="/tmp"))
    os.chmod(base, 0o755)
    victim = base / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "file").write_text("root's\n")
    (victim / "sub" / "file2").write_text("root's too\n")
    os.chmod(victim, 0o755)
    home = base / "pg"
    home.mkdir(mode=0o700)
    os.chown(home, pg_os_user.uid, pg_os_user.gid)
    try:
        yield Layout(base, victim, home, pg_os_user)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- item 1: giving a restored PGDATA to the PostgreSQL user ---------------------------------


def test_give_tree_to_refuses_a_symlinked_pgdata(layout: Layout) -> None:
    before = snapshot(layout.victim)
    pgdata = layout.home / "postgres"
    layout.as_pg("ln", "-s", str(layout.victim), str(pgdata))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safefs.give_tree_to(pgdata, layout.user)
    assert snapshot(layout.victim) == before


def test_give_tree_to_changes_links_not_their_targets(layout: Layout) -> None:
    before = snapshot(layout.victim)
    pgdata = layout.pg_dir("postgres")
    layout.as_pg("ln", "-s", str(layout.victim), str(pgdata / "dir-link"))
    layout.as_pg("ln", "-s", str(layout.victim / "file"), str(pgdata / "file-link"))
    layout.as_pg("mkfifo", str(pgdata / "fifo"))
    # what a restore running as root could leave: root-owned files and directories
    (pgdata / "base" / "1").mkdir(parents=True)
    (pgdata / "base" / "1" / "1259").write_bytes(b"\0" * 16)
    (pgdata / "PG_VERSION").write_text("15\n")
    os.chmod(pgdata / "PG_VERSION", 0o4755)
    os.symlink(str(layout.victim), pgdata / "root-link")
    safefs.give_tree_to(pgdata, layout.user)
    assert snapshot(layout.victim) == before
    for p in [pgdata, *pgdata.rglob("*")]:
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == (layout.user.uid, layout.user.gid), p
    assert stat.S_IMODE(os.lstat(pgdata).st_mode) == 0o700
    assert not os.lstat(pgdata / "PG_VERSION").st_mode & stat.S_ISUID  # chown cleared it


def test_give_tree_to_refuses_a_hard_link_to_a_file_elsewhere(layout: Layout) -> None:
    before = snapshot(layout.victim)
    pgdata = layout.pg_dir("postgres")
    os.link(layout.victim / "file", pgdata / "hardlink")  # fs.protected_hardlinks stops postgres
    with pytest.raises(UnsafePathError, match="hard links"):
        safefs.give_tree_to(pgdata, layout.user)
    assert snapshot(layout.victim) == before


# -- item 2: every root operation under a directory postgres can write ------------------------


def test_ensure_dir_does_not_chown_through_a_link(layout: Layout) -> None:
    before = snapshot(layout.victim)
    run = layout.home / "run"
    layout.as_pg("ln", "-s", str(layout.victim), str(run))
    with pytest.raises(UnsafePathError):
        ensure_dir(run, layout.user, 0o700)
    assert snapshot(layout.victim) == before


def _swap_for_link_after_mkdir(
    monkeypatch: pytest.MonkeyPatch, name: str, target: Path, user: OSUser
) -> list[str]:
    """Stand-in for the attacker winning the race between ``mkdir`` and what follows it:
    right after root creates a directory called ``name``, it is moved away and replaced by
    a link (owned by the PostgreSQL user, as if it had made it) to ``target``."""
    real_mkdir = os.mkdir
    swapped: list[str] = []

    def mkdir(path: str | os.PathLike[str], mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        real_mkdir(path, mode, dir_fd=dir_fd)
        if os.path.basename(os.fspath(path)) != name:
            return
        moved = os.fspath(path) + ".moved"
        os.rename(path, moved, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.symlink(str(target), path, dir_fd=dir_fd)
        os.chown(path, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
        swapped.append(os.fspath(path))

    monkeypatch.setattr(os, "mkdir", mkdir)
    return swapped


def test_alter_system_blocker_race_does_not_chown_the_link_target(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(layout.victim)
    pgdata = layout.pg_dir("postgres")
    swapped = _swap_for_link_after_mkdir(monkeypatch, datadir.AUTO_CONF_TMP, layout.victim, layout.user)
    with pytest.raises(UnsafePathError):
        datadir.block_alter_system(pgdata, layout.user)
    assert swapped
    monkeypatch.undo()
    assert snapshot(layout.victim) == before


def test_config_files_are_not_written_through_a_symlinked_pgdata(layout: Layout) -> None:
    before = snapshot(layout.victim)
    pgdata = layout.home / "postgres"
    layout.as_pg("ln", "-s", str(layout.victim), str(pgdata))
    with pytest.raises(UnsafePathError):
        datadir.write_config_files(
            pgdata, layout.user, parameters={"port": "5"}, hba=["local all all trust"], recovery=NO_RECOVERY
        )
    with pytest.raises(UnsafePathError):
        datadir.block_alter_system(pgdata, layout.user)
    with pytest.raises(UnsafePathError):
        datadir.remove_data_dir(pgdata)
    with pytest.raises(UnsafePathError):
        datadir.create_data_dir(pgdata, layout.user)
    assert snapshot(layout.victim) == before


def test_config_file_links_are_replaced_not_followed(layout: Layout) -> None:
    before = snapshot(layout.victim)
    pgdata = layout.pg_dir("postgres")
    for name in (datadir.PG_HBA_CONF, datadir.POSTGRESQL_CONF, "standby.signal"):
        layout.as_pg("ln", "-s", str(layout.victim / "file"), str(pgdata / name))
    layout.as_pg("ln", "-s", str(layout.victim), str(pgdata / datadir.AUTO_CONF_TMP))
    from stolon.postgres.recovery import RecoveryConfig, RecoveryMode

    datadir.write_config_files(
        pgdata,
        layout.user,
        parameters={"port": "5"},
        hba=["local all all trust"],
        recovery=RecoveryConfig(RecoveryMode.STANDBY, {"primary_conninfo": "host=x"}),
    )
    datadir.block_alter_system(pgdata, layout.user)
    assert snapshot(layout.victim) == before
    for name in (datadir.PG_HBA_CONF, datadir.POSTGRESQL_CONF):
        st = os.lstat(pgdata / name)
        assert stat.S_ISREG(st.st_mode) and st.st_uid == layout.user.uid
    assert stat.S_ISDIR(os.lstat(pgdata / datadir.AUTO_CONF_TMP).st_mode)
    assert os.readlink(pgdata / datadir.AUTO_CONF) == os.devnull


def _unblocks(path: Path, call: Callable[[], object]) -> object:
    """Run ``call`` on a thread; if it is stuck opening the FIFO ``path``, open the FIFO's
    other end so the thread can finish, and fail."""
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(_capture(call)), daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(20)
        pytest.fail(f"root blocked opening the FIFO {path}")
    return result[0]


def _capture(call: Callable[[], object]) -> object:
    try:
        return call()
    except Exception as e:
        return e


def test_planted_fifos_do_not_block_root(layout: Layout) -> None:
    pgdata = layout.pg_dir("postgres")
    layout.as_pg("mkfifo", str(pgdata / datadir.POSTMASTER_PID))
    out = _unblocks(pgdata / datadir.POSTMASTER_PID, lambda: datadir.read_postmaster_pid(pgdata))
    assert isinstance(out, DataDirError), out
    keeper_dir = layout.pg_dir("keeper")
    layout.as_pg("mkfifo", str(keeper_dir / "keeperstate"))
    out = _unblocks(keeper_dir / "keeperstate", lambda: KeeperLocalState.load(keeper_dir))
    assert isinstance(out, DataDirError), out
    from stolon.keeper.activity import ActivityTracker
    from stolon.keeper.backup_jobs import STATE_FILE, BackupJobs

    layout.as_pg("mkfifo", str(keeper_dir / STATE_FILE))
    out = _unblocks(keeper_dir / STATE_FILE, lambda: BackupJobs(keeper_dir, ActivityTracker()).state)
    assert out is None


def test_lock_file_is_not_created_through_a_link(layout: Layout) -> None:
    keeper_dir = layout.pg_dir("keeper")
    target = layout.victim / "created-by-root"
    layout.as_pg("ln", "-s", str(target), str(keeper_dir / "lock"))
    with pytest.raises(UnsafePathError):
        DataDirLock(keeper_dir).acquire()
    assert not os.path.lexists(target)


def test_keeper_state_is_not_read_or_written_through_links(layout: Layout) -> None:
    before = snapshot(layout.victim)
    keeper_dir = layout.pg_dir("keeper")
    (layout.victim / "file").write_text('{"UID": "stolen"}')
    before = snapshot(layout.victim)
    layout.as_pg("ln", "-s", str(layout.victim / "file"), str(keeper_dir / "keeperstate"))
    with pytest.raises(UnsafePathError):
        KeeperLocalState.load(keeper_dir)
    KeeperLocalState("k1", "c1").save(keeper_dir)  # replaces the link
    assert (layout.victim / "file").read_text() == '{"UID": "stolen"}'
    assert snapshot(layout.victim) == before
    assert KeeperLocalState.load(keeper_dir) == KeeperLocalState("k1", "c1")


# -- the rule for links: followed only where nobody but root can change them ----------------


def test_links_in_root_only_directories_are_followed(layout: Layout) -> None:
    real = layout.base / "real"
    real.mkdir(mode=0o755)
    (layout.base / "alias").symlink_to(real)
    safefs.make_dir(layout.base / "alias" / "made", layout.user, 0o700)
    assert os.lstat(real / "made").st_uid == layout.user.uid
    safefs.write_file_atomic(layout.base / "alias" / "f", b"x")
    assert (real / "f").read_bytes() == b"x"
    # the last component: only with follow_last (as for --data-dir)
    safefs.make_dir(layout.base / "alias", None, 0o755, follow_last=True)
    with pytest.raises(UnsafePathError):
        safefs.make_dir(layout.base / "alias", None, 0o755)


def test_links_in_sticky_tmp_are_followed_only_if_root_owns_them(layout: Layout) -> None:
    root_link = Path(tempfile.mktemp(prefix="stolon-root-link-", dir="/tmp"))
    pg_link = Path(tempfile.mktemp(prefix="stolon-pg-link-", dir="/tmp"))
    try:
        root_link.symlink_to(layout.base)
        layout.as_pg("ln", "-s", str(layout.base), str(pg_link))
        assert safefs.read_file(root_link / "victim" / "file") == b"root's\n"
        with pytest.raises(UnsafePathError):
            safefs.read_file(pg_link / "victim" / "file")
    finally:
        root_link.unlink(missing_ok=True)
        pg_link.unlink(missing_ok=True)


def test_links_in_a_postgres_directory_are_never_followed(layout: Layout) -> None:
    layout.as_pg("ln", "-s", str(layout.base), str(layout.home / "up"))
    for call in (
        lambda: safefs.read_file(layout.home / "up" / "victim" / "file"),
        lambda: safefs.make_dir(layout.home / "up" / "victim" / "new", None),
        lambda: safefs.write_file_atomic(layout.home / "up" / "victim" / "new", b"x"),
        lambda: safefs.remove_tree(layout.home / "up" / "victim"),
        lambda: safefs.open_dir(layout.home / "up"),
    ):
        with pytest.raises(UnsafePathError):
            call()
    assert sorted(p.name for p in layout.victim.iterdir()) == ["file", "sub"]


def test_backup_work_directories_are_not_made_through_a_link(layout: Layout) -> None:
    """The backup methods' work directory lives in the keeper data dir, which postgres owns:
    a link it makes in place of ``backup/`` must not make root create (and give away) a
    directory, or write a config file, at the link's target."""
    from stolon.backup.base import BackupError
    from stolon.backup.files import ensure_private_dir, write_private

    before = snapshot(layout.victim)
    keeper_dir = layout.pg_dir("keeper")
    layout.as_pg("ln", "-s", str(layout.victim), str(keeper_dir / "backup"))
    with pytest.raises(BackupError):
        ensure_private_dir(keeper_dir / "backup" / "archive", layout.user)
    with pytest.raises(BackupError):
        write_private(keeper_dir / "backup" / "walg.json", "{}", layout.user)
    assert snapshot(layout.victim) == before
