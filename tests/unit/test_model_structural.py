# ruff: noqa: RUF009  (jf() declares the fields of the test documents, as in stolon/model)
"""The structural copy and comparison of model documents against the JSON round trip they
stand for (stolon/model/structural.py): the same objects, the same errors, the same answers."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from stolon.model import ClusterData, ClusterSpec, KeeperInfo
from stolon.model.cluster import DB, DBSpec, DBStatus, FollowConfig, Keeper, TimelineHistory
from stolon.model.codec import U16, Document, jf
from stolon.model.duration import Duration
from stolon.model.gojson import dumps as go_dumps
from stolon.model.structural import copy_as_stored, snapshot, stored_copy, stored_equal
from stolon.testing.sentinel_builders import CD, MASTER

FIXTURE = Path(__file__).parent.parent / "fixtures" / "go_clusterdata.json"


def _round_trip(doc: Document, go_json: bool) -> Any:
    obj = doc.to_obj()
    return type(doc).from_obj(json.loads(go_dumps(obj) if go_json else json.dumps(obj)))


def _shape(v: Any) -> Any:
    """Everything that tells two values apart: types, dict order, time zones."""
    if isinstance(v, Document):
        return (type(v).__name__, [(k, _shape(x)) for k, x in vars(v).items()])
    if isinstance(v, list):
        return ["list", *[_shape(x) for x in v]]
    if isinstance(v, dict):
        return ["dict", *[(_shape(k), _shape(x)) for k, x in v.items()]]
    if isinstance(v, datetime):
        return (repr(v), v.tzinfo, v.utcoffset())
    return (type(v).__name__, repr(v))


def _outcome(f: Callable[[], Any]) -> Any:
    try:
        return _shape(f())
    except Exception as e:  # the same error either way
        return ("error", type(e).__name__, str(e))


def _check_copy(doc: Document) -> None:
    for go in (False, True):
        expected = _outcome(lambda go=go: _round_trip(doc, go))  # type: ignore[misc]
        assert _outcome(lambda go=go: copy_as_stored(doc, go_json=go)) == expected, go  # type: ignore[misc]
    assert _outcome(lambda: stored_copy(doc)) == _outcome(doc.copy)


def _big() -> ClusterData:
    ids = [f"db{i}" for i in range(6)]
    b = CD(max_standbys=6, synchronous_replication=True)
    for i in range(6):
        b.keeper(f"k{i}")
    b.db(ids[0], "k0", role=MASTER, followers=ids[1:], xlog=100, timeline=2, sync=True,
         sync_standbys=ids[1:2], in_sync=ids[1:2], cur_sync=ids[1:2])  # fmt: skip
    for i in range(1, 6):
        b.db(ids[i], f"k{i}", follows=ids[0], xlog=100 - i, timeline=2)
    b.master(ids[0]).proxy(generation=1, master=ids[0], enabled=["p1"]).proxy_info("p1", 1)
    return b.build()


def _odd() -> ClusterData:
    """Values the round trip normalizes or refuses to keep as they are."""
    cd = _big()
    assert cd.dbs is not None and cd.keepers is not None and cd.cluster is not None
    db = cd.dbs["db1"]
    assert db.spec is not None
    db.spec.pg_parameters = {}  # omitempty: comes back None
    db.spec.pg_hba = []  # not omitempty: comes back []
    db.spec.followers = None
    db.status.pg_parameters = {"b": "2", "a": "1", "ü": "é"}  # comes back sorted
    db.status.timelines_history = [TimelineHistory(timeline_id=1, switch_point=5, reason="ñ")]
    db.change_time = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    db.trace_context = {"traceparent": "00-x"}
    db.unknown_fields = {"goOnly": {"z": [1, 2.5, None, "<&>"], "a": True}, "n": "ünï"}
    db.spec.unknown_fields = {"extra": 1}
    k = cd.keepers["k1"]
    k.change_time = datetime(2024, 5, 1, 10, 0, 0)  # naive: written as UTC
    k.status.last_healthy_time = None  # written as Go's zero time
    k.status.can_be_master = False
    cd.cluster.spec = ClusterSpec.from_obj(
        {
            "sleepInterval": "1m30.5s",
            "pgParameters": {"work_mem": "4MB", "application_name": "x"},
            "standbyConfig": {"standbySettings": {"primaryConninfo": "host=a"}},
            "unknownSpecKey": [{"q": 1}],
        }
    )
    cd.unknown_fields = {"zzz": {"nested": {"b": 1, "a": 2}}}
    return cd


def test_copies_equal_the_json_round_trip() -> None:
    _check_copy(ClusterData.parse(FIXTURE.read_text()))
    _check_copy(_big())
    _check_copy(_odd())
    _check_copy(ClusterData())
    _check_copy(KeeperInfo.from_obj({"uid": "k1", "clusterUID": "c", "bootUUID": "b", "infoUID": "i"}))


def test_copy_shares_nothing_mutable() -> None:
    cd = _odd()
    c = copy_as_stored(cd, go_json=False)
    assert c.dbs is not None and cd.dbs is not None
    c.dbs["db0"].spec.followers.append("x")  # type: ignore[union-attr]
    c.dbs["db1"].unknown_fields["goOnly"]["z"].append(3)
    assert cd.dbs["db0"].spec.followers == ["db1", "db2", "db3", "db4", "db5"]  # type: ignore[union-attr]
    assert cd.dbs["db1"].unknown_fields["goOnly"]["z"] == [1, 2.5, None, "<&>"]


def _variant(change: Callable[[ClusterData], None]) -> ClusterData:
    cd = _odd()
    change(cd)
    return cd


def _db(cd: ClusterData, uid: str = "db1") -> DB:
    assert cd.dbs is not None
    return cd.dbs[uid]


def _spec(cd: ClusterData, uid: str = "db1") -> DBSpec:
    s = _db(cd, uid).spec
    assert s is not None
    return s


def _put_keeper(cd: ClusterData, value: Any) -> None:
    assert cd.keepers is not None
    cd.keepers["k9"] = value


def _no_maps(cd: ClusterData) -> None:
    cd.dbs = None
    cd.keepers = None


def _set(obj: Any, name: str, value: Any) -> Callable[[ClusterData], None]:
    return lambda cd: setattr(obj(cd), name, value)


# Values the round trip cannot keep (or refuses): the copy must do exactly what it does.
ODD_VALUES: list[tuple[str, Callable[[ClusterData], None]]] = [
    ("lone surrogate", _set(_db, "uid", "a\ud800b")),
    ("control characters", _set(_db, "uid", "a\x08\x0cb\x00")),
    ("line separator", _set(_spec, "role", "x\u2028y")),
    ("u64 out of range", _set(lambda cd: _db(cd).status, "xlog_pos", 2**64)),
    ("negative u16", _set(_spec, "max_standbys", -1)),
    ("bool in an int field", _set(_db, "generation", True)),
    ("float in an int field", _set(_db, "generation", 3.0)),
    ("str in an int field", _set(_db, "generation", "3")),
    ("None in a duration", _set(_spec, "request_timeout", None)),
    ("huge duration", _set(_spec, "request_timeout", Duration(2**64))),
    ("int64 min duration", _set(_spec, "request_timeout", Duration(-(2**63)))),
    ("int64 max duration", _set(_spec, "request_timeout", Duration(2**63 - 1))),
    ("float nanoseconds in a duration", _set(_spec, "request_timeout", Duration(1.5e9))),  # type: ignore[arg-type]
    ("year 1 (refused: strftime does not pad it)", _set(_db, "change_time", datetime(1, 1, 1, tzinfo=UTC))),
    ("year 999", _set(_db, "change_time", datetime(999, 1, 1, tzinfo=UTC))),
    ("fold", _set(_db, "change_time", datetime(2024, 1, 1, fold=1, tzinfo=UTC))),
    ("named zone", _set(_db, "change_time", datetime(2024, 1, 1, tzinfo=timezone(timedelta(0), "GMT")))),
    ("str in a time", _set(_db, "change_time", "2024-01-01T00:00:00Z")),
    ("None in a document", _set(_db, "status", None)),
    ("dict in a document", _set(_db, "status", {})),
    ("wrong document type", _set(_db, "status", DBSpec())),
    ("tuple in a list", _set(_spec, "followers", ("a", "b"))),
    ("int key in a map", _set(_spec, "pg_parameters", {1: "a"})),
    ("int value in a map", _set(_spec, "pg_parameters", {"a": 1})),
    ("unknown key that is known", _set(_spec, "unknown_fields", {"role": "master", "keeperUID": "x"})),
    ("unknown key taking an omitted one", _set(_spec, "unknown_fields", {"initMode": "new"})),
    ("int unknown key", _set(_spec, "unknown_fields", {1: "x"})),
    ("NaN unknown value", _set(_spec, "unknown_fields", {"x": float("nan")})),
    ("unencodable unknown value", _set(_spec, "unknown_fields", {"x": object()})),
    ("None in a list of documents", _set(lambda cd: _db(cd).status, "timelines_history", [None])),
    ("empty follow config", _set(_spec, "follow_config", FollowConfig())),
    ("empty list in an omitempty list", _set(lambda cd: _db(cd).status, "timelines_history", [])),
    ("None where a keeper is", lambda cd: _put_keeper(cd, None)),
    ("wrong keeper type", lambda cd: _put_keeper(cd, DB())),
    ("None maps", _no_maps),
    ("no cluster", _set(lambda cd: cd, "cluster", None)),
    ("float settings", lambda cd: setattr(
        cd.cluster.spec.standby_config.standby_settings, "unknown_fields", {"f": 1.5}  # type: ignore[union-attr]
    )),
]  # fmt: skip


@pytest.mark.parametrize("change", [c for _, c in ODD_VALUES], ids=[n for n, _ in ODD_VALUES])
def test_odd_values_copy_as_the_round_trip(change: Callable[[ClusterData], None]) -> None:
    _check_copy(_variant(change))


def test_random_times_and_durations_copy_as_the_round_trip() -> None:
    rnd = random.Random(12)
    for _ in range(300):
        cd = _big()
        ns = rnd.choice([rnd.randrange(-(2**63), 2**63), rnd.randrange(-(10**12), 10**12)])
        _spec(cd, "db2").request_timeout = Duration(ns)
        when = datetime(1000, 1, 1, tzinfo=UTC) + timedelta(microseconds=rnd.randrange(0, 2**57))
        _db(cd, "db2").change_time = when
        _db(cd, "db3").change_time = when.astimezone(timezone(timedelta(minutes=rnd.randrange(-900, 900))))
        _check_copy(cd)


def _pairs() -> list[tuple[str, Any, Any]]:
    base = _odd()
    same = copy_as_stored(base, go_json=False)
    pairs: list[tuple[str, Any, Any]] = [("itself", base, base), ("its copy", base, same)]
    for name, change in ODD_VALUES:
        pairs.append((name, base, _variant(change)))
    more: list[tuple[str, Callable[[ClusterData], None]]] = [
        ("None versus {} (omitempty)", _set(_spec, "pg_parameters", None)),
        ("[] versus None (not omitempty)", _set(_spec, "pg_hba", None)),
        ("same instant, other offset", _set(_db, "change_time", _db(base).change_time.astimezone(UTC))),  # type: ignore[union-attr]
        ("same instant and offset", _set(_db, "change_time", _db(base).change_time + timedelta(0))),  # type: ignore[operator]
        ("naive versus UTC", _set(lambda cd: cd.keepers["k1"], "change_time", datetime(2024, 5, 1, 10, tzinfo=UTC))),
        ("map order", _set(lambda cd: _db(cd).status, "pg_parameters", {"ü": "é", "a": "1", "b": "2"})),
        ("unknown field", _set(_db, "unknown_fields", {})),
        ("Any settings", lambda cd: setattr(
            cd.cluster.spec.standby_config.standby_settings, "primary_conninfo", "host=b"  # type: ignore[union-attr]
        )),
        ("followers order", _set(_spec, "followers", ["b", "a"])),
        ("master's followers", _set(lambda cd: _spec(cd, "db0"), "followers", ["db2", "db1"])),
        ("master's synchronous standbys", _set(lambda cd: _spec(cd, "db0"), "synchronous_standbys", ["db2"])),
        ("generation", _set(_db, "generation", 7)),
        ("int versus float", _set(_db, "generation", 1.0)),
        ("equal duration", _set(_spec, "request_timeout", Duration(_spec(base).request_timeout.ns))),
        ("NaN unknown", _set(_db, "unknown_fields", {"x": float("nan")})),
    ]  # fmt: skip
    for name, change in more:
        pairs.append((name, base, _variant(change)))
    return pairs


def test_stored_equal_is_equality_of_to_obj() -> None:
    for name, a, b in _pairs():
        objs: list[tuple[Any, Any]] = [(a, b), (a.cluster, b.cluster), (a.proxy, b.proxy), (None, b.proxy)]
        for uid in sorted((a.dbs or {}).keys() | (b.dbs or {}).keys()):
            objs.append(((a.dbs or {}).get(uid), (b.dbs or {}).get(uid)))
        for uid in sorted((a.keepers or {}).keys() | (b.keepers or {}).keys()):
            objs.append(((a.keepers or {}).get(uid), (b.keepers or {}).get(uid)))
        for x, y in objs:
            expected = _outcome(lambda x=x, y=y: _encoded(x) == _encoded(y))  # type: ignore[misc]
            assert _outcome(lambda x=x, y=y: stored_equal(x, y)) == expected, name  # type: ignore[misc]
            assert _outcome(lambda x=x, y=y: stored_equal(y, x)) == expected, name  # type: ignore[misc]


def _encoded(v: Any) -> Any:
    return v.to_obj() if isinstance(v, Document) else v


def test_snapshot_keeps_the_stored_form() -> None:
    cd = _odd()
    before = json.dumps(cd.to_obj())  # to_obj() shares the unknown fields' values
    snap = snapshot(cd)
    assert json.dumps(snap.to_obj()) == before and _shape(snap) == _shape(cd)
    _spec(cd, "db0").followers.append("x")  # type: ignore[union-attr]
    _db(cd).unknown_fields["goOnly"]["z"].append(3)
    _db(cd).status.timelines_history[0].reason = "changed"  # type: ignore[index]
    assert json.dumps(snap.to_obj()) == before


def test_models_with_every_kind_of_field_copy_as_the_round_trip() -> None:
    _check_copy(DBStatus(synchronous_standbys=None, timelines_history=[TimelineHistory()]))
    _check_copy(Keeper())
    _check_copy(DB(spec=None))


# Document classes the model does not have (yet): a recursive one with float and Any fields,
# and one whose __init__ does more than store its fields (copied through cls(**fields)).
@dataclass(kw_only=True)
class _Node(Document):
    name: str = jf("name", default="")
    size: U16 = jf("size", omitempty=False, default=0)
    weight: float = jf("weight", default=0.0)
    ratio: float | None = jf("ratio")
    extra: Any = jf("extra")
    when: datetime | None = jf("when")
    child: _Node | None = jf("child")
    children: list[_Node] | None = jf("children")
    by_name: dict[str, _Node] | None = jf("byName")
    tags: list[str] | None = jf("tags", omitempty=False)


@dataclass(kw_only=True)
class _Posted(Document):
    name: str = jf("name", default="")
    tags: list[str] | None = jf("tags")

    def __post_init__(self) -> None:
        self.name_length = len(self.name) if type(self.name) is str else -1


def _tree() -> _Node:
    leaf = _Node(name="leaf", weight=0.5, extra={"b": [1, "x"], "a": None}, tags=["t"])
    return _Node(
        name="root",
        size=3,
        ratio=2.0,
        extra="é",
        when=datetime(2024, 5, 1, tzinfo=UTC),
        child=_Node(name="c", child=leaf),
        children=[_Node(name="k1"), _Node(name="k2", by_name={"z": _Node(), "a": leaf})],
        by_name={"l": leaf},
    )


def _tree_variant(change: Callable[[_Node], None]) -> _Node:
    t = _tree()
    change(t)
    return t


def _child(t: _Node) -> _Node:
    assert t.child is not None
    return t.child


TREE_CHANGES: list[tuple[str, Callable[[_Node], None]]] = [
    ("as it is", lambda t: None),
    ("NaN", lambda t: setattr(t, "weight", float("nan"))),
    ("infinity", lambda t: setattr(t, "weight", float("inf"))),
    ("int in a float", lambda t: setattr(t, "weight", 2)),
    ("float in Any", lambda t: setattr(t, "extra", 1.5)),
    ("lone surrogate in Any", lambda t: setattr(t, "extra", "a\ud800")),
    ("bool in Any", lambda t: setattr(t, "extra", True)),
    ("weight 0 (omitted)", lambda t: setattr(t, "weight", 0.0)),
    ("size out of range", lambda t: setattr(t, "size", 70000)),
    ("deep change", lambda t: setattr(_child(_child(t)), "name", "other")),
    ("deep weight -0.0", lambda t: setattr(_child(_child(t)), "weight", -0.0)),
    ("deep None", lambda t: setattr(_child(t), "child", None)),
    ("empty children", lambda t: setattr(t, "children", [])),
    ("None tags", lambda t: setattr(t, "tags", None)),
    ("empty tags", lambda t: setattr(t, "tags", [])),
    ("wrong child type", lambda t: setattr(t, "child", _Posted())),
    ("naive time", lambda t: setattr(t, "when", datetime(2024, 5, 1))),
    ("unknown field", lambda t: setattr(_child(t), "unknown_fields", {"u": [1]})),
]


@pytest.mark.parametrize("change", [c for _, c in TREE_CHANGES], ids=[n for n, _ in TREE_CHANGES])
def test_recursive_documents_copy_and_compare_as_the_round_trip(change: Callable[[_Node], None]) -> None:
    t = _tree_variant(change)
    _check_copy(t)
    base = _tree()
    pairs: list[tuple[Any, Any]] = [(base, t), (_child(base), _child(t)), (base.children, t.children)]
    if t.size < 2**16:  # else the round trip refuses it
        pairs.append((t, copy_as_stored(t, go_json=False)))
    for x, y in pairs:
        expected = _outcome(lambda x=x, y=y: _encoded(x) == _encoded(y))  # type: ignore[misc]
        assert _outcome(lambda x=x, y=y: stored_equal(x, y)) == expected  # type: ignore[misc]
        assert _outcome(lambda x=x, y=y: stored_equal(y, x)) == expected  # type: ignore[misc]


def test_a_document_with_post_init_copies_through_its_init() -> None:
    for doc in [_Posted(name="a", tags=["x"]), _Posted(name="ü", tags=[]), _Posted(), _Posted(name=3)]:  # type: ignore[arg-type]
        _check_copy(doc)
    a, b = _Posted(name="a", tags=None), _Posted(name="a", tags=[])
    assert stored_equal(a, b) and not stored_equal(a, _Posted(name="b"))


def test_documents_without_fields_copy_as_the_round_trip() -> None:
    from stolon.model.cluster import KeeperSpec, ProxyStatus

    _check_copy(KeeperSpec())
    _check_copy(KeeperSpec(unknown_fields={"x": [1, {"b": 2, "a": 1}]}))
    _check_copy(ProxyStatus(unknown_fields={"": None}))
    assert stored_equal(KeeperSpec(), ProxyStatus())  # both {}
    assert not stored_equal(KeeperSpec(), KeeperSpec(unknown_fields={"x": 1}))
