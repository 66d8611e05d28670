"""Keeper infos the sentinel ignores (issue 10, items 9 and 10): a UID that breaks the keeper
UID rule, a ``uid`` field naming another keeper, an advertised address that is not an IP
address or host name, a port that is not a port. Ignored means not partly used: no Keeper
object, nothing copied into the DB status, a ``keeper_info_rejected`` reason instead."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from stolon.model.infos import KeeperInfo, PostgresState
from stolon.plugins import load_plugins
from stolon.sentinel import Observations, decide
from stolon.sentinel import events as ev
from stolon.sentinel.admission import keeper_info_problem
from stolon.testing.sentinel_builders import CD, CLUSTER_UID, MASTER, NOW, pick_first, uids

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()


def two() -> CD:
    return (
        CD()
        .keeper("keeper1")
        .keeper("keeper2")
        .db("db1", "keeper1", role=MASTER, followers=["db2"])
        .db("db2", "keeper2", follows="db1")
        .master("db1")
        .proxy(generation=1, master="db1")
    )


def info(
    uid: str = "k", address: str = "10.0.0.1", port: str = "5432", uid_field: str | None = None
) -> KeeperInfo:
    return KeeperInfo(
        info_uid="i",
        uid=uid if uid_field is None else uid_field,
        cluster_uid=CLUSTER_UID,
        postgres_state=PostgresState(uid="db", listen_address=address, port=port),
    )


INJECTION = "10.0.0.3/32 trust\nhost all all 0.0.0.0/0 trust #"


@pytest.mark.parametrize(
    ("uid", "ki", "problem"),
    [
        ("keeper_1", info("keeper_1"), None),
        ("k", info(address="fd00::1"), None),
        ("k", info(address="db-1.example.com"), None),
        ("k", info(address="", port=""), None),  # not known yet
        ("k", info(uid_field=""), None),
        ("k\n", info("k\n"), "breaks the keeper UID rule"),
        ("K", info("K"), "breaks the keeper UID rule"),
        ("k\x1b[31m", info("k\x1b[31m"), "breaks the keeper UID rule"),
        ("k", info(uid_field="other"), "is not the UID it is stored under"),
        ("k", info(address=INJECTION), "postgresState.listenAddress '10.0.0.3/32 trust\\\\nhost all"),
        ("k", info(address="10.0.0.0/8"), "must be an IP address or a DNS host name"),
        ("k", info(address="*"), "must be an IP address or a DNS host name"),
        ("k", info(address="all trust"), "must be an IP address or a DNS host name"),
        ("k", info(port="5432 "), "postgresState.port"),
        ("k", info(port="0"), "postgresState.port"),
        ("k", info(port="70000"), "postgresState.port"),
        ("k", info(port="5432\nx"), "postgresState.port"),
    ],
)
def test_keeper_info_problem(uid: str, ki: KeeperInfo, problem: str | None) -> None:
    got = keeper_info_problem(uid, ki)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got
        assert "\n" not in got and "\x1b" not in got


def test_rejected_infos_do_not_reach_the_cluster_data() -> None:
    """A keeper whose info now carries an injected address is not refreshed (its DB keeps
    the old address and goes unhealthy after failInterval like a silent keeper); a new
    keeper with a bad UID gets no Keeper object."""
    b = two()
    obs = b.observations()
    infos = dict(obs.keepers_info)
    ki = infos["keeper2"]
    assert ki.postgres_state is not None
    infos["keeper2"] = replace(
        ki, info_uid="k2-new", postgres_state=replace(ki.postgres_state, listen_address=INJECTION)
    )
    infos["evil\n"] = KeeperInfo(info_uid="e", uid="evil\n", cluster_uid=CLUSTER_UID, boot_uuid="b")
    d = decide(
        b.build(), Observations(keepers_info=infos), b.memory(), NOW, new_uid=uids(), pick_index=pick_first
    )
    assert (
        d.cluster_data is not None and d.cluster_data.keepers is not None and d.cluster_data.dbs is not None
    )
    assert sorted(d.cluster_data.keepers) == ["keeper1", "keeper2"]
    assert d.cluster_data.dbs["db2"].status.listen_address == ""
    rejected = d.of(ev.KeeperInfoRejected)
    assert [x.keeper_uid for x in rejected] == ["evil\\n", "keeper2"]
    assert "listenAddress" in rejected[1].why
    # keeper2's error timer started: the info counts as absent
    assert "keeper2" in d.memory.keeper_errors


def test_the_daemon_logs_a_rejected_info_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The real sentinel daemon on the embedded store: a keeper info with a bad UID is
    ignored every cycle but logged once, escaped."""
    import logging
    import time

    from stolon.model import ClusterSpec
    from stolon.sentinel.daemon import Sentinel, SentinelConfig
    from stolon.store import open_store
    from stolon.store.base import InfoKind, StoreConfig

    cfg = StoreConfig(backend="embedded", cluster_name="adm", endpoints=(str(tmp_path / "s.db"),))
    sentinel = Sentinel(
        SentinelConfig(
            store=cfg, initial_cluster_spec=ClusterSpec.from_obj({"initMode": "new"}), election_ttl=3.0
        ),
        PLUGINS,
    )
    sentinel.start()
    store = open_store(cfg, PLUGINS)
    try:
        deadline = time.monotonic() + 30
        assert sentinel.election is not None
        while sentinel.election.leadership() is None:
            assert time.monotonic() < deadline, "no leadership"
            time.sleep(0.05)
        sentinel.cycle()  # creates the cluster data
        cd, _ = store.get_cluster_data()
        assert cd is not None and cd.cluster is not None
        bad = KeeperInfo(info_uid="x", uid="evil\x1b]0;pwned\x07", cluster_uid=cd.cluster.uid)
        store.backend.put_info(InfoKind.KEEPER, "evil\x1b]0;pwned\x07", bad.to_bytes(), 60)
        with caplog.at_level(logging.DEBUG, logger="stolon.sentinel"):
            for _ in range(3):
                sentinel.cycle()
        warnings = [rec.getMessage() for rec in caplog.records if "ignoring the info" in rec.getMessage()]
        assert warnings == [
            "ignoring the info of keeper 'evil\\\\x1b]0;pwned\\\\x07': its UID breaks the keeper UID rule"
            " (only lower-case letters, digits and _)"
        ]
        assert all("\x1b" not in rec.getMessage() for rec in caplog.records)
        cd, _ = store.get_cluster_data()
        assert cd is not None and not cd.keepers
    finally:
        sentinel.stop()
        sentinel.close()
        store.close()
