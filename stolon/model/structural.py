"""Copy and compare model documents on the typed objects, with the JSON round trip's result.

The sentinel copies the cluster data every cycle (a working copy "as stored": what a store
round trip gives) and compares the result with the previous one object by object (in stored
form: ``to_obj()``). Doing both through JSON costs most of a decision for a big cluster
(issue 12: ``decide()`` for 100 keepers). This module does them field by field instead:

- :func:`copy_as_stored` returns exactly what ``from_obj(json.loads(dumps(to_obj())))``
  returns (``dumps`` being Python's ``json.dumps`` or Go's, :mod:`stolon.model.gojson`):
  fields that ``omitempty`` leaves out get their default, maps come back with sorted keys,
  times and durations as their string form parses, unknown fields kept (through JSON, as
  before). A value it is not sure about (a type other than declared, an integer out of
  range, a time before year 1000, an unknown key that is also a known one, ...) raises
  :class:`NotFast` inside, and the whole document takes the JSON round trip: the result
  never depends on which path was taken.
- :func:`stored_equal` tells whether two documents have the same stored form
  (``a.to_obj() == b.to_obj()``): field by field when the values are of the declared types,
  falling back to ``to_obj()`` whenever the typed comparison cannot say "equal" for sure.
- :func:`snapshot` is a plain deep copy (no normalization), to compare against later.

The copier and the comparer of a document class are made once, as Python source text
written from its field list and compiled (:func:`_compile`): a loop over a field plan costs
more than the work per field (issue 12 item 5). Only this module writes that text, from the
dataclass's fields and declared types; values never reach it.

``tests/unit/test_model_structural.py`` checks both against the JSON round trip.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args, get_origin

from stolon.model import gojson
from stolon.model.codec import Document, NotFast, Range, _emptiness, _encode, _strip
from stolon.model.duration import Duration
from stolon.model.gotime import format_go_time, parse_go_time

D = TypeVar("D", bound=Document)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


# -- copy as stored ---------------------------------------------------------------------------
def stored_copy(doc: D) -> D:
    """What ``doc.copy()`` returns (through Go's JSON), made field by field."""
    return copy_as_stored(doc, go_json=True)


def copy_as_stored(doc: D, *, go_json: bool) -> D:
    """``type(doc).from_obj(json.loads(dumps(doc.to_obj())))``, computed structurally.

    ``go_json``: ``dumps`` is :func:`stolon.model.gojson.dumps` (it differs from Python's
    only for strings holding lone surrogates, which Go cannot encode); else ``json.dumps``.
    """
    try:
        return _doc_copier(type(doc), go_json)(doc)  # type: ignore[no-any-return]
    except NotFast:
        obj = doc.to_obj()
        text = gojson.dumps(obj) if go_json else json.dumps(obj)
        return type(doc).from_obj(json.loads(text))


def _not_fast(value: Any) -> Any:
    raise NotFast


Copier = Callable[[Any], Any]


_building: set[type[Document]] = set()  # document classes whose copier is being made


_doc_copiers: dict[tuple[type, bool], Copier] = {}


def _doc_copier(cls: type[Document], go_json: bool) -> Copier:
    copier = _doc_copiers.get((cls, go_json))
    if copier is None:
        _building.add(cls)
        try:
            copier = _doc_copiers[(cls, go_json)] = _make_doc_copier(cls, go_json)
        finally:
            _building.discard(cls)
    return copier


def _make_doc_copier(cls: type[Document], go_json: bool) -> Copier:
    """The copier of one document class (what ``from_obj(round trip(to_obj()))`` does), as
    straight-line code for the class's fields (:func:`_compile`).

    A field declared ``str``, ``int`` or ``bool`` (not optional) holding a value of exactly
    that type comes back as it is, even when ``omitempty`` leaves it out (its default is
    then that same empty value): a type test each, and an ``Annotated`` int's range. The
    others go through their own copier (a time or a duration tested inline: one that is
    already what the round trip gives comes back as it is). The new object is made as
    ``cls(**fields)`` would make it (the same attributes in the same order).
    """
    if not _plain_dataclass(cls):
        return _kwargs_copier(cls, go_json)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    var = {name: f"v{i}" for i, name in enumerate(fields)}
    env: dict[str, Any] = {
        "cls": cls,
        "NotFast": NotFast,
        "datetime": datetime,
        "Duration": Duration,
        "UTC": UTC,
        "copy_time": _copy_time,
        "go_string": _go_string,
        "json_loads": json.loads,
        "dumps": gojson.dumps if go_json else json.dumps,
        "keys": frozenset(cls.json_keys()),
    }
    body = [
        "if type(doc) is not cls:  # from_obj decodes as the declared class",
        "    raise NotFast",
        "d = doc.__dict__",
        "try:",
        *[f"    {v} = d[{name!r}]" for name, v in var.items()],
        "except KeyError:",
        "    raise NotFast from None",
    ]
    type_tests: list[str] = []
    range_tests: list[str] = []
    strings: list[str] = []
    general: list[str] = []
    for name, meta, tp in cls._json_fields():
        f, v = fields[name], var[name]
        i = v[1:]  # the names this field's values take in env
        factory = None if f.default_factory is MISSING else f.default_factory
        base, ranges = _scalar(tp)
        if base is not None and (
            not meta.omitempty or (factory is None and type(f.default) is base and not f.default)
        ):
            type_tests.append(f"type({v}) is not {base.__name__}")
            range_tests += [f"not {r.lo!r} <= {v} <= {r.hi!r}" for r in ranges]
            if base is str and go_json:
                strings += [f"if not {v}.isascii():", f"    {v} = go_string({v})"]
            continue
        # left out of the JSON (or null where that means the default): from_obj gives the
        # field its default
        if factory is None:
            env[f"default{i}"] = f.default
            default = f"default{i}"
        else:
            env[f"factory{i}"] = factory
            default = f"factory{i}()"
        empty = _emptiness(tp)
        general.append(f"if {v} is None:")
        if meta.omitempty and empty(None):
            general.append(f"    {v} = {default}")
        else:
            try:
                env[f"none{i}"] = _copier(tp, go_json)(None)
                general.append(f"    {v} = none{i}")
            except NotFast:
                general.append("    raise NotFast")
        # a document, duration or time is never left out (None aside): its copier refuses
        # whatever else could be
        if meta.omitempty and not _never_empty(tp):
            env[f"empty{i}"] = empty
            general += [f"elif empty{i}({v}):", f"    {v} = {default}"]
        field_copier = _value_copier(tp, go_json)
        general.append("else:")
        if field_copier is _copy_time:
            general += [
                f"    if type({v}) is not datetime or {v}.tzinfo is not UTC or {v}.fold or {v}.year < 1000:",
                f"        {v} = copy_time({v})",
            ]
        elif field_copier is _copy_duration:
            general += [
                f"    if type({v}) is not Duration or type({v}.ns) is not int"
                f" or not {_INT64_MIN!r} < {v}.ns <= {_INT64_MAX!r}:",
                "        raise NotFast",
            ]
        elif get_origin(_strip(tp)) is list:
            env[f"copy{i}"] = field_copier
            general += [
                f"    if type({v}) is list and not {v}:",
                f"        {v} = []",
                "    else:",
                f"        {v} = copy{i}({v})",
            ]
        else:
            env[f"copy{i}"] = field_copier
            general.append(f"    {v} = copy{i}({v})")
    if type_tests:
        body += [f"if {' or '.join(type_tests)}:", "    raise NotFast"]
    if range_tests:
        body += [
            f"if {' or '.join(range_tests)}:",
            "    raise NotFast  # from_obj refuses it: let the round trip raise",
        ]
    u = var["unknown_fields"]
    body += strings + general
    body += [
        f"if {u}:",
        "    # to_obj() writes unknown keys after the known ones unless a known one took the key",
        f"    if type({u}) is not dict or not all(type(k) is str and k not in keys for k in {u}):",
        "        raise NotFast",
        f"    {u} = json_loads(dumps({u}))",
        "else:",
        f"    {u} = {{}}",
        "out = object.__new__(cls)",
        "out.__dict__ = {" + ", ".join(f"{name!r}: {v}" for name, v in var.items()) + "}",
        "return out",
    ]
    return _compile(f"copy_{cls.__name__}", ["doc"], body, env)


def _compile(name: str, params: list[str], body: list[str], env: dict[str, Any]) -> Callable[..., Any]:
    """A function made from our own source text: ``def name(params): body`` run with the
    globals ``env`` (the values the text names). Field names are Python identifiers (a
    dataclass's); they only appear as string literals and attribute names."""
    src = "\n".join([f"def {name}({', '.join(params)}):", *("    " + line for line in body)])
    code = compile(src, f"<structural {name}>", "exec")
    namespace: dict[str, Any] = {}
    exec(code, env, namespace)  # our own generated text, no outside input
    fn: Callable[..., Any] = namespace[name]
    fn.__doc__ = src  # what runs, for whoever debugs it
    return fn


_OMITTED = object()  # None in an omitempty field: the field gets its default
_NOT_FAST = object()  # None where from_obj refuses null


def _never_empty(tp: Any) -> bool:
    """A document, duration or time (optional or not): only None is empty."""
    st = _strip(tp)
    return st is Duration or st is datetime or (isinstance(st, type) and issubclass(st, Document))


def _value_copier(tp: Any, go_json: bool) -> Copier:
    """The copier of the values other than None of a field of type ``tp``."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            tp = args[0]
    if isinstance(tp, type) and issubclass(tp, Document):
        return _lazy_doc_copier(tp, go_json) if tp in _building else _doc_copier(tp, go_json)
    return _copier(tp, go_json)


def _plain_dataclass(cls: type[Document]) -> bool:
    """Whether ``cls(**kwargs)`` only stores its fields (then the copy skips ``__init__``):
    the dataclass's own ``__init__``, no ``__post_init__``, no slots, every field a JSON
    field or ``unknown_fields``."""
    fields = dataclasses.fields(cls)
    json_names = {name for name, _, _ in cls._json_fields()}
    return (
        getattr(cls.__init__, "__code__", None) is not None
        and cls.__init__.__code__.co_filename == "<string>"  # made by dataclasses
        and not hasattr(cls, "__post_init__")
        and not any("__slots__" in vars(k) for k in cls.__mro__ if k is not object)
        and all(f.init for f in fields)
        and {f.name for f in fields} == json_names | {"unknown_fields"}
    )


def _scalar(tp: Any) -> tuple[type | None, list[Range]]:
    """``str``, ``int`` or ``bool`` (and the ranges an ``Annotated`` int must be within) when
    ``tp`` is one of them, not optional."""
    ranges: list[Range] = []
    if get_origin(tp) is typing.Annotated:
        base, *extras = get_args(tp)
        ranges = [e for e in extras if isinstance(e, Range)]
        tp = base
    if tp in (str, int, bool):
        return tp, ranges
    return None, []


def _kwargs_copier(cls: type[Document], go_json: bool) -> Copier:
    """The copier of a document class :func:`_doc_copier` cannot build directly."""
    plan = [
        (name, meta.omitempty, _emptiness(tp), _copier(tp, go_json)) for name, meta, tp in cls._json_fields()
    ]
    keys = frozenset(cls.json_keys())
    dumps = gojson.dumps if go_json else json.dumps

    def copy_doc(doc: Any) -> Any:
        if type(doc) is not cls:  # from_obj decodes as the declared class
            raise NotFast
        kwargs: dict[str, Any] = {}
        for name, omitempty, empty, field_copier in plan:
            value = getattr(doc, name)
            if omitempty and empty(value):
                continue  # left out of the JSON: from_obj gives the field its default
            kwargs[name] = field_copier(value)
        unknown = doc.unknown_fields
        if unknown:
            if type(unknown) is not dict or not all(type(k) is str and k not in keys for k in unknown):
                raise NotFast
            unknown = json.loads(dumps(unknown))
        else:
            unknown = {}
        return cls(unknown_fields=unknown, **kwargs)

    return copy_doc


@functools.cache
def _copier(tp: Any, go_json: bool) -> Copier:
    """decode(round trip(encode(value))) for a value of the declared type ``tp``."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        base, *extras = get_args(tp)
        inner = _copier(base, go_json)
        ranges = [e for e in extras if isinstance(e, Range)]
        if not ranges:
            return inner

        def annotated(value: Any) -> Any:
            result = inner(value)
            for r in ranges:
                if result is not None and not r.lo <= result <= r.hi:
                    raise NotFast  # from_obj refuses it: let the round trip raise
            return result

        return annotated
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return _not_fast
        inner_opt = _copier(args[0], go_json)
        # None is written as null (a time: the zero time) and read back as None
        return lambda value: None if value is None else inner_opt(value)
    if origin is list:
        (item_tp,) = get_args(tp)
        item = _copier(item_tp, go_json)

        strings = item is _exact(str) or item is _go_string

        def array(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is not list:
                raise NotFast
            if strings and _all_strings(value, go_json):
                return list(value)
            return [item(v) for v in value]

        return array
    if origin is dict:
        _, val_tp = get_args(tp)
        val = _copier(val_tp, go_json)
        key = _go_string if go_json else _exact(str)
        strings = val is _exact(str) or val is _go_string

        def mapping(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is not dict:
                raise NotFast
            if not _all_strings(value, False):
                raise NotFast
            if strings and _all_strings(value, go_json) and _all_strings(value.values(), go_json):
                return {k: value[k] for k in sorted(value)}
            return {key(k): val(value[k]) for k in sorted(value)}  # to_obj() sorts map keys

        return mapping
    if isinstance(tp, type) and issubclass(tp, Document):
        doc = _lazy_doc_copier(tp, go_json) if tp in _building else _doc_copier(tp, go_json)
        return lambda value: None if value is None else doc(value)
    if tp is str and go_json:
        return _go_string
    if tp in (str, bool, int, float):
        return _exact(tp)
    if tp is Duration:
        return _copy_duration
    if tp is datetime:
        return _copy_time
    if tp is Any:
        return functools.partial(_copy_any, go_json=go_json)
    return _not_fast


def _lazy_doc_copier(cls: type[Document], go_json: bool) -> Copier:
    """The document copier, looked up at first use (document types can be recursive)."""

    def copy_doc(value: Any) -> Any:
        return _doc_copier(cls, go_json)(value)

    return copy_doc


def _all_strings(values: Iterable[Any], go_json: bool) -> bool:
    """Whether every value is a ``str`` that the round trip gives back unchanged."""
    if not set(map(type, values)) <= {str}:
        return False
    return not go_json or all(map(str.isascii, values))


@functools.cache
def _exact(tp: type) -> Copier:
    """The copier of a ``str`` (as Python's ``json.dumps`` writes it), ``bool``, ``int`` or
    ``float`` value: the value itself when it is exactly of type ``tp``.

    ``json.dumps`` escapes every non-ASCII character (lone surrogates too): ``json.loads``
    gives the same string back. A NaN comes back from JSON as another object: not fast.
    """
    nan_differs = tp is float

    def exact(value: Any) -> Any:
        if type(value) is not tp or (nan_differs and value != value):  # noqa: PLR0124 (NaN)
            raise NotFast
        return value

    return exact


def _go_string(value: Any) -> Any:
    if type(value) is not str:
        raise NotFast
    if value.isascii():
        return value
    return json.loads(gojson.dumps(value))  # a lone surrogate becomes U+FFFD, as in Go


def _copy_duration(value: Any) -> Any:
    # frozen; its string parses back to the same nanoseconds (all of int64 but its minimum)
    if type(value) is Duration and type(value.ns) is int and _INT64_MIN < value.ns <= _INT64_MAX:
        return value
    raise NotFast


def _copy_time(value: Any) -> Any:
    if value is None:
        return None  # written as Go's zero time, read back as None
    if type(value) is not datetime:
        raise NotFast
    if value.tzinfo is UTC and value.fold == 0 and value.year >= 1000:
        return value  # immutable, and its RFC 3339 form parses back to an equal datetime in UTC
    try:
        return parse_go_time(format_go_time(value))
    except (ValueError, TypeError, OverflowError):
        raise NotFast from None


def _copy_any(value: Any, *, go_json: bool) -> Any:
    if value is None or type(value) in (bool, int):
        return value
    if type(value) is str and (not go_json or value.isascii()):
        return value
    try:
        encoded = _encode(Any, value)
        return json.loads(gojson.dumps(encoded) if go_json else json.dumps(encoded))
    except (TypeError, ValueError):
        raise NotFast from None


# -- stored equality --------------------------------------------------------------------------
def stored_equal(a: Any, b: Any) -> bool:
    """Whether two model values (documents, or None) have the same stored form:
    ``to_obj()`` of each, compared as Python values, as the sentinel compared them."""
    if a is b:
        return True
    if type(a) is type(b) and isinstance(a, Document) and _doc_equal(type(a))(a, b):
        return True
    return bool(_encode(Any, a) == _encode(Any, b))


Equal = Callable[[Any, Any], bool]


_doc_equals: dict[type, Equal] = {}
_building_equal: set[type[Document]] = set()  # document classes whose comparer is being made


def _doc_equal(cls: type[Document]) -> Equal:
    equal = _doc_equals.get(cls)
    if equal is None:
        _building_equal.add(cls)
        try:
            equal = _doc_equals[cls] = _make_doc_equal(cls)
        finally:
            _building_equal.discard(cls)
    return equal


def _make_doc_equal(cls: type[Document]) -> Equal:
    """True only when two documents of class ``cls`` surely have the same ``to_obj()``
    (False: they may differ, compare their ``to_obj()``), as straight-line code for the
    class's fields (:func:`_compile`): per field, the same object, or equal values of the
    declared type (:func:`_equal_expr`), or both left out by ``omitempty``."""
    env: dict[str, Any] = {"cls": cls, "datetime": datetime, "Duration": Duration, "UTC": UTC}
    body = [
        "if a is b:",
        "    return True",
        "if type(a) is not cls or type(b) is not cls:",
        "    return False",
    ]
    for i, (name, meta, tp) in enumerate(cls._json_fields()):
        x, y = f"x{i}", f"y{i}"
        test = f"{x} is not {y} and not {_equal_expr(tp, x, y, env, f'{i}')}"
        if meta.omitempty:
            env[f"empty{i}"] = _emptiness(tp)
            test += f" and not (empty{i}({x}) and empty{i}({y}))"  # both left out
        body += [f"{x} = a.{name}", f"{y} = b.{name}", f"if {test}:", "    return False"]
    # to_obj() copies them as they are (unless a known field took the key: the same known
    # values then, as just compared)
    body.append("return bool(a.unknown_fields == b.unknown_fields)")
    return _compile(f"equal_{cls.__name__}", ["a", "b"], body, env)


def _equal_expr(tp: Any, x: str, y: str, env: dict[str, Any], tag: str) -> str:
    """An expression that is True only when the values named ``x`` and ``y``, of declared
    type ``tp``, surely have the same stored form (what ``_equal(tp)(x, y)`` tells), written
    out for the common types; functions it calls are put in ``env`` under names ending with
    ``tag``."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _equal_expr(get_args(tp)[0], x, y, env, tag)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            inner = _equal_expr(args[0], x, y, env, tag)
            return f"(({x} is None and {y} is None) if {x} is None or {y} is None else {inner})"
    if tp in (str, bool, int, float):
        return f"({x} == {y})"  # written as it is
    if tp is datetime:
        # the same instant at the same UTC offset has the same RFC 3339 form
        return (
            f"(({x} is None and {y} is None) if {x} is None or {y} is None else"
            f" (type({x}) is datetime and type({y}) is datetime and {x} == {y}"
            f" and ({x}.tzinfo is UTC and {y}.tzinfo is UTC or {x}.utcoffset() == {y}.utcoffset())))"
        )
    if tp is Duration:
        return f"(type({x}) is Duration and type({y}) is Duration and {x}.ns == {y}.ns)"
    if origin is list and _equal(get_args(tp)[0]) is _scalar_equal:
        return f"(type({x}) is list and type({y}) is list and {x} == {y})"  # items written as they are
    if isinstance(tp, type) and issubclass(tp, Document) and tp not in _building_equal:
        env[f"equal{tag}"] = _doc_equal(tp)  # (one being made: looked up at first use, by _equal)
        return f"equal{tag}({x}, {y})"
    env[f"equal{tag}"] = _equal(tp)
    return f"equal{tag}({x}, {y})"


def _never(a: Any, b: Any) -> bool:
    return False


@functools.cache
def _equal(tp: Any) -> Equal:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _equal(get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return _never
        inner = _equal(args[0])
        return lambda a, b: (a is None and b is None) if a is None or b is None else inner(a, b)
    if origin is list:
        item = _equal(get_args(tp)[0])

        def array(a: Any, b: Any) -> bool:
            if type(a) is not list or type(b) is not list or len(a) != len(b):
                return False
            if item is _scalar_equal:
                return bool(a == b)  # the items are written as they are
            return all(item(x, y) for x, y in zip(a, b, strict=True))

        return array
    if origin is dict:
        val = _equal(get_args(tp)[1])

        def mapping(a: Any, b: Any) -> bool:
            if type(a) is not dict or type(b) is not dict or a.keys() != b.keys():
                return False
            if not set(map(type, a)) <= {str}:
                return False  # to_obj() sorts the keys (and fails on mixed types)
            if val is _scalar_equal:
                return bool(a == b)  # the values are written as they are
            return all(val(a[k], b[k]) for k in a)

        return mapping
    if isinstance(tp, type) and issubclass(tp, Document):
        cls = tp

        def document(a: Any, b: Any) -> bool:
            return _doc_equal(cls)(a, b)  # looked up at first use: types can be recursive

        return document
    if tp in (str, bool, int, float):
        return _scalar_equal
    if tp is Any:
        return _any_equal
    if tp is Duration:
        return lambda a, b: type(a) is Duration and type(b) is Duration and a.ns == b.ns
    if tp is datetime:
        return _time_equal
    return _never


_SCALARS = (str, bool, int, float, type(None))


def _scalar_equal(a: Any, b: Any) -> bool:
    return bool(a == b)  # a field declared str, bool, int or float is written as it is


def _any_equal(a: Any, b: Any) -> bool:
    # a scalar is written as it is (a list or a map: compared through to_obj())
    return type(a) is type(b) and type(a) in _SCALARS and bool(a == b)


def _time_equal(a: Any, b: Any) -> bool:
    # the same instant at the same UTC offset has the same RFC 3339 form
    if a is None or b is None:
        return a is None and b is None
    return type(a) is datetime and type(b) is datetime and a == b and a.utcoffset() == b.utcoffset()


# -- snapshot -----------------------------------------------------------------------------------
_IMMUTABLE = frozenset({str, bool, int, float, type(None), Duration, datetime})


def snapshot(value: Any) -> Any:
    """A deep copy of a model value as it is (no normalization), to compare with later:
    its ``to_obj()`` stays what the original's was when the snapshot was taken."""
    t = type(value)
    if t in _IMMUTABLE:
        return value
    if t is list:
        items = list(value)
        for i, v in enumerate(items):
            if type(v) not in _IMMUTABLE:
                items[i] = snapshot(v)
        return items
    if t is dict:
        return _snapshot_dict(value)
    if isinstance(value, Document):
        snapshotter = _doc_snapshotters.get(t)
        if snapshotter is None:
            snapshotter = _doc_snapshotters[t] = _make_doc_snapshotter(t)
        return snapshotter(value)
    return copy.deepcopy(value)


def _snapshot_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    d = dict(value)
    for k, v in d.items():
        if type(v) not in _IMMUTABLE:
            d[k] = snapshot(v)
    return d


def _snapshot_doc(value: Document) -> Any:
    """The snapshot of a document: its attributes (whatever they are) snapshot."""
    new = object.__new__(type(value))
    new.__dict__.update(_snapshot_dict(value.__dict__))
    return new


_doc_snapshotters: dict[type, Callable[[Any], Any]] = {}


def _make_doc_snapshotter(cls: type[Document]) -> Callable[[Any], Any]:
    """:func:`_snapshot_doc` for a document of class ``cls`` as straight-line code over its
    fields (:func:`_compile`), an empty list or dict made inline; a document with other
    attributes than its fields takes :func:`_snapshot_doc`."""
    names = [f.name for f in dataclasses.fields(cls)]
    env: dict[str, Any] = {
        "cls": cls,
        "IMMUTABLE": _IMMUTABLE,
        "snapshot": snapshot,
        "snapshot_doc": _snapshot_doc,
    }
    body = [
        "d = dict(value.__dict__)",
        f"if len(d) != {len(names)}:",
        "    return snapshot_doc(value)",
        "try:",
        *[f"    x{i} = d[{name!r}]" for i, name in enumerate(names)],
        "except KeyError:",
        "    return snapshot_doc(value)",
    ]
    for i, name in enumerate(names):
        body += [
            f"if type(x{i}) not in IMMUTABLE:",
            f"    if type(x{i}) is dict and not x{i}:",
            f"        d[{name!r}] = {{}}",
            f"    elif type(x{i}) is list and not x{i}:",
            f"        d[{name!r}] = []",
            "    else:",
            f"        d[{name!r}] = snapshot(x{i})",
        ]
    body += ["new = object.__new__(cls)", "new.__dict__ = d", "return new"]
    return _compile(f"snapshot_{cls.__name__}", ["value"], body, env)
