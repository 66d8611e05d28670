"""stolon.store.inotify against the real kernel, and the embedded store's use of it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from stolon.store.base import ChangeKind, InfoKind, StoreConfig
from stolon.store.embedded import EmbeddedStore, EmbeddedWatch, notify_path
from stolon.store.inotify import DirectoryNotifier, touch


def test_touch_of_a_watched_name_wakes(tmp_path: Path) -> None:
    n = DirectoryNotifier(tmp_path, ["a"])
    try:
        assert not n.wait(0)
        touch(str(tmp_path / "a"))  # created
        assert n.wait(5)
        assert not n.wait(0), "events are consumed"
        touch(str(tmp_path / "a"))  # times updated
        assert n.wait(5)
    finally:
        n.close()


def test_other_names_do_not_wake(tmp_path: Path) -> None:
    n = DirectoryNotifier(tmp_path, ["a"])
    try:
        touch(str(tmp_path / "b"))
        (tmp_path / "a-wal").write_bytes(b"x")
        assert not n.wait(0.2)
    finally:
        n.close()


def test_other_names_do_not_end_a_wait(tmp_path: Path) -> None:
    """A wait goes on through events for other files (each used to end it early, costing
    the embedded store's watch a look at SQLite) and ends on the watched name."""
    n = DirectoryNotifier(tmp_path, ["a"])
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(n.wait(60)))
    try:
        t.start()
        for _ in range(20):
            touch(str(tmp_path / "b"))
        touch(str(tmp_path / "a"))
        t.join(60)
        assert results == [True]
    finally:
        n.close()
        t.join(5)


def test_touch_creates_a_private_empty_file_and_follows_no_link(tmp_path: Path) -> None:
    touch(str(tmp_path / "a"))
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a").stat().st_size == 0
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    before = target.stat().st_mtime_ns
    (tmp_path / "link").symlink_to(target)
    time.sleep(0.01)
    touch(str(tmp_path / "link"))
    assert target.stat().st_mtime_ns == before and target.read_bytes() == b"keep"


def test_close_ends_a_wait(tmp_path: Path) -> None:
    n = DirectoryNotifier(tmp_path, ["a"])
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(n.wait(30)), daemon=True)
    t.start()
    time.sleep(0.2)
    n.close()
    t.join(10)
    assert result == [False]
    assert not n.wait(0)  # after close: no error, no change


def _store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(
        StoreConfig(backend="embedded", cluster_name="c1", endpoints=(str(tmp_path / "s.db"),))
    )


def test_writes_touch_the_file_of_their_kind(tmp_path: Path) -> None:
    st = _store(tmp_path)
    try:
        st.put_info(InfoKind.KEEPER, "k", b"{}", 10)
        assert Path(notify_path(st.path, ChangeKind.KEEPERS)).exists()
        assert not Path(notify_path(st.path, ChangeKind.CLUSTER_DATA)).exists()
        st.put_cluster_data(b"x")
        assert Path(notify_path(st.path, ChangeKind.CLUSTER_DATA)).exists()
    finally:
        st.close()


def test_watch_sees_a_writer_that_does_not_signal(tmp_path: Path) -> None:
    """A writer of an older version (or a manual edit) commits without touching the signal
    file: the watch still sees it, at its periodic look (NOTIFIED_WATCH_POLL)."""
    st = _store(tmp_path)
    w = st.watch(frozenset({ChangeKind.CLUSTER_DATA}))
    assert isinstance(w, EmbeddedWatch)
    try:
        raw = sqlite3.connect(st.path, isolation_level=None)
        raw.execute(
            "INSERT INTO changes (cluster, kind, seq) VALUES (?, 'clusterdata', 1)"
            " ON CONFLICT (cluster, kind) DO UPDATE SET seq = seq + 1",
            (st.cluster,),
        )
        raw.close()
        deadline = time.monotonic() + 10
        seen = False
        while not seen and time.monotonic() < deadline:
            seen = w.wait(1.0).touches(ChangeKind.CLUSTER_DATA)
        assert seen
    finally:
        w.close()
        st.close()


def test_watch_uses_inotify_here(tmp_path: Path) -> None:
    """This machine is Linux: the embedded watch does not fall back to polling."""
    st = _store(tmp_path)
    w = st.watch()
    try:
        assert isinstance(w, EmbeddedWatch) and w._notifier is not None
    except AssertionError:
        pytest.fail("no inotify: check /proc/sys/fs/inotify/max_user_instances")
    finally:
        w.close()
        st.close()
