"""Malformed documents from the store (issue 10, item 5): each is ignored on its own and
logged once per change; size and nesting are bounded (stolon/model/limits.py).

Runs on the embedded store (a real SQLite file), which can also hold the "wrong SQL column
type" class of malformed data.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from pathlib import Path

import pytest

from stolon.model import (
    DB,
    Cluster,
    ClusterData,
    ClusterDataError,
    ClusterSpec,
    DBSpec,
    DBStatus,
    Keeper,
    KeeperInfo,
    KeeperStatus,
    ModelError,
    PostgresState,
)
from stolon.model.limits import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_INFO_BYTES, parse_json
from stolon.plugins import load_plugins
from stolon.store import ClusterStore, open_store
from stolon.store.base import InfoKind, StoreConfig
from stolon.store.embedded import EmbeddedStore

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

GOOD_INFO = KeeperInfo(uid="good", info_uid="i1", postgres_state=PostgresState(healthy=True)).to_bytes()

#: (name, bytes): every class of malformed JSON document
MALFORMED: list[tuple[str, bytes]] = [
    ("nested", b"[" * 20_000 + b"]" * 20_000),  # RecursionError in json.loads before the fix
    ("nested-object", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    ("deep-but-parsable", b'{"uid": "x", "unknown": ' + b"[" * 40 + b"]" * 40 + b"}"),
    ("huge", b'{"uid":"' + b"x" * (MAX_INFO_BYTES + 10) + b'"}'),
    ("wrong-type", b'{"uid": 42, "postgresState": {"healthy": "yes"}}'),
    ("wrong-nested-type", b'{"uid": "w", "postgresState": {"timelinesHistory": {"a": 1}}}'),
    ("truncated", GOOD_INFO[: len(GOOD_INFO) // 2]),
    ("not-an-object", b"[1, 2, 3]"),
    ("big-integer", b'{"uid": "b", "postgresState": {"xLogPos": ' + b"9" * 5000 + b"}}"),
    ("bad-utf8", b'{"uid": "\xff\xfe"}'),
    ("list-for-string", b'{"uid": "t", "bootUUID": []}'),
    ("bad-time-digits", b'{"uid": "t", "postgresState": {"generation": 1.5}}'),
]


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(backend="embedded", cluster_name="c", endpoints=(str(tmp_path / "s.db"),))


def _deep_json(levels: int) -> bytes:
    return b'{"formatVersion": 1, "x": ' + b"[" * levels + b"]" * levels + b"}"


def test_limits_refuse_with_one_line_model_errors() -> None:
    for data, message in [
        (b"[" * 100_000, "nested more than"),
        (_deep_json(MAX_DEPTH + 1), "nested more than"),
        (b" " * (MAX_DOCUMENT_BYTES + 1), r"more than the 4194304 bytes \(4.0 MiB\)"),
        (b'{"a": ' + b"7" * 5000 + b"}", "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
        (b"\xff", "not valid JSON"),
    ]:
        with pytest.raises(ModelError, match=message) as err:
            parse_json(data, "the cluster data")
        assert "\n" not in str(err.value)
    assert parse_json(_deep_json(MAX_DEPTH - 1), "x")["formatVersion"] == 1


def test_depth_of_counts_levels_of_objects_and_arrays() -> None:
    from stolon.model.limits import depth_of

    def reference(v: object) -> int:
        if isinstance(v, dict):
            return 1 + max((reference(c) for c in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((reference(c) for c in v), default=0)
        return 0

    rnd = random.Random(7)

    def gen(level: int) -> object:
        r = rnd.random()
        if level > 8 or r < 0.3:
            return rnd.choice([1, "[{", None, True, 2.5])
        if r < 0.65:
            return [gen(level + 1) for _ in range(rnd.randint(0, 4))]
        return {f"k{i}": gen(level + 1) for i in range(rnd.randint(0, 4))}

    for _ in range(2000):
        value = gen(0)
        assert depth_of(value) == reference(value), value
    deep: list[object] = []
    for _ in range(40):
        deep = [deep]
    assert depth_of(deep, 32) == 33 and depth_of(deep, 100) == 41


def test_a_cluster_data_of_100_keepers_fits_easily() -> None:
    params = {f"parameter_{i}": f"value-{i}-of-a-typical-length" for i in range(40)}
    cd = ClusterData.new(Cluster.new(ClusterSpec(init_mode="new", pg_parameters=params)))
    assert cd.keepers is not None and cd.dbs is not None
    for i in range(100):
        cd.keepers[f"keeper{i}"] = Keeper(uid=f"keeper{i}", status=KeeperStatus(healthy=True))
        cd.dbs[f"db{i}"] = DB(
            uid=f"db{i}",
            spec=DBSpec(
                keeper_uid=f"keeper{i}", pg_parameters=params, followers=[f"db{j}" for j in range(99)]
            ),
            status=DBStatus(healthy=True, listen_address=f"10.0.0.{i}", port="5432", pg_parameters=params),
        )
    data = cd.to_bytes()
    assert len(data) * 4 < MAX_DOCUMENT_BYTES, len(data)
    assert ClusterData.parse(data).keepers == cd.keepers


@pytest.mark.parametrize(("name", "data"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_info_is_ignored_alone(
    config: StoreConfig, name: str, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with open_store(config, PLUGINS) as st:
        st.backend.put_info(InfoKind.KEEPER, "good", GOOD_INFO, 60)
        st.backend.put_info(InfoKind.KEEPER, "bad", data, 60)
        caplog.set_level(logging.ERROR, "stolon.store.client")
        for _ in range(3):
            infos = st.keepers_info()
            assert set(infos) == {"good"}
        logged = [r for r in caplog.records if "'bad'" in r.getMessage()]
        assert len(logged) == 1, "logged once, not once per read"
        assert "\n" not in logged[0].getMessage()
        assert "ignoring the malformed keepers info 'bad'" in logged[0].getMessage()


def test_a_changed_bad_info_is_logged_again_and_a_fixed_one_is_forgotten(
    config: StoreConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "stolon.store.client")
    with open_store(config, PLUGINS) as st:
        st.backend.put_info(InfoKind.KEEPER, "k", b"{", 60)
        st.keepers_info()
        st.keepers_info()
        st.backend.put_info(InfoKind.KEEPER, "k", b"[[", 60)
        st.keepers_info()
        assert len(caplog.records) == 2
        assert set(st.malformed.current()) == {"keepers/k"}
        st.backend.put_info(InfoKind.KEEPER, "k", GOOD_INFO, 60)
        assert set(st.keepers_info()) == {"k"}
        assert st.malformed.current() == {}


def test_malformed_cluster_data_raises_cluster_data_error_logged_once(
    config: StoreConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "stolon.store.client")
    good = ClusterData.new(Cluster.new(ClusterSpec(init_mode="new"))).to_bytes()
    with open_store(config, PLUGINS) as st:
        for data in [
            b"[" * 20_000,
            _deep_json(MAX_DEPTH + 5),
            b'{"formatVersion": 1, "x": "' + b"y" * MAX_DOCUMENT_BYTES + b'"}',
            b'{"formatVersion": 1, "keepers": []}',
            good[:-3],
            b'{"formatVersion": 2}',
        ]:
            caplog.clear()
            st.backend.put_cluster_data(data)
            for _ in range(3):
                with pytest.raises(ClusterDataError):
                    st.get_cluster_data()
            assert len(caplog.records) == 1, data[:40]
        st.backend.put_cluster_data(good)
        cd, _ = st.get_cluster_data()
        assert cd is not None and st.malformed.current() == {}


def test_embedded_store_rows_with_wrong_sql_types(
    config: StoreConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite columns are dynamically typed: whoever can write the file can put an INTEGER
    where a BLOB belongs (``bytes(10**12)`` would try to allocate a terabyte)."""
    caplog.set_level(logging.WARNING)
    now = [100.0]
    with ClusterStore(EmbeddedStore(config, clock=lambda: now[0])) as st:
        st.backend.put_info(InfoKind.KEEPER, "good", GOOD_INFO, 60)
        st.backend.put_info(InfoKind.KEEPER, "text", GOOD_INFO.replace(b'"good"', b'"text"'), 60)
        for uid in ("int", "real", "exp", "boot"):
            st.backend.put_info(InfoKind.KEEPER, uid, GOOD_INFO, 60)
        st.create_cluster_data(ClusterData.new(Cluster.new(ClusterSpec(init_mode="new"))))
        db = sqlite3.connect(config.endpoints[0])
        with db:
            db.execute("UPDATE infos SET data = CAST(data AS TEXT) WHERE uid = 'text'")
            db.execute("UPDATE infos SET data = 1000000000000 WHERE uid = 'int'")
            db.execute("UPDATE infos SET data = 1.5 WHERE uid = 'real'")
            db.execute("UPDATE infos SET expires_at = 'soon' WHERE uid = 'exp'")
            db.execute("UPDATE infos SET boot_id = X'00' WHERE uid = 'boot'")
        for _ in range(3):
            assert set(st.keepers_info()) == {"good", "text"}  # TEXT is read as UTF-8
        bad_rows = [r for r in caplog.records if "embedded store: ignoring" in r.getMessage()]
        assert len(bad_rows) == 4, [r.getMessage() for r in bad_rows]
        with db:
            db.execute("UPDATE cluster_data SET data = 1000000000000")
        with pytest.raises(ClusterDataError, match="SQL INTEGER"):
            st.get_cluster_data()
        with db:
            db.execute("UPDATE cluster_data SET data = X'7b7d', revision = 'abc'")
        with pytest.raises(ClusterDataError, match="revision"):
            st.get_cluster_data()
        db.close()
