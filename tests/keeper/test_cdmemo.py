"""The keeper's cluster data memo and plan reuse (stolon.keeper.cdmemo): a document that
differs from the last one only in the sentinel's heartbeat fields gives back the same
object (so the keeper skips re-validating and re-planning); any other change, however
small, gives a new one."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from stolon.keeper.cdmemo import ClusterDataMemo, PlanInputs, reuse_plan, without_heartbeats
from stolon.model import ClusterData, ClusterDataError

from .test_plan import ME, add_db, cd, facts

Doc = dict[str, Any]
T0 = "2026-01-01T10:00:00.123456Z"
T1 = "2026-01-01T10:00:01.654321Z"


def document() -> Doc:
    c = cd()
    add_db(c, "db0", "k0", "master", address="10.0.0.1", followers=["db1"])
    add_db(c, "db1", "k1", "standby", address="10.0.0.2", follows="db0")
    assert c.proxy is not None
    c.proxy.spec.master_db_uid = "db0"
    obj: Doc = json.loads(c.to_bytes())
    obj["changeTime"] = T0
    for k in obj["keepers"].values():
        k["changeTime"] = T0
        k["status"]["lastHealthyTime"] = T0
    return obj


def heartbeat(obj: Doc) -> None:
    obj["changeTime"] = T1
    for k in obj["keepers"].values():
        k["changeTime"] = T1
        k["status"]["lastHealthyTime"] = T1


def set_path(path: tuple[str, ...], value: Any) -> Callable[[Doc], None]:
    def change(obj: Doc) -> None:
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return change


def raw(obj: Doc) -> bytes:
    return json.dumps(obj).encode()


def test_without_heartbeats_takes_out_exactly_the_heartbeat_fields() -> None:
    obj = document()
    before = copy.deepcopy(obj)
    split = without_heartbeats(obj)
    assert split is not None
    rest, taken = split
    assert obj == before  # not modified
    assert "changeTime" not in rest
    for k in rest["keepers"].values():
        assert "changeTime" not in k and "lastHealthyTime" not in k["status"]
        assert k["status"]["healthy"] is True
    assert taken == [T0] * 5  # the document, then each keeper's two
    assert rest["dbs"] == obj["dbs"] and rest["cluster"] == obj["cluster"]


@pytest.mark.parametrize("obj", [None, [], "x", {"keepers": {"k0": "not an object"}}])
def test_without_heartbeats_of_something_else_is_none(obj: Any) -> None:
    assert without_heartbeats(obj) is None


def test_a_heartbeat_only_change_gives_the_same_object() -> None:
    memo = ClusterDataMemo()
    obj = document()
    first = memo.parse(raw(obj))
    heartbeat(obj)
    assert memo.parse(raw(obj)) is first
    assert memo.reused == 1
    # a key order change is no change either
    assert memo.parse(json.dumps(obj, sort_keys=True).encode()) is first


CHANGES: dict[str, Callable[[Doc], None]] = {
    "our DB's generation": set_path(("dbs", "db0", "generation"), 3),
    "our DB's role": set_path(("dbs", "db0", "spec", "role"), "standby"),
    "the master": set_path(("cluster", "status", "master"), "db1"),
    "the proxy's master": set_path(("proxy", "spec", "masterDbUid"), "db1"),
    "a follower's address": set_path(("dbs", "db1", "status", "listenAddress"), "10.0.0.9"),
    "another DB's xlog position": set_path(("dbs", "db1", "status", "xlogPos"), 123),
    "a keeper's health": set_path(("keepers", "k1", "status", "healthy"), False),
    "our keeper's boot uuid": set_path(("keepers", "k0", "status", "bootUUID"), "boot-9"),
    "a spec parameter": set_path(("cluster", "spec", "pgParameters"), {"work_mem": "8MB"}),
    "a DB's change time": set_path(("dbs", "db1", "changeTime"), T1),
    "a switchover": set_path(("cluster", "status", "switchover"), None),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_any_other_change_gives_a_new_object(change: Callable[[Doc], None]) -> None:
    memo = ClusterDataMemo()
    obj = document()
    first = memo.parse(raw(obj))
    heartbeat(obj)
    change(obj)
    if without_heartbeats(obj) == without_heartbeats(document()):
        pytest.skip("the change is a no-op on this document")
    second = memo.parse(raw(obj))
    assert second is not first
    assert second.to_bytes() == ClusterData.parse(raw(obj)).to_bytes()
    assert memo.reused == 0


@pytest.mark.parametrize("bad", [1, "yesterday", {"t": T1}])
def test_an_invalid_heartbeat_is_refused_as_without_the_memo(bad: Any) -> None:
    memo = ClusterDataMemo()
    obj = document()
    memo.parse(raw(obj))
    obj["keepers"]["k1"]["status"]["lastHealthyTime"] = bad
    with pytest.raises(ClusterDataError):
        ClusterData.parse(raw(obj))
    with pytest.raises(ClusterDataError):
        memo.parse(raw(obj))
    # forgotten: a usable document afterwards is parsed again
    assert memo.last is None
    assert memo.parse(raw(document())) is memo.last


def test_unusable_documents_raise_and_are_not_remembered() -> None:
    memo = ClusterDataMemo()
    first = memo.parse(raw(document()))
    for data in (b"{not json", json.dumps({**document(), "formatVersion": 2}).encode()):
        with pytest.raises(ClusterDataError):
            memo.parse(data)
        assert memo.last is None
    assert memo.parse(raw(document())) is not first


def test_reuse_plan_rules() -> None:
    c = ClusterData.parse(raw(document()))
    twin = ClusterData.parse(raw(document()))
    f = facts()
    last = PlanInputs(c, ME, f)
    table: list[tuple[str, PlanInputs, bool]] = [
        ("same object, identity and facts", PlanInputs(c, ME, facts()), True),
        ("an equal but new cluster data object", PlanInputs(twin, ME, f), False),
        ("no cluster data", PlanInputs(None, ME, f), False),
        ("postgres stopped", PlanInputs(c, ME, replace(f, pg_running=False)), False),
        ("another local role", PlanInputs(c, ME, replace(f, local_role="standby")), False),
        ("another applied generation", PlanInputs(c, ME, replace(f, db_generation=3)), False),
        ("in-sync standbys changed", PlanInputs(c, ME, replace(f, in_sync_standbys=("db1",))), False),
        ("another identity", PlanInputs(c, replace(ME, port=5433), f), False),
    ]
    for what, now, expected in table:
        assert reuse_plan(last, now) is expected, what
    assert reuse_plan(PlanInputs(None, ME, f), PlanInputs(None, ME, f)) is False
