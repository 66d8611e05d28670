"""The store contract against the built-in embedded (SQLite) store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stolon.store.base import ConflictError, InfoKind, StoreConfig, StoreConfigError
from stolon.store.embedded import EmbeddedStore
from stolon.testing.store_contract import StoreContract, unique_cluster_name


class TestEmbeddedStore(StoreContract):
    @pytest.fixture
    def store_config(self, tmp_path: Path) -> StoreConfig:
        return StoreConfig(
            backend="embedded",
            cluster_name=unique_cluster_name(),
            endpoints=(str(tmp_path / "store.db"),),
        )


def _config(tmp_path: Path, name: str = "c1") -> StoreConfig:
    return StoreConfig(backend="embedded", cluster_name=name, endpoints=(str(tmp_path / "s.db"),))


def test_ttl_follows_boottime_not_wall_clock(tmp_path: Path) -> None:
    """TTLs run on an injected monotonic clock; the wall clock plays no part."""
    now = [1000.0]
    st = EmbeddedStore(_config(tmp_path), clock=lambda: now[0])
    st.put_info(InfoKind.KEEPER, "k", b"{}", 10)
    now[0] += 9.9
    assert "k" in st.get_infos(InfoKind.KEEPER)
    now[0] += 0.2
    assert st.get_infos(InfoKind.KEEPER) == {}
    st.close()


def test_revisions_never_reused_after_delete(tmp_path: Path) -> None:
    st = EmbeddedStore(_config(tmp_path))
    rev1 = st.create_cluster_data(b"a")
    st.delete_cluster_data()
    rev2 = st.create_cluster_data(b"b")
    assert rev2 != rev1
    with pytest.raises(ConflictError):
        st.cas_cluster_data(b"c", rev1)
    st.close()


_INCREMENTER = """
import sys
from stolon.store.base import ConflictError, StoreConfig
from stolon.store.embedded import EmbeddedStore
st = EmbeddedStore(StoreConfig(backend="embedded", cluster_name="c1", endpoints=(sys.argv[1],)))
for _ in range(int(sys.argv[2])):
    while True:
        cur = st.get_cluster_data()
        try:
            st.cas_cluster_data(str(int(cur.data) + 1).encode(), cur.revision)
            break
        except ConflictError:
            continue
"""


def test_cas_is_atomic_across_processes(tmp_path: Path) -> None:
    """Four processes increment one counter with CAS retries: no update is lost."""
    st = EmbeddedStore(_config(tmp_path))
    st.create_cluster_data(b"0")
    procs = [
        subprocess.Popen([sys.executable, "-c", _INCREMENTER, str(tmp_path / "s.db"), "50"]) for _ in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    got = st.get_cluster_data()
    assert got is not None and got.data == b"200"
    st.close()


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ((), "--store-endpoints is required with --store-backend embedded"),
        (("http://127.0.0.1:2379",), "is a URL; the embedded store takes a file path"),
        (("/nonexistent-dir/x/s.db",), "does not exist: create it first"),
        (("/tmp/a.db", "/tmp/b.db"), "takes one database file path"),
    ],
)
def test_bad_endpoints_are_config_errors(endpoints: tuple[str, ...], message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        EmbeddedStore(StoreConfig(backend="embedded", cluster_name="c", endpoints=endpoints))


def test_file_url_endpoint(tmp_path: Path) -> None:
    st = EmbeddedStore(
        StoreConfig(backend="embedded", cluster_name="c", endpoints=(f"file://{tmp_path}/u.db",))
    )
    st.put_cluster_data(b"x")
    assert (tmp_path / "u.db").exists()
    st.close()


def test_database_files_are_private(tmp_path: Path) -> None:
    """Issue 10 item 3: the file holds the cluster spec; it and its -wal/-shm are 0600."""
    import os
    import stat

    old_umask = os.umask(0o022)
    try:
        st = EmbeddedStore(_config(tmp_path))
        st.put_cluster_data(b'{"cluster": {}}')
        st.put_info(InfoKind.KEEPER, "k", b"{}", 10)
        files = sorted(tmp_path.glob("s.db*"))
        # the change signals (empty files touched after each commit) are private too
        assert [f.name for f in files] == [
            "s.db",
            "s.db-notify-clusterdata",
            "s.db-notify-keepers",
            "s.db-shm",
            "s.db-wal",
        ]
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert (tmp_path / "s.db-notify-keepers").stat().st_size == 0
        st.close()
        # a file left world-readable (by an older version) is tightened when opened
        db_files = [f for f in (tmp_path / f"s.db{sfx}" for sfx in ("", "-wal", "-shm")) if f.exists()]
        for f in db_files:
            os.chmod(f, 0o644)
        EmbeddedStore(_config(tmp_path)).close()
        for f in db_files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        os.umask(old_umask)
