"""Malformed documents in the real store under a running cluster (issue 10, items 4 and 5).

Two keepers (synchronous replication) and two sentinels as processes on the embedded store
(a real SQLite file: it can also hold values of the wrong SQL type). The story:

1. malformed infos of every class (nested, huge, wrong type, truncated JSON, wrong SQL
   column type) are written for keepers, sentinels and proxies, and stay there;
2. the cluster data is replaced by each malformed class in turn (nested, huge, wrong type,
   truncated, unknown format version, wrong column type): no component overwrites it, the
   master keeps serving, then the good document is put back;
3. the spec is replaced, behind stolonctl's back, by one Go Stolon accepts and we refuse as
   new input (``synchronous_commit`` ``local`` with ``synchronousReplication``, a typo in
   ``pgParameters``, ``requestTimeout`` 0): the keepers apply it (the typo left out);
4. the master is killed: a failover happens, and every malformed info is still there,
   byte for byte; each was logged once per sentinel, not once per cycle.

On main: the nested keeper info made every sentinel cycle fail (no failover), and the
stored spec of step 3 stopped every component. Takes about 60-90 s on two cores.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator

import pytest

from stolon.model import KeeperInfo
from stolon.model.limits import MAX_DOCUMENT_BYTES, MAX_INFO_BYTES
from stolon.plugins import load_plugins
from stolon.store import open_backend
from stolon.store.base import InfoKind, Store

from .ha_harness import HA, wait_for

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD_INFO = KeeperInfo(uid="x", info_uid="i").to_bytes()

#: (kind, uid) → what is written; ``None`` marks the wrong-SQL-type row (set by UPDATE)
BAD_INFOS: dict[tuple[InfoKind, str], bytes | None] = {
    (InfoKind.KEEPER, "evil-nested"): b"[" * 20_000 + b"]" * 20_000,
    (InfoKind.KEEPER, "evil-huge"): b'{"uid":"' + b"h" * (MAX_INFO_BYTES + 1) + b'"}',
    (InfoKind.KEEPER, "evil-type"): b'{"uid": "evil-type", "postgresState": {"healthy": "yes"}}',
    (InfoKind.KEEPER, "evil-truncated"): GOOD_INFO[: len(GOOD_INFO) // 2],
    (InfoKind.KEEPER, "evil-column"): None,
    (InfoKind.SENTINEL, "evil-nested"): b'{"UID": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    (InfoKind.SENTINEL, "evil-type"): b'{"UID": 7}',
    (InfoKind.PROXY, "evil-truncated"): b'{"UID": "p", "Gener',
    (InfoKind.PROXY, "evil-column"): None,
}


@pytest.fixture
def ha(request: pytest.FixtureRequest) -> Iterator[HA]:
    failed_before = request.session.testsfailed
    cluster = HA([], keepers=2, sentinels=2, synchronous=True, store_backend="embedded")
    try:
        cluster.start()
        yield cluster
    finally:
        if request.session.testsfailed > failed_before or os.environ.get("STOLON_HA_LOGS"):
            print(cluster.logs(int(os.environ.get("STOLON_HA_LOGS_TAIL", "6000"))))
        cluster.close()


def _db(ha: HA) -> sqlite3.Connection:
    return sqlite3.connect(ha.cluster.layout.store_endpoints[0], timeout=30)


def _raw_infos(ha: HA) -> dict[tuple[str, str], object]:
    with _db(ha) as db:
        rows = db.execute("SELECT kind, uid, data FROM infos WHERE uid LIKE 'evil-%'").fetchall()
    return {(kind, uid): data for kind, uid, data in rows}


def _sentinel_cycles(ha: HA, n: int = 2) -> None:
    """Wait until every sentinel has run ``n`` more cycles (each republishes its info first,
    readable cluster data or not)."""

    def stamps() -> dict[str, float]:
        with _db(ha) as db:
            rows = db.execute("SELECT uid, expires_at FROM infos WHERE kind = 'sentinels'").fetchall()
        return {uid: exp for uid, exp in rows if not uid.startswith("evil-")}

    seen = [stamps()]

    def advanced() -> bool:
        now = stamps()
        if all(now.get(uid) != exp for uid, exp in seen[-1].items()):
            seen.append(now)
        return len(seen) > n

    wait_for(f"{n} sentinel cycles", advanced, 60, 0.2)


def test_malformed_documents_never_stop_a_failover_and_are_never_overwritten(ha: HA) -> None:
    master = ha.master()
    (standby,) = ha.standbys()
    ha.wait_standby(standby)
    ha.sql(master, "CREATE TABLE t (id bigint PRIMARY KEY)")
    ha.sql(master, "INSERT INTO t VALUES (1)")
    backend: Store
    with open_backend(ha.cluster.layout.store_config(), PLUGINS) as backend:
        # 1. malformed infos of every class, for every kind of info
        for (kind, uid), data in BAD_INFOS.items():
            backend.put_info(kind, uid, data if data is not None else GOOD_INFO, 3600)
        with _db(ha) as db:
            db.execute("UPDATE infos SET data = 123456789012 WHERE uid = 'evil-column'")
        written = _raw_infos(ha)
        assert len(written) == len(BAD_INFOS)
        _sentinel_cycles(ha)

        # 2. malformed cluster data, class by class: left alone, postgres keeps serving
        stored = backend.get_cluster_data()
        assert stored is not None
        good = stored.data
        classes: list[tuple[str, bytes | None]] = [
            ("nested", b'{"formatVersion": 1, "cluster": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
            ("huge", good[:-1] + b', "pad": "' + b"p" * MAX_DOCUMENT_BYTES + b'"}'),
            ("wrong type", json.dumps({**json.loads(good), "dbs": [1, 2]}).encode()),
            ("wrong nested type", json.dumps({**json.loads(good), "keepers": {"k": {"status": 5}}}).encode()),
            ("truncated", good[: len(good) // 2]),
            ("unknown format version", json.dumps({**json.loads(good), "formatVersion": 99}).encode()),
            ("wrong column type", None),
        ]
        for i, (name, data) in enumerate(classes):
            current = backend.get_cluster_data()
            assert current is not None
            restore = current.data
            if data is None:
                with _db(ha) as db:
                    db.execute("UPDATE cluster_data SET data = 987654321")
            else:
                backend.put_cluster_data(data)
            _sentinel_cycles(ha)
            with _db(ha) as db:
                (now,) = db.execute("SELECT data FROM cluster_data").fetchone()
            assert now == (987654321 if data is None else data), f"{name}: the cluster data was overwritten"
            ha.sql(master, f"INSERT INTO t VALUES ({100 + i})")  # the master keeps serving
            backend.put_cluster_data(restore)
        ha.wait_standby(standby)

        # 3. a spec Go Stolon accepts (refused as new input): the cluster runs on it
        obj = json.loads(backend.get_cluster_data().data)  # type: ignore[union-attr]
        spec = obj["cluster"]["spec"]
        spec["pgParameters"] = {
            **spec.get("pgParameters", {}),
            "synchronous_commit": "local",
            "wrok_mem": "1MB",
        }
        spec["requestTimeout"] = "0s"
        backend.put_cluster_data(json.dumps(obj).encode())
        wait_for(
            "synchronous_commit=local applied",
            lambda: ha.sql(master, "SHOW synchronous_commit") == [("local",)],
            60,
        )
        status = ha.ctl("status").stdout
        assert "WARNING: cluster spec: pgParameters.synchronous_commit" in status
        assert "WARNING: keeper " in status and "InvalidParameter wrok_mem" in status
        assert "ignoring the malformed keepers info 'evil-nested'" in status
        ha.wait_standby(standby)
        wait_for("the standby in sync", lambda: ha.in_sync() == [standby], 60)

    # 4. failover with all of that in the store
    ha.kill(master)
    new = ha.wait_new_master(master, timeout=90)
    assert new == standby
    assert 1 in ha.ids(new)
    assert _raw_infos(ha) == written, "the malformed infos are untouched"
    for name in ha.cluster.layout.sentinels:
        out = ha.cluster.processes[name].output()
        assert out.count("ignoring the malformed keepers info 'evil-nested'") == 1, name
        assert out.count("ignoring the keepers info row 'evil-column'") == 1, name
