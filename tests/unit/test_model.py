"""The cluster data model against documents shaped like Go Stolon's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stolon.model import (
    Cluster,
    ClusterData,
    ClusterDataError,
    ClusterSpec,
    KeeperInfo,
    ModelError,
    PostgresState,
    ProxyInfo,
    SentinelInfo,
)
from stolon.model.gotime import GO_ZERO_TIME, format_go_time, parse_go_time

FIXTURE = Path(__file__).parent.parent / "fixtures" / "go_clusterdata.json"


def test_go_cluster_data_round_trips_exactly() -> None:
    raw = FIXTURE.read_text()
    cd = ClusterData.parse(raw)
    assert json.loads(cd.dumps()) == json.loads(raw)


def test_go_cluster_data_fields() -> None:
    cd = ClusterData.parse(FIXTURE.read_text())
    assert cd.cluster is not None and cd.cluster.spec is not None
    assert cd.cluster.status.master == "db000001"
    assert str(cd.cluster.spec.sleep_interval) == "2s"
    assert cd.cluster.spec.pg_hba is None
    master = cd.master_db()
    assert master is not None and master.spec is not None
    assert master.spec.followers == ["db000002"]
    assert master.spec.external_synchronous_standbys == []
    assert master.status.system_id == "7012345678901234567"
    assert master.status.timelines_history is not None
    assert master.status.timelines_history[0].switch_point == 50331808
    standby = cd.db_of_keeper("keeper1")
    assert standby is not None and standby.spec is not None
    assert standby.spec.follow_config is not None and standby.spec.follow_config.dbuid == "db000001"
    assert standby.spec.synchronous_standbys is None
    keepers = cd.keepers or {}
    assert keepers["keeper0"].status.postgres_binary_version.maj == 15
    assert keepers["keeper1"].status.can_be_master is False
    assert keepers["keeper1"].status.can_be_synchronous_replica is None
    assert cd.proxy is not None and cd.proxy.spec.enabled_proxies == ["p1", "p2"]


def test_unknown_fields_survive_a_round_trip() -> None:
    obj = json.loads(FIXTURE.read_text())
    obj["traceContext"] = {"traceparent": "00-abc-def-01"}
    obj["cluster"]["spec"]["futureKnob"] = 7
    obj["dbs"]["db000001"]["status"]["newMetric"] = [1, 2]
    obj["keepers"]["keeper0"]["status"]["postgresBinaryVersion"]["Patch"] = 1
    cd = ClusterData.from_obj(obj)
    assert cd.unknown_fields == {"traceContext": {"traceparent": "00-abc-def-01"}}
    again = json.loads(cd.dumps())
    assert again == obj
    # and after a modification of a known field
    assert cd.cluster is not None
    cd.cluster.status.phase = "initializing"
    again = json.loads(cd.dumps())
    assert again["cluster"]["spec"]["futureKnob"] == 7
    assert again["dbs"]["db000001"]["status"]["newMetric"] == [1, 2]


@pytest.mark.parametrize("version", [0, 2, None, "1"])
def test_other_format_versions_are_refused(version: object) -> None:
    obj = json.loads(FIXTURE.read_text())
    obj["formatVersion"] = version
    with pytest.raises(ClusterDataError, match="unsupported clusterdata format version"):
        ClusterData.parse(json.dumps(obj))


def test_bad_stored_documents() -> None:
    with pytest.raises(ClusterDataError, match="not valid JSON"):
        ClusterData.parse("{")
    with pytest.raises(ClusterDataError, match="not a JSON object"):
        ClusterData.parse("[]")
    obj = json.loads(FIXTURE.read_text())
    obj["dbs"]["db000001"]["status"]["xLogPos"] = "lots"
    with pytest.raises(ClusterDataError, match=r"dbs.db000001.status.xLogPos: .*expected an integer"):
        ClusterData.parse(json.dumps(obj))


def test_new_cluster_data_is_go_shaped() -> None:
    cd = ClusterData.new(Cluster.new(ClusterSpec(init_mode="new")))
    obj = json.loads(cd.dumps())
    assert obj["formatVersion"] == 1
    assert obj["keepers"] == {} and obj["dbs"] == {}
    assert obj["proxy"] == {"changeTime": GO_ZERO_TIME, "spec": {}, "status": {}}
    assert obj["cluster"]["generation"] == 1
    assert obj["cluster"]["status"] == {"phase": "initializing"}
    assert len(obj["cluster"]["uid"]) == 8
    assert obj["cluster"]["spec"] == {
        "additionalWalSenders": None,
        "additionalMasterReplicationSlots": None,
        "initMode": "new",
        "pgHBA": None,
        "automaticPgRestart": None,
    }


def test_infos_use_go_keys() -> None:
    ki = KeeperInfo(
        info_uid="i1",
        uid="k1",
        cluster_uid="c1",
        boot_uuid="b",
        postgres_state=PostgresState(uid="db1", healthy=True, xlog_pos=10, system_id="7"),
        can_be_master=True,
    )
    obj = json.loads(ki.dumps())
    assert obj["postgresState"]["systemID"] == "7"
    assert obj["postgresState"]["synchronousStandbys"] is None
    assert obj["postgresBinaryVersion"] == {"Maj": 0, "Min": 0}
    assert KeeperInfo.loads(ki.dumps()) == ki
    assert json.loads(SentinelInfo(uid="s1").dumps()) == {"UID": "s1"}
    pi = ProxyInfo(info_uid="x", uid="p1", generation=3, proxy_timeout_ns=15 * 10**9)
    assert json.loads(pi.dumps()) == {
        "infoUID": "x",
        "UID": "p1",
        "Generation": 3,
        "ProxyTimeout": 15_000_000_000,
    }


def test_go_times() -> None:
    t = parse_go_time("2021-09-06T10:11:12.123456789+02:00")
    assert t is not None and t.microsecond == 123456
    assert format_go_time(t) == "2021-09-06T10:11:12.123456+02:00"
    assert parse_go_time(GO_ZERO_TIME) is None
    assert format_go_time(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2020-01-02T03:04:05Z"
    with pytest.raises(ValueError):
        parse_go_time("yesterday")


def test_strict_decoding_names_the_field() -> None:
    with pytest.raises(
        ModelError,
        match=r'^newConfig.dataChecksum: unknown field \(did you mean "dataChecksums"\?\)$',
    ):
        ClusterSpec.from_obj({"initMode": "new", "newConfig": {"dataChecksum": True}}, strict=True)
    with pytest.raises(ModelError, match=r"^synchronousReplication: expected true or false, got the string"):
        ClusterSpec.from_obj({"synchronousReplication": "yes"}, strict=True)
    with pytest.raises(ModelError, match=r"^maxStandbyLag: -1 is out of range for a uint32"):
        ClusterSpec.from_obj({"maxStandbyLag": -1}, strict=True)
    with pytest.raises(ModelError, match=r"^pgHBA\[1\]: expected a string, got the number 3"):
        ClusterSpec.from_obj({"pgHBA": ["host all all 0.0.0.0/0 md5", 3]}, strict=True)
    # lenient decoding keeps what it doesn't know
    spec = ClusterSpec.from_obj({"initMode": "new", "someday": 1})
    assert spec.unknown_fields == {"someday": 1}


def test_copy_is_deep() -> None:
    cd = ClusterData.parse(FIXTURE.read_text())
    other = cd.copy()
    assert other == cd
    assert other.dbs is not None
    other.dbs["db000001"].status.healthy = False
    assert (cd.dbs or {})["db000001"].status.healthy is True
