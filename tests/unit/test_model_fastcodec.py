# ruff: noqa: RUF009  (jf() declares the fields of the test documents, as in stolon/model)
"""The compiled decoders and encoders of the model documents (stolon/model/fastcodec.py)
against the generic codec they stand for: the same objects, the same errors, the same JSON
objects with their keys in the same order, on every model class, Go-written cluster data
and randomly broken documents."""

from __future__ import annotations

import contextlib
import json
import math
import random
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest

import stolon.model  # noqa: F401  (every document class defined)
from stolon.model import ClusterData, ClusterSpec, KeeperInfo, codec, fastcodec
from stolon.model.cluster import Keeper, TimelineHistory
from stolon.model.codec import U16, U64, Document, NotFast, Range, jf
from stolon.model.duration import Duration
from stolon.model.errors import ModelError
from stolon.model.gotime import format_go_time, parse_go_time
from stolon.model.infos import ProxyInfo, SentinelInfo
from stolon.model.structural import _plain_dataclass
from stolon.testing.sentinel_builders import CD, MASTER

FIXTURE = Path(__file__).parent.parent / "fixtures" / "go_clusterdata.json"


# -- the generic codec, every nested document included ------------------------------------------
class _Always(dict[type, Callable[[Any], Any]]):
    """A registry of compiled functions that answers ``fn`` for every class."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def get(self, key: Any, default: Any = None) -> Any:
        return self.fn


@contextlib.contextmanager
def _generic_only() -> Iterator[None]:
    """``from_obj`` and ``to_obj`` as they were before the compiled ones, nested documents
    included: every decoder gives up, every encoder is the generic one."""
    saved = codec._fast_decoders, codec._fast_encoders
    codec._fast_decoders = _Always(codec._refuse)
    codec._fast_encoders = _Always(Document._to_obj_generic)
    try:
        yield
    finally:
        codec._fast_decoders, codec._fast_encoders = saved


def _shape(v: Any) -> Any:
    """Everything that tells two values apart: types, dict order, time zones."""
    if isinstance(v, Document):
        return (type(v).__name__, [(k, _shape(x)) for k, x in vars(v).items()])
    if isinstance(v, list | tuple):
        return [type(v).__name__, *[_shape(x) for x in v]]
    if isinstance(v, dict):
        return ["dict", *[(_shape(k), _shape(x)) for k, x in v.items()]]
    if isinstance(v, datetime):
        return (repr(v), v.tzinfo, v.utcoffset())
    if isinstance(v, float) and math.isnan(v):
        return ("float", "nan")
    return (type(v).__name__, repr(v))


def _outcome(f: Callable[[], Any]) -> Any:
    try:
        return _shape(f())
    except Exception as e:  # the same error either way
        return ("error", type(e).__name__, str(e), getattr(e, "path", None))


def _check_decode(cls: type[Document], obj: Any, *, fast: bool | None = None) -> Any:
    """``cls.from_obj(obj)`` gives what the generic codec gives; ``fast``: whether the
    compiled decoder must (True) or must not (False) have answered by itself."""
    with _generic_only():
        expected = _outcome(lambda: cls.from_obj(obj))
    got = _outcome(lambda: cls.from_obj(obj))
    assert got == expected
    if fast is not None:
        answered = _outcome(lambda: fastcodec.decoder(cls)(obj))
        assert (answered[:2] != ("error", "NotFast")) is fast, answered
        if fast:
            assert answered == expected
    return expected


def _check_encode(doc: Document) -> None:
    """``doc.to_obj()`` gives what the generic codec gives, keys in the same order."""
    with _generic_only():
        expected = _outcome(doc.to_obj)
    assert _outcome(doc.to_obj) == expected
    if expected[0] != "error":
        assert _outcome(lambda: fastcodec.encoder(type(doc))(doc)) == expected


def _check_round_trip(doc: Document, *, fast: bool | None = True) -> None:
    _check_encode(doc)
    obj = doc.to_obj()
    _check_decode(type(doc), obj, fast=fast)
    _check_decode(type(doc), json.loads(json.dumps(obj)), fast=fast)
    back = type(doc).from_obj(json.loads(json.dumps(obj)))
    _check_encode(back)
    with _generic_only():
        again = type(doc).from_obj(json.loads(json.dumps(obj))).to_obj()
    assert _shape(back.to_obj()) == _shape(again)


# -- documents --------------------------------------------------------------------------------
def _documents() -> list[type[Document]]:
    out: list[type[Document]] = []
    todo = list(Document.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("stolon.") and cls not in out:
            out.append(cls)
        todo += cls.__subclasses__()
    return sorted(out, key=lambda c: (c.__module__, c.__name__))


MODEL_CLASSES = _documents()


def _full(tp: Any, tag: str, rng: random.Random | None = None) -> Any:
    """A JSON value of type ``tp`` with every field of every document present."""
    r = rng or random.Random(tag)
    origin = get_origin(tp)
    if origin is typing.Annotated:
        base, *extras = get_args(tp)
        ranges = [e for e in extras if isinstance(e, Range)]
        if base is int and ranges:
            return r.choice([ranges[0].lo, ranges[0].hi, (ranges[0].lo + ranges[0].hi) // 2, 7])
        return _full(base, tag, r)
    if origin in (typing.Union, types.UnionType):
        return _full(next(a for a in get_args(tp) if a is not type(None)), tag, r)
    if isinstance(tp, type) and issubclass(tp, Document):
        return {meta.key: _full(t, f"{tag}.{meta.key}", r) for _, meta, t in tp._json_fields()}
    if origin is list:
        return [_full(get_args(tp)[0], f"{tag}[{i}]", r) for i in range(2)]
    if origin is dict:
        return {k: _full(get_args(tp)[1], f"{tag}.{k}", r) for k in ("b", "a", "ü")}
    if tp is str:
        return r.choice([tag, "", "<&>", "ünï", "x\ud800y"])
    if tp is bool:
        return r.choice([True, False])
    if tp is int:
        return r.choice([0, 1, -5, 2**70])
    if tp is float:
        return r.choice([0.0, 1.5, -2.25, 3])
    if tp is Duration:
        return r.choice(["0s", "5s", "1m30.5s", "100ms", "48h0m0s", "-3µs", "1.5h"])
    if tp is datetime:
        return r.choice(
            [
                "2026-12-02T07:00:00Z",
                "2026-12-02T07:00:00.123456Z",
                "2026-12-02T07:00:00.5+02:00",
                "2021-09-06T10:11:12.123456789-07:30",
                "0001-01-01T00:00:00Z",
                None,
            ]
        )
    if tp is Any:
        return r.choice([{"z": [1, 2.5, None, "<&>"], "a": True}, "s", 3, None, [{"b": 1}]])
    raise AssertionError(f"no value for {tp!r}")


def _cluster_data(n: int, **kw: Any) -> ClusterData:
    ids = [f"db{i}" for i in range(n)]
    sync = kw.get("synchronous", False)
    b = CD(max_standbys=n, synchronous_replication=sync)
    for i in range(n):
        b.keeper(f"k{i}")
    b.db(ids[0], "k0", role=MASTER, followers=ids[1:], xlog=100, timeline=2, sync=sync,
         sync_standbys=ids[1:2] if sync else None, in_sync=ids[1:2], cur_sync=ids[1:2])  # fmt: skip
    for i in range(1, n):
        b.db(ids[i], f"k{i}", follows=ids[0], xlog=100 - i, timeline=2)
    b.master(ids[0]).proxy(generation=1, master=ids[0], enabled=["p1"]).proxy_info("p1", 1)
    cd = b.build()
    t0 = datetime(2026, 12, 2, 7, 0, 0, 120000, tzinfo=UTC)
    cd.change_time = t0
    for i, k in enumerate((cd.keepers or {}).values()):
        k.change_time = t0 - timedelta(microseconds=1001 * i)
        k.status.last_healthy_time = t0 - timedelta(seconds=i)
    return cd


# -- tests ------------------------------------------------------------------------------------
def test_every_model_class_is_compiled() -> None:
    """Each document class gets its own decoder (not the one that always gives up)."""
    assert ClusterData in MODEL_CLASSES and KeeperInfo in MODEL_CLASSES and len(MODEL_CLASSES) > 30
    for cls in MODEL_CLASSES:
        assert _plain_dataclass(cls), cls
        assert fastcodec.decoder(cls) is not codec._refuse, cls


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_model_class_empty_and_full(cls: type[Document]) -> None:
    _check_decode(cls, {}, fast=True)
    _check_encode(cls())
    for seed in range(4):
        obj = _full(cls, f"{cls.__name__}{seed}", random.Random(seed))
        expected = _check_decode(cls, obj)
        if expected[0] == "error":  # only out of range (none here) or a refused value
            raise AssertionError(expected)
        doc = cls.from_obj(obj)
        _check_round_trip(doc)
        # with unknown keys, in the middle and at the end
        extra = {"zUnknown": [1, {"q": None}], **obj, "aUnknown": "x"}
        _check_decode(cls, extra, fast=True)
        _check_round_trip(cls.from_obj(extra))


def test_go_written_cluster_data() -> None:
    text = FIXTURE.read_text()
    obj = json.loads(text)
    _check_decode(ClusterData, obj, fast=True)
    with _generic_only():
        expected = _shape(ClusterData.parse(text))
    assert _shape(ClusterData.parse(text)) == expected
    _check_round_trip(ClusterData.parse(text))


@pytest.mark.parametrize("n", [1, 3, 20])
def test_built_cluster_data(n: int) -> None:
    _check_round_trip(_cluster_data(n))
    _check_round_trip(_cluster_data(n, synchronous=True))
    _check_round_trip(ClusterData())
    _check_round_trip(ClusterData.new(_cluster_data(2).cluster))  # type: ignore[arg-type]


def test_infos() -> None:
    info = KeeperInfo.from_obj(_full(KeeperInfo, "ki"))
    _check_round_trip(info)
    _check_round_trip(KeeperInfo(uid="k1", cluster_uid="c", boot_uuid="b", info_uid="i"))
    _check_round_trip(SentinelInfo.from_obj(_full(SentinelInfo, "si")))
    _check_round_trip(SentinelInfo(uid="s"))
    _check_round_trip(ProxyInfo(uid="p", generation=3, proxy_timeout_ns=15_000_000_000))
    _check_round_trip(ClusterSpec.from_obj(_full(ClusterSpec, "spec")))


# values a broken or hostile document may hold where another type is declared
ODD_VALUES: list[Any] = [
    None, "", "x", "<&>", "x\ud800", 0, 1, -1, 7.0, 1.5, float("nan"), float("inf"), 2**16, 2**32,
    2**63, 2**64, -(2**63) - 1, 10**30, True, False, [], {}, [1, "a"], ["a", None], {"a": 1},
    {"a": None}, {"a": {"b": 1}}, [{"uid": 3}], "5s", "1m30s", "-1.5h", "9223372036854775807ns",
    "9223372036854775808ns", "5", "bad", ".s", "2026-12-02T07:00:00Z", "2026-12-02T07:00:00.1234567+02:00",
    "2026-12-02t07:00:00z", "2026-13-02T07:00:00Z", "2026-02-30T07:00:00Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000Z", "0999-01-01T00:00:00Z", "2026-12-02T07:00:00+24:00", "2026-12-02T07:00:00",
    "\uff12\uff10\uff12\uff16-12-02T07:00:00Z", "2026-12-02T07:00:00.Z", "2026-12-02 07:00:00Z",
]  # fmt: skip


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _mutate(obj: Any, rng: random.Random) -> Any:
    obj = json.loads(json.dumps(obj))  # a copy
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            return rng.choice(ODD_VALUES)
        path = rng.choice(paths)
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        action = rng.random()
        if action < 0.7:
            parent[path[-1]] = rng.choice(ODD_VALUES)
        elif action < 0.85 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["unknownKey", "Maj", "uid", "zz"])] = rng.choice(ODD_VALUES)
    return obj


@pytest.mark.parametrize("cls", [ClusterData, KeeperInfo, SentinelInfo, ProxyInfo, ClusterSpec])
def test_broken_documents_decode_as_the_generic_codec(cls: type[Document]) -> None:
    rng = random.Random(f"fuzz-{cls.__name__}")
    bases: list[Any] = [_full(cls, f"{cls.__name__}{s}", random.Random(s)) for s in range(3)]
    if cls is ClusterData:
        bases += [json.loads(FIXTURE.read_text()), _cluster_data(3).to_obj()]
    decoded = 0
    for i in range(400):
        obj = _mutate(rng.choice(bases), rng)
        expected = _check_decode(cls, obj)
        if expected[0] != "error":
            decoded += 1
            if i % 4 == 0:
                _check_round_trip(cls.from_obj(obj), fast=None)
                _check_encode(cls.from_obj(obj))
    assert decoded > 50  # not only errors


def test_times_decode_and_encode_as_the_generic_codec() -> None:
    rng = random.Random(7)
    zones = [
        UTC,
        timezone(timedelta(0)),
        timezone(timedelta(hours=2)),
        timezone(-timedelta(hours=9, minutes=30)),
    ]
    for _ in range(3000):
        t = datetime(
            rng.choice([1, 2, 999, 1000, 1970, 2026, 9999]), rng.randint(1, 12), rng.randint(1, 28),
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
            rng.choice([0, 1, 10, 500000, 123456, 999999, rng.randint(0, 999999)]),
            tzinfo=rng.choice([*zones, None]), fold=rng.choice([0, 1]),
        )  # fmt: skip
        text = format_go_time(t)
        if t.tzinfo is not None:
            assert fastcodec._encode_time(t) == text
        frac = rng.choice(["", ".5", ".123", ".123456", ".1234567", ".000000000", ".0"])
        for s in [
            text,
            text.replace("Z", frac + "Z") if "." not in text else text,
            text[:19] + frac + text[-1],
        ]:
            try:
                got = _shape(fastcodec._decode_time(s))
            except NotFast:
                with pytest.raises(ValueError):  # the generic decoder refuses it
                    parse_go_time(s)
            else:
                assert got == _shape(parse_go_time(s))


def test_durations_decode_and_encode_as_the_generic_codec() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        ns = rng.choice([0, 1, -1, 999, 10**9, 2**63 - 1, -(2**63) + 1, rng.randint(-(10**15), 10**15)])
        d = Duration(ns)
        assert fastcodec._encode_duration(d) == str(d)
        assert fastcodec._decode_duration(str(d)) == Duration.parse(str(d))
    assert fastcodec._encode_duration(Duration(1.5)) == str(Duration(1.5))  # type: ignore[arg-type]
    for bad in ["", "5", "bad", "1x", 5, None, "9223372036854775808ns"]:
        with pytest.raises(NotFast):
            fastcodec._decode_duration(bad)


# -- encoding values of other types than declared -------------------------------------------------
@dataclass(kw_only=True)
class _Odd(Document):
    """Every kind of field the codec knows, for values of other types than declared."""

    s: str = jf("s", default="")
    s_none: str = jf("sNone")
    n: U16 = jf("n", default=0)
    n_keep: int = jf("nKeep", omitempty=False, default=0)
    b: bool | None = jf("b")
    f: float = jf("f", default=0.0)
    d: Duration = jf("d", default=Duration(0))
    d_opt: Duration | None = jf("dOpt")
    d_keep: Duration | None = jf("dKeep", omitempty=False)
    t: datetime | None = jf("t")
    doc: TimelineHistory | None = jf("doc")
    doc_keep: TimelineHistory | None = jf("docKeep", omitempty=False)
    items: list[str] | None = jf("items")
    items_keep: list[str] | None = jf("itemsKeep", omitempty=False)
    docs: list[TimelineHistory] | None = jf("docs")
    nested: list[list[U64]] | None = jf("nested")
    m: dict[str, str] | None = jf("m")
    m_docs: dict[str, Keeper] | None = jf("mDocs", omitempty=False)
    m_any: dict[str, Any] | None = jf("mAny")
    anything: Any = jf("any")
    child: _Odd | None = jf("child")  # a recursive type


ODD_ATTRIBUTE_VALUES: list[Any] = [
    None, "", "x", 0, 3, -1, True, False, 1.5, 2**70, [], ["a"], ("a",), [TimelineHistory(reason="r")],
    [None], {}, {"b": "1", "a": "2"}, {"b": Keeper(uid="k")}, {2: "x"}, {"a": TimelineHistory()},
    Duration(0), Duration(5 * 10**9), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1),
    datetime(999, 1, 1, 0, 0, 0, 5, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-3))),
    TimelineHistory(timeline_id=2), Keeper(uid="k"), object(),
]  # fmt: skip


def test_odd_attribute_values_encode_as_the_generic_codec() -> None:
    rng = random.Random(3)
    names = [name for name, _, _ in _Odd._json_fields()]
    for _ in range(1500):
        doc = _Odd()
        for name in rng.sample(names, rng.randint(1, 5)):
            setattr(doc, name, rng.choice(ODD_ATTRIBUTE_VALUES))
        if rng.random() < 0.3:
            doc.unknown_fields = rng.choice([{"s": "taken", "zz": 1}, {"n": 5}, {"new": [1]}, {}])
        if rng.random() < 0.2:
            doc.child = _Odd(s="c", nested=[[1, 2], []])
        _check_encode(doc)


def test_odd_document_decodes_as_the_generic_codec() -> None:
    rng = random.Random(5)
    full = {
        "s": "a", "sNone": "b", "n": 5, "nKeep": 3, "b": False, "f": 1.5, "d": "5s", "dOpt": "1m",
        "dKeep": None, "t": "2026-12-02T07:00:00Z", "doc": {"reason": "x"}, "docKeep": None,
        "items": ["a"], "itemsKeep": [], "docs": [{"timelineID": 1}, None], "nested": [[1, 2], [], None],
        "m": {"a": "b"}, "mDocs": {"k": {"uid": "k"}, "n": None}, "mAny": {"x": [1, {"y": None}]},
        "any": [1, "2"], "child": {"s": "c", "child": {"n": 1}},
    }  # fmt: skip
    _check_decode(_Odd, full, fast=True)
    _check_round_trip(_Odd.from_obj(full))
    for _ in range(1500):
        _check_decode(_Odd, _mutate(full, rng))


@dataclass(kw_only=True)
class _PostInit(Document):
    """Not a plain dataclass: decoded by the generic path."""

    a: str = jf("a", default="")

    def __post_init__(self) -> None:
        self.a = self.a.upper()


@dataclass(kw_only=True)
class _OwnCodec(Document):
    """A class with its own from_obj and to_obj, nested in another."""

    a: str = jf("a", default="")

    @classmethod
    def from_obj(cls, obj: Any, *, strict: bool = False, path: str = "") -> _OwnCodec:
        doc = super().from_obj(obj, strict=strict, path=path)
        doc.a += "!"
        return doc

    def to_obj(self) -> dict[str, Any]:
        return {**super().to_obj(), "own": True}


@dataclass(kw_only=True)
class _Holder(Document):
    post: _PostInit | None = jf("post")
    own: _OwnCodec | None = jf("own")
    owns: list[_OwnCodec] | None = jf("owns")


def test_classes_of_their_own_keep_their_behaviour() -> None:
    assert fastcodec.decoder(_PostInit) is codec._refuse
    assert _PostInit.from_obj({"a": "x"}).a == "X"
    obj = {"post": {"a": "x"}, "own": {"a": "y"}, "owns": [{"a": "z"}, None]}
    _check_decode(_Holder, obj, fast=True)
    h = _Holder.from_obj(obj)
    assert h.post is not None and h.post.a == "X"
    assert h.own is not None and h.own.a == "y!"
    _check_encode(h)
    assert h.to_obj()["own"] == {"a": "y!", "own": True}
    _check_decode(_Holder, {"own": {"a": 3}}, fast=False)
    with pytest.raises(ModelError, match=r"own\.a"):
        _Holder.from_obj({"own": {"a": 3}})


def test_strict_decoding_keeps_its_errors() -> None:
    with pytest.raises(ModelError, match='did you mean "dataChecksums"'):
        ClusterSpec.from_obj({"initMode": "new", "newConfig": {"dataChecksum": True}}, strict=True)
    with pytest.raises(ModelError, match="maxStandbyLag"):
        ClusterSpec.from_obj({"maxStandbyLag": -1}, strict=True)
    with pytest.raises(ModelError, match=r"keepers.k1.status.healthy"):
        ClusterData.from_obj({"keepers": {"k1": {"status": {"healthy": "yes"}}}})


def test_decoded_documents_share_nothing_mutable_with_the_input() -> None:
    obj = _cluster_data(3).to_obj()
    cd = ClusterData.from_obj(obj)
    assert cd.dbs is not None
    cd.dbs["db0"].spec.followers.append("x")  # type: ignore[union-attr]
    cd.dbs["db0"].status.pg_parameters = {}
    assert obj["dbs"]["db0"]["spec"]["followers"] == ["db1", "db2"]
