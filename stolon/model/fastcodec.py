"""Compiled decoders and encoders of the model documents: ``from_obj`` and ``to_obj`` as
straight-line code per document class, with the generic codec's results.

At rest the leader sentinel decodes the cluster data and encodes it back every cycle and
decodes the keepers' infos on their heartbeats; the proxy decodes the cluster data on every
check and the keepers on every change (issue 12 item 5). The generic codec
(:mod:`stolon.model.codec`) walks a field plan and calls a decoder or an encoder per value:
the calls cost more than the work. As :mod:`stolon.model.structural` does for copies and
comparisons, this module writes, per document class, Python source from the class's field
list and declared types and compiles it once (:func:`stolon.model.structural._compile`).
Only field names (a dataclass's identifiers) and JSON keys (``repr()`` literals of our own
declarations) reach that text; values never do.

- :func:`decoder`: the non-strict ``from_obj`` of a class (strict decoding, for user input,
  keeps the generic path). Every value is tested for exactly the JSON type its field
  declares (``type(x) is str``, an ``int`` within its ``Annotated`` range, a list or an
  object of those, ``null`` where the generic decoder gives ``None``); anything else
  (a float for an int, a bad duration or time, a dict subclass, ...) raises
  :class:`~stolon.model.codec.NotFast` and ``from_obj`` takes the generic path, which gives
  the result or the :class:`~stolon.model.errors.ModelError`: the outcome never depends on
  which path ran. Missing keys get the dataclass's defaults, unknown keys go to
  ``unknown_fields`` in the object's order, the object is made as ``cls(**fields)`` makes
  it (the same attributes in the same order).
- :func:`encoder`: ``to_obj``, the generic plan's tests and encoders written out for the
  values of their declared types, and a call of the generic emptiness test and encoder of
  the field for any other value: the same keys in the same order, the same values.

Times and durations take the most time of all values: a time of Go's usual shape is parsed
by ``datetime.fromisoformat`` (which reads that shape as :func:`parse_go_time` does) and a UTC
one formatted without ``strftime``; duration strings and their parses are remembered (a
spec's few durations are the same on every read).

``tests/unit/test_model_fastcodec.py`` checks both against the generic codec.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING
from datetime import UTC, datetime
from typing import Any, get_args, get_origin

from stolon.model.codec import (
    Document,
    NotFast,
    Range,
    _decoder,
    _emptiness,
    _encoder,
    _fast_decoders,
    _fast_encoders,
    _is_optional,
    _is_time_type,
    _refuse,
    _strip,
    install_compiled_codec,
)
from stolon.model.duration import Duration, DurationError, format_go_duration
from stolon.model.gotime import GO_ZERO_TIME, format_go_time, parse_go_time
from stolon.model.structural import _compile, _plain_dataclass

_MISSING = object()  # a key not in the JSON object
_SCALARS = (str, int, bool, float)

_CACHE_MAX = 512  # entries kept by each of the duration caches below


# -- value helpers ----------------------------------------------------------------------------
_durations: dict[str, Duration] = {}


def _decode_duration(x: Any) -> Duration:
    """What the generic decoder gives for a duration string (remembered); NotFast for
    anything it refuses."""
    d = _durations.get(x) if type(x) is str else None
    if d is None:
        if type(x) is not str:
            raise NotFast
        try:
            d = Duration.parse(x)
        except DurationError:
            raise NotFast from None
        if len(_durations) >= _CACHE_MAX:
            _durations.clear()
        _durations[x] = d
    return d


_duration_texts: dict[int, str] = {}


def _encode_duration(x: Duration) -> str:
    """``str(x)`` of a Duration (remembered per nanosecond count)."""
    ns = x.ns
    if type(ns) is not int:
        return str(x)
    text = _duration_texts.get(ns)
    if text is None:
        if len(_duration_texts) >= _CACHE_MAX:
            _duration_texts.clear()
        text = _duration_texts[ns] = format_go_duration(ns)
    return text


#: The times Go and we write: ``fromisoformat`` reads them as :func:`parse_go_time` does
#: (1 to 6 fraction digits, ``Z`` or a ``±hh:mm`` offset); the zero time aside (``None``).
_USUAL_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _decode_time(x: Any) -> datetime | None:
    """What the generic decoder gives for a time (``null`` or an RFC 3339 string); NotFast
    for anything it refuses."""
    if x is None:
        return None
    if type(x) is not str:
        raise NotFast
    try:
        if _USUAL_TIME.fullmatch(x) is not None and not x.startswith("0001-01-01T00:00:00"):
            return datetime.fromisoformat(x)
        return parse_go_time(x)
    except ValueError:
        raise NotFast from None


def _encode_time(x: datetime) -> str:
    """:func:`format_go_time` of a datetime, through ``isoformat`` for a UTC one of a year
    with four digits (``strftime``'s ``%Y`` does not pad smaller years, ``isoformat`` does)."""
    if x.tzinfo is not UTC or x.year < 1000:
        return format_go_time(x)
    text = x.isoformat()[:-6]  # YYYY-MM-DDTHH:MM:SS[.ffffff] and +00:00
    if x.microsecond:
        text = text.rstrip("0")
    return text + "Z"


def _generic_value(tp: Any) -> Callable[[Any], Any]:
    """The generic decoder of type ``tp``, any failure a NotFast (the generic path redoes
    the document and raises the error with its path)."""
    generic = _decoder(tp)

    def decode(x: Any) -> Any:
        try:
            return generic(x, "", False)
        except Exception:
            raise NotFast from None

    return decode


def _uses_codec(cls: type[Document], method: str) -> bool:
    """Whether ``cls`` has Document's own ``from_obj``/``to_obj`` (then its compiled one can
    be called directly)."""
    own = getattr(Document, method)
    got = getattr(cls, method)
    return getattr(got, "__func__", got) is getattr(own, "__func__", own)


def _optional_arg(tp: Any) -> Any | None:
    """``T`` for ``T | None`` (else None)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _none_is_none(tp: Any) -> bool:
    """Whether the generic decoder of ``tp`` gives None for null (as ``tp | None`` does)."""
    return tp is Any or tp is datetime or _is_document(tp) or get_origin(tp) in (list, dict)


def _is_document(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Document)


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


# -- decoding ---------------------------------------------------------------------------------
_building_decoders: set[type] = set()


def decoder(cls: type[Document]) -> Callable[[Any], Any]:
    """The compiled non-strict ``from_obj`` of ``cls`` (made at first use): the object the
    generic decoder returns, or NotFast."""
    dec = _fast_decoders.get(cls)
    if dec is None:
        _building_decoders.add(cls)
        try:
            dec = _fast_decoders[cls] = _make_decoder(cls)
        finally:
            _building_decoders.discard(cls)
    return dec


def _doc_decoder(cls: type[Document]) -> Callable[[Any], Any]:
    """The decoder to call for a nested document of class ``cls`` (a value not None)."""
    if not _uses_codec(cls, "from_obj") or not _plain_dataclass(cls):
        return _generic_value(cls)  # its own from_obj, or made by its own __init__
    if cls in _building_decoders:  # a recursive type: looked up at first use

        def lazy(x: Any) -> Any:
            return decoder(cls)(x)

        return lazy
    return decoder(cls)


class _Gen:
    """Source lines and the values they name (``env``), for one compiled function."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env
        self.count = 0

    def name(self, prefix: str, value: Any) -> str:
        """A global of the function holding ``value``."""
        self.count += 1
        key = f"{prefix}{self.count}"
        self.env[key] = value
        return key

    def decode(self, tp: Any, x: str, target: str) -> list[str]:
        """Lines that set ``target`` to the generic decoding of the JSON value named ``x``
        (of declared type ``tp``), or raise NotFast."""
        origin = get_origin(tp)
        if origin is typing.Annotated:
            base, *extras = get_args(tp)
            ranges = [e for e in extras if isinstance(e, Range)]
            if base is int:  # the common case in one test
                tests = [f"type({x}) is not int"] + [f"not {r.lo!r} <= {x} <= {r.hi!r}" for r in ranges]
                return [f"if {' or '.join(tests)}:", "    raise NotFast", f"{target} = {x}"]
            lines = self.decode(base, x, target)
            for r in ranges:
                lines += [
                    f"if {target} is not None and not {r.lo!r} <= {target} <= {r.hi!r}:",
                    "    raise NotFast",
                ]
            return lines
        inner = _optional_arg(tp)
        if inner is not None:
            if _none_is_none(inner):  # its decoder gives None for null too
                return self.decode(inner, x, target)
            return [
                f"if {x} is None:",
                f"    {target} = None",
                "else:",
                *_indent(self.decode(inner, x, target)),
            ]
        if tp is Any:
            return [f"{target} = {x}"]
        if tp in (str, int, bool, float):
            return [f"if type({x}) is not {tp.__name__}:", "    raise NotFast", f"{target} = {x}"]
        if tp is Duration:
            return [f"{target} = {self.name('duration', _decode_duration)}({x})"]
        if tp is datetime:
            return [f"{target} = {self.name('time', _decode_time)}({x})"]
        if _is_document(tp):
            dec = self.name("doc", _doc_decoder(tp))
            return [f"{target} = None if {x} is None else {dec}({x})"]
        if origin is list:
            (item_tp,) = get_args(tp)
            head = [
                f"if {x} is None:",
                f"    {target} = None",
                f"elif type({x}) is not list:",
                "    raise NotFast",
            ]
            if item_tp in (str, int, bool):
                t = item_tp.__name__
                return [
                    *head,
                    f"elif not set(map(type, {x})) <= {{{t}}}:",
                    "    raise NotFast",
                    "else:",
                    f"    {target} = list({x})",
                ]
            if _is_document(item_tp):
                dec = self.name("doc", _doc_decoder(item_tp))
                return [*head, "else:", f"    {target} = [None if e is None else {dec}(e) for e in {x}]"]
            item = self.name("item", self.value_function(item_tp))
            return [*head, "else:", f"    {target} = [{item}(e) for e in {x}]"]
        if origin is dict:
            _, val_tp = get_args(tp)
            head = [
                f"if {x} is None:",
                f"    {target} = None",
                f"elif type({x}) is not dict or not set(map(type, {x})) <= {{str}}:",
                "    raise NotFast",
            ]
            if val_tp in (str, int, bool):
                t = val_tp.__name__
                return [
                    *head,
                    f"elif not set(map(type, {x}.values())) <= {{{t}}}:",
                    "    raise NotFast",
                    "else:",
                    f"    {target} = dict({x})",
                ]
            if _is_document(val_tp):
                dec = self.name("doc", _doc_decoder(val_tp))
                return [
                    *head,
                    "else:",
                    f"    {target} = {{k: None if e is None else {dec}(e) for k, e in {x}.items()}}",
                ]
            val = self.name("val", self.value_function(val_tp))
            return [*head, "else:", f"    {target} = {{k: {val}(e) for k, e in {x}.items()}}"]
        return [f"{target} = {self.name('generic', _generic_value(tp))}({x})"]

    def value_function(self, tp: Any) -> Callable[[Any], Any]:
        """A compiled function decoding one value of type ``tp`` (a list item, a map value)."""
        if _is_document(tp):
            dec = _doc_decoder(tp)
            return lambda x: None if x is None else dec(x)
        gen = _Gen({"NotFast": NotFast})
        return _compile("decode_value", ["x"], [*gen.decode(tp, "x", "r"), "return r"], gen.env)


def _make_decoder(cls: type[Document]) -> Callable[[Any], Any]:
    """The decoder of one document class (see the module's docstring)."""
    if not _plain_dataclass(cls) or not _uses_codec(cls, "from_obj"):
        return _refuse  # made some other way: the generic path makes it
    fields = {f.name: f for f in dataclasses.fields(cls)}
    json_fields = cls._json_fields()
    var = {name: f"v{i}" for i, name in enumerate(fields)}
    gen = _Gen(
        {
            "cls": cls,
            "NotFast": NotFast,
            "MISSING": _MISSING,
            "known": frozenset(meta.key for _, meta, _ in json_fields),
        }
    )
    u = var["unknown_fields"]
    body = [
        "if type(obj) is not dict:",
        "    raise NotFast",
        "if obj.keys() <= known:",
        f"    {u} = {{}}",
        "else:",
        f"    {u} = {{k: e for k, e in obj.items() if k not in known}}",
    ]
    for name, meta, tp in json_fields:
        assert name.isidentifier(), name
        f, v = fields[name], var[name]
        if f.default is not MISSING:
            default = gen.name("default", f.default)
        elif f.default_factory is not MISSING:
            default = gen.name("factory", f.default_factory) + "()"
        else:
            default = ""  # cls() would refuse it: let the generic path say so
        body += [
            f"x = obj.get({meta.key!r}, MISSING)",
            "if x is MISSING:",
            f"    {v} = {default}" if default else "    raise NotFast",
            "else:",
            *_indent(gen.decode(tp, "x", v)),
        ]
    body += [
        "out = object.__new__(cls)",
        "out.__dict__ = {" + ", ".join(f"{name!r}: {v}" for name, v in var.items()) + "}",
        "return out",
    ]
    return _compile(f"from_obj_{cls.__name__}", ["obj"], body, gen.env)


# -- encoding ---------------------------------------------------------------------------------
_building_encoders: set[type] = set()


def encoder(cls: type[Document]) -> Callable[[Any], Any]:
    """The compiled ``to_obj`` of ``cls`` (made at first use)."""
    enc = _fast_encoders.get(cls)
    if enc is None:
        _building_encoders.add(cls)
        try:
            enc = _fast_encoders[cls] = _make_encoder(cls)
        finally:
            _building_encoders.discard(cls)
    return enc


def _doc_encoder(cls: type[Document]) -> Callable[[Any], Any]:
    """The encoder to call for a nested document of exactly class ``cls``."""
    if not _uses_codec(cls, "to_obj"):
        return lambda x: x.to_obj()
    if cls in _building_encoders:  # a recursive type: looked up at first use

        def lazy(x: Any) -> Any:
            return encoder(cls)(x)

        return lazy
    return encoder(cls)


def _make_encoder(cls: type[Document]) -> Callable[[Any], Any]:
    """The encoder of one document class: per field, the generic plan's emptiness test and
    encoder written out for a value of the declared type, and called for any other value."""
    gen = _Gen({"cls": cls, "datetime": datetime, "Duration": Duration, "ZERO_TIME": GO_ZERO_TIME})
    body = ["out = {}"]
    for name, meta, tp in cls._json_fields():
        assert name.isidentifier(), name
        key, omitempty = repr(meta.key), meta.omitempty
        empty, enc = gen.name("empty", _emptiness(tp)), gen.name("enc", _encoder(tp))
        # the generic plan: leave out an empty value (omitempty), else write its encoding
        generic = (
            [f"if not {empty}(x):", f"    out[{key}] = {enc}(x)"] if omitempty else [f"out[{key}] = {enc}(x)"]
        )
        body.append(f"x = self.{name}")
        # a document, a duration, a list or a map that is None: empty, else written as null
        none = ["elif x is None:", "    pass" if omitempty else f"    out[{key}] = None"]
        st = _strip(tp)
        origin = get_origin(st)
        if st in _SCALARS:  # written as it is
            if not omitempty:
                body.append(f"out[{key}] = x")
                continue
            t = st.__name__
            if _is_optional(tp):  # only None (or an empty list or dict) is empty
                body += ["if x is None:", "    pass", f"elif type(x) is {t}:", f"    out[{key}] = x"]
            else:
                body += [f"if type(x) is {t}:", "    if x:", f"        out[{key}] = x"]
            body += ["else:", *_indent(generic)]
        elif _is_document(st):  # never empty
            body += [
                f"if type(x) is {gen.name('cls', st)}:",
                f"    out[{key}] = {gen.name('doc', _doc_encoder(st))}(x)",
            ]
            body += [*none, "else:", *_indent(generic)]
        elif st is Duration:  # never empty
            body += [
                "if type(x) is Duration:",
                f"    out[{key}] = {gen.name('duration', _encode_duration)}(x)",
            ]
            body += [*none, "else:", *_indent(generic)]
        elif _is_time_type(tp):  # never empty; None is Go's zero time
            body += [
                "if type(x) is datetime:",
                f"    out[{key}] = {gen.name('time', _encode_time)}(x)",
                "elif x is None:",
                f"    out[{key}] = ZERO_TIME",
                "else:",
                *_indent(generic),
            ]
        elif origin is list or origin is dict:
            kind = "list" if origin is list else "dict"
            item_tp = get_args(st)[-1]
            items = _items_expr(gen, kind, item_tp)
            body.append(f"if type(x) is {kind}:")
            body += (
                ["    if x:", f"        out[{key}] = {items}"] if omitempty else [f"    out[{key}] = {items}"]
            )
            body += [*none, "else:", *_indent(generic)]
        else:
            body += generic
    body += [
        "u = self.unknown_fields",
        "if type(u) is not dict or u:",
        "    for k, e in u.items():",
        "        out.setdefault(k, e)",
        "return out",
    ]
    return _compile(f"to_obj_{cls.__name__}", ["self"], body, gen.env)


def _items_expr(gen: _Gen, kind: str, item_tp: Any) -> str:
    """The generic encoding of the list or dict named ``x`` whose items (values) are of
    declared type ``item_tp``: a dict's keys sorted, as ``_encoder`` does."""
    st = _strip(item_tp)
    if st in _SCALARS:  # written as they are
        return "list(x)" if kind == "list" else "{k: x[k] for k in sorted(x)}"
    item = gen.name("item", _encoder(item_tp))
    if kind == "list":
        if _is_document(st):
            c, doc = gen.name("cls", st), gen.name("doc", _doc_encoder(st))
            return f"[{doc}(e) if type(e) is {c} else {item}(e) for e in x]"
        return f"[{item}(e) for e in x]"
    if _is_document(st):
        c, doc = gen.name("cls", st), gen.name("doc", _doc_encoder(st))
        return f"{{k: {doc}(e) if type(e := x[k]) is {c} else {item}(e) for k in sorted(x)}}"
    return f"{{k: {item}(x[k]) for k in sorted(x)}}"


install_compiled_codec(decoder, encoder)
