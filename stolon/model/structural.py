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

``tests/unit/test_model_structural.py`` checks both against the JSON round trip.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import operator
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args, get_origin

from stolon.model import gojson
from stolon.model.codec import Document, Range, _emptiness, _encode, _strip
from stolon.model.duration import Duration
from stolon.model.gotime import format_go_time, parse_go_time

D = TypeVar("D", bound=Document)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class NotFast(Exception):
    """A value the structural copy does not handle: the caller takes the JSON round trip."""


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
    """The copier of one document class (what ``from_obj(round trip(to_obj()))`` does).

    A field declared ``str``, ``int`` or ``bool`` (not optional) holding a value of exactly
    that type comes back as it is, even when ``omitempty`` leaves it out (its default is
    then that same empty value): those are checked all at once. The others go through
    their own copier. The new object is made as ``cls(**fields)`` would make it.
    """
    if not _plain_dataclass(cls):
        return _kwargs_copier(cls, go_json)
    names = [f.name for f in dataclasses.fields(cls)]
    get_all = operator.itemgetter(*names)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    scalar_names: list[str] = []
    scalar_types: list[type] = []
    ranged: list[tuple[str, int, int]] = []
    strings: list[str] = []
    general: list[tuple[str, Any, bool, Callable[[Any], bool], Copier, Any, Callable[[], Any] | None]] = []
    for name, meta, tp in cls._json_fields():
        f = fields[name]
        factory = None if f.default_factory is MISSING else f.default_factory
        base, ranges = _scalar(tp)
        if base is not None and (
            not meta.omitempty or (factory is None and type(f.default) is base and not f.default)
        ):
            scalar_names.append(name)
            scalar_types.append(base)
            ranged += [(name, r.lo, r.hi) for r in ranges]
            if base is str:
                strings.append(name)
        else:
            empty = _emptiness(tp)
            if meta.omitempty and empty(None):
                none: Any = _OMITTED
            else:
                try:
                    none = _copier(tp, go_json)(None)
                except NotFast:
                    none = _NOT_FAST
            # a document, duration or time is never left out (None aside): its copier
            # refuses whatever else could be
            omitempty = meta.omitempty and not _never_empty(tp)
            general.append((name, none, omitempty, empty, _value_copier(tp, go_json), f.default, factory))
    get_scalars = operator.itemgetter(*scalar_names) if len(scalar_names) > 1 else None
    one_scalar = scalar_names[0] if len(scalar_names) == 1 else None
    types = tuple(scalar_types)
    keys = frozenset(cls.json_keys())
    dumps = gojson.dumps if go_json else json.dumps

    def copy_doc(doc: Any) -> Any:
        if type(doc) is not cls:  # from_obj decodes as the declared class
            raise NotFast
        d = doc.__dict__
        try:
            new = dict(zip(names, get_all(d), strict=True))
        except KeyError:
            raise NotFast from None
        if get_scalars is not None:
            if tuple(map(type, get_scalars(d))) != types:
                raise NotFast
        elif one_scalar is not None and type(d[one_scalar]) is not types[0]:
            raise NotFast
        for name, lo, hi in ranged:
            if not lo <= d[name] <= hi:
                raise NotFast  # from_obj refuses it: let the round trip raise
        if go_json:
            for name in strings:
                new[name] = _go_string(new[name])
        for name, none, omitempty, empty, field_copier, default, default_factory in general:
            value = d[name]
            if value is None and none is not _OMITTED:
                if none is _NOT_FAST:
                    raise NotFast
                new[name] = none
            elif (value is None) or (omitempty and empty(value)):
                # left out of the JSON: from_obj gives the field its default
                new[name] = default if default_factory is None else default_factory()
            else:
                new[name] = field_copier(value)
        unknown = doc.unknown_fields
        if unknown:
            # to_obj() writes unknown keys after the known ones unless a known one took the key
            if type(unknown) is not dict or not all(type(k) is str and k not in keys for k in unknown):
                raise NotFast
            new["unknown_fields"] = json.loads(dumps(unknown))
        else:
            new["unknown_fields"] = {}
        out = object.__new__(cls)
        out.__dict__ = new
        return out

    return copy_doc


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
        and len(fields) > 1
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

        strings = item is _plain_string or item is _go_string

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
        key = _go_string if go_json else _plain_string
        strings = val is _plain_string or val is _go_string

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
    if tp is str:
        return _go_string if go_json else _plain_string
    if tp is bool:
        return _copy_bool
    if tp is int:
        return _copy_int
    if tp is float:
        return _copy_float
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


def _plain_string(value: Any) -> Any:
    # json.dumps escapes every non-ASCII character (lone surrogates too): json.loads gives
    # the same string back
    if type(value) is not str:
        raise NotFast
    return value


def _go_string(value: Any) -> Any:
    if type(value) is not str:
        raise NotFast
    if value.isascii():
        return value
    return json.loads(gojson.dumps(value))  # a lone surrogate becomes U+FFFD, as in Go


def _copy_bool(value: Any) -> Any:
    if type(value) is not bool:
        raise NotFast
    return value


def _copy_int(value: Any) -> Any:
    if type(value) is not int:
        raise NotFast
    return value


def _copy_float(value: Any) -> Any:
    if type(value) is float and not math.isnan(value):  # NaN: a new object through JSON
        return value
    raise NotFast


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


def _doc_equal(cls: type[Document]) -> Equal:
    equal = _doc_equals.get(cls)
    if equal is None:
        equal = _doc_equals[cls] = _make_doc_equal(cls)
    return equal


def _make_doc_equal(cls: type[Document]) -> Equal:
    """True only when two documents of class ``cls`` surely have the same ``to_obj()``
    (False: they may differ, compare their ``to_obj()``)."""
    plan = [(name, meta.omitempty, _emptiness(tp), _equal(tp)) for name, meta, tp in cls._json_fields()]

    def equal(a: Any, b: Any) -> bool:
        if a is b:
            return True
        if type(a) is not cls or type(b) is not cls:
            return False
        for name, omitempty, empty, field_equal in plan:
            x = getattr(a, name)
            y = getattr(b, name)
            if x is y or field_equal(x, y):
                continue  # the same value is encoded the same way
            if omitempty and empty(x) and empty(y):
                continue  # both left out
            return False
        # to_obj() copies them as they are (unless a known field took the key: the same
        # known values then, as just compared)
        return bool(a.unknown_fields == b.unknown_fields)

    return equal


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
    if t is dict or isinstance(value, Document):
        d = dict(value if t is dict else value.__dict__)
        for k, v in d.items():
            if type(v) not in _IMMUTABLE:
                d[k] = snapshot(v)
        if t is dict:
            return d
        new = object.__new__(t)
        new.__dict__.update(d)
        return new
    return copy.deepcopy(value)
