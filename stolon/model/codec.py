"""A small JSON codec for the model: Go ``encoding/json`` semantics on Python dataclasses.

Why not a generic library: the documents must look exactly like Go Stolon's (key names,
``omitempty`` rules, ``null`` versus ``[]``, Go duration and time strings), unknown keys
must survive a load/store round trip (cluster data written by Go Stolon or by a newer
version of ours), and user input needs strict checking with errors that name the field
path. All three are a few lines each here.

Rules, following Go:
- A field with ``omitempty`` is left out when it is ``None``, ``""``, ``0``, ``False`` or an
  empty list/dict. Nested documents, durations that are not optional and times are Go
  structs and are never left out.
- A time that is ``None`` is Go's zero time and is written as ``0001-01-01T00:00:00Z``.
- A field without ``omitempty`` whose value is ``None`` is written as ``null``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar, get_args, get_origin

from stolon.model import gojson
from stolon.model.duration import Duration, DurationError
from stolon.model.errors import ModelError
from stolon.model.gotime import format_go_time, parse_go_time
from stolon.model.limits import MAX_DOCUMENT_BYTES, parse_json


@dataclasses.dataclass(frozen=True)
class Range:
    """Inclusive integer bounds, used as ``Annotated[int, Range(lo, hi)]``."""

    lo: int
    hi: int
    name: str


U16 = typing.Annotated[int, Range(0, 2**16 - 1, "uint16")]
U32 = typing.Annotated[int, Range(0, 2**32 - 1, "uint32")]
U64 = typing.Annotated[int, Range(0, 2**64 - 1, "uint64")]
I64 = typing.Annotated[int, Range(-(2**63), 2**63 - 1, "int64")]


@dataclasses.dataclass(frozen=True)
class _JsonMeta:
    key: str
    omitempty: bool


def jf(
    key: str,
    *,
    omitempty: bool = True,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
) -> Any:
    """Declare a dataclass field stored under JSON key ``key``."""
    meta = {"json": _JsonMeta(key, omitempty)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if default is MISSING:
        default = None
    return dataclasses.field(default=default, metadata=meta)


D = TypeVar("D", bound="Document")


@dataclasses.dataclass(kw_only=True)
class Document:
    """Base of every model object. Subclasses are ``@dataclass(kw_only=True)``."""

    #: Keys this version does not know, kept so a write does not drop them.
    unknown_fields: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    _fields_cache: ClassVar[dict[type, list[tuple[str, _JsonMeta, Any]]]] = {}

    @classmethod
    def _json_fields(cls) -> list[tuple[str, _JsonMeta, Any]]:
        cached = Document._fields_cache.get(cls)
        if cached is None:
            hints = typing.get_type_hints(cls, include_extras=True)
            cached = [
                (f.name, f.metadata["json"], hints[f.name])
                for f in dataclasses.fields(cls)
                if "json" in f.metadata
            ]
            Document._fields_cache[cls] = cached
        return cached

    @classmethod
    def json_keys(cls) -> list[str]:
        return [meta.key for _, meta, _ in cls._json_fields()]

    # -- decoding ---------------------------------------------------------------------------
    @classmethod
    def from_obj(cls, obj: Any, *, strict: bool = False, path: str = "") -> Self:
        """Decode a JSON object (``strict``: refuse unknown keys, user input).

        Not strict (what the daemons do on every read), a decoder compiled for the class
        (:mod:`stolon.model.fastcodec`) is tried first; on anything it is not sure about it
        gives up and :meth:`_from_obj_generic` decodes, so the result and the errors are that
        of the generic path whichever ran."""
        if not strict:
            fast = _fast_decoders.get(cls)
            if fast is None:
                fast = _fast_decoder(cls)
            try:
                return fast(obj)  # type: ignore[no-any-return]
            except NotFast:
                pass
        return cls._from_obj_generic(obj, strict=strict, path=path)

    @classmethod
    def _from_obj_generic(cls, obj: Any, *, strict: bool = False, path: str = "") -> Self:
        if not isinstance(obj, dict):
            raise ModelError(path, f"expected a JSON object, got {_describe(obj)}")
        kwargs: dict[str, Any] = {}
        known: set[str] = set()
        for name, meta, tp in cls._json_fields():
            known.add(meta.key)
            if meta.key in obj:
                kwargs[name] = _decode(tp, obj[meta.key], _join(path, meta.key), strict)
        unknown = {k: v for k, v in obj.items() if k not in known}
        if unknown and strict:
            key = sorted(unknown)[0]
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            fix = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise ModelError(_join(path, key), f"unknown field{fix}")
        return cls(unknown_fields=unknown, **kwargs)

    @classmethod
    def check_patch(cls, patch: dict[str, Any], path: str = "") -> None:
        """Strictly check an RFC 7386 merge patch against this document type.

        ``null`` values (deletions) are accepted for any known field; every other value
        must have the field's type, and nested objects are checked recursively.
        """
        fields = {meta.key: tp for _, meta, tp in cls._json_fields()}
        for key, value in patch.items():
            sub = _join(path, key)
            if key not in fields:
                hint = difflib.get_close_matches(key, sorted(fields), n=1)
                fix = f' (did you mean "{hint[0]}"?)' if hint else ""
                raise ModelError(sub, f"unknown field{fix}")
            if value is None:
                continue
            target = _strip(fields[key])
            if isinstance(target, type) and issubclass(target, Document) and isinstance(value, dict):
                target.check_patch(value, sub)
            else:
                _decode(fields[key], value, sub, strict=True)

    @classmethod
    def loads(cls, text: str | bytes, *, strict: bool = False, max_bytes: int | None = None) -> Self:
        """Parse a JSON document within the size and depth limits of
        :mod:`stolon.model.limits` (``max_bytes`` overrides the size limit)."""
        obj = parse_json(text, "the document", max_bytes=max_bytes or MAX_DOCUMENT_BYTES)
        return cls.from_obj(obj, strict=strict)

    # -- encoding ---------------------------------------------------------------------------
    def to_obj(self) -> dict[str, Any]:
        """The JSON object of the document (Go's field order and ``omitempty``, unknown keys
        after the known ones): made by an encoder compiled for the class
        (:mod:`stolon.model.fastcodec`), which gives what :meth:`_to_obj_generic` gives."""
        enc = _fast_encoders.get(type(self))
        if enc is None:
            enc = _fast_encoder(type(self))
        return enc(self)  # type: ignore[no-any-return]

    def _to_obj_generic(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key, omitempty, empty, encode in self._encode_plan():
            value = getattr(self, name)
            if omitempty and empty(value):
                continue
            out[key] = encode(value)
        for k, v in self.unknown_fields.items():
            out.setdefault(k, v)
        return out

    _plan_cache: ClassVar[
        dict[type, list[tuple[str, str, bool, Callable[[Any], bool], Callable[[Any], Any]]]]
    ] = {}

    @classmethod
    def _encode_plan(cls) -> list[tuple[str, str, bool, Callable[[Any], bool], Callable[[Any], Any]]]:
        """Per field: attribute, JSON key, omitempty, its emptiness test and its encoder (the
        type analysis of :meth:`to_obj`, done once per class)."""
        cached = Document._plan_cache.get(cls)
        if cached is None:
            cached = [
                (name, meta.key, meta.omitempty, _emptiness(tp), _encoder(tp))
                for name, meta, tp in cls._json_fields()
            ]
            Document._plan_cache[cls] = cached
        return cached

    def dumps(self, *, indent: str | None = None) -> str:
        """JSON text as Go writes it (:mod:`stolon.model.gojson`: ``<``, ``>``, ``&`` escaped
        as ``\\u003c``...): compact like ``json.Marshal`` unless ``indent`` is given."""
        return gojson.dumps(self.to_obj(), indent=indent)

    def to_bytes(self) -> bytes:
        return self.dumps().encode()

    def copy(self) -> Self:
        """A deep copy (through JSON, so it is exactly what a store round trip gives)."""
        return type(self).from_obj(json.loads(self.dumps()))


class NotFast(Exception):
    """A value a compiled fast path does not handle: the caller takes the generic path."""


#: The compiled decoders and encoders of the document classes, made at first use by the
#: makers :mod:`stolon.model.fastcodec` installs when it is imported (the package
#: ``stolon.model`` imports it): until then every class takes the generic path.
_fast_decoders: dict[type, Callable[[Any], Any]] = {}
_fast_encoders: dict[type, Callable[[Any], Any]] = {}


@dataclasses.dataclass
class _Makers:
    decoder: Callable[[type[Document]], Callable[[Any], Any]] | None = None
    encoder: Callable[[type[Document]], Callable[[Any], Any]] | None = None


_makers = _Makers()


def install_compiled_codec(
    decoder: Callable[[type[Document]], Callable[[Any], Any]],
    encoder: Callable[[type[Document]], Callable[[Any], Any]],
) -> None:
    """Have ``from_obj`` (not strict) and ``to_obj`` use the functions ``decoder(cls)`` and
    ``encoder(cls)`` make (they must give what the generic path gives, or NotFast)."""
    _makers.decoder = decoder
    _makers.encoder = encoder


def _refuse(obj: Any) -> Any:
    raise NotFast


def _fast_decoder(cls: type[Document]) -> Callable[[Any], Any]:
    return _refuse if _makers.decoder is None else _makers.decoder(cls)


def _fast_encoder(cls: type[Document]) -> Callable[[Any], Any]:
    return Document._to_obj_generic if _makers.encoder is None else _makers.encoder(cls)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_empty(tp: Any, value: Any) -> bool:
    """Go's omitempty: optional scalars and documents are Go pointers (only nil is empty);
    lists and dicts are Go slices and maps (nil or zero length is empty)."""
    return _emptiness(tp)(value)


@functools.cache
def _emptiness(tp: Any) -> Callable[[Any], bool]:
    """:func:`_is_empty` for one field type, its type analysis done once."""
    if _is_time_type(tp):
        return lambda v: False  # a Go time.Time is a struct: never omitted
    if _is_optional(tp):  # a Go pointer: only nil is empty (a slice or map: also zero length)
        return lambda v: v is None or (isinstance(v, list | dict) and not v)

    def empty(v: Any) -> bool:
        if v is None:
            return True
        if isinstance(v, Document | Duration | datetime):
            return False
        if isinstance(v, bool | str | int | float | list | dict):
            return not v
        return False

    return empty


def _decode(tp: Any, value: Any, path: str, strict: bool) -> Any:
    return _decoder(tp)(value, path, strict)


Decoder = Callable[[Any, str, bool], Any]


@functools.cache
def _decoder(tp: Any) -> Decoder:
    """The decoding function of one model type (its type analysis done once, cached)."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        base, *extras = get_args(tp)
        inner = _decoder(base)
        ranges = [e for e in extras if isinstance(e, Range)]

        def annotated(value: Any, path: str, strict: bool) -> Any:
            result = inner(value, path, strict)
            for extra in ranges:
                if result is not None and not extra.lo <= result <= extra.hi:
                    raise ModelError(
                        path, f"{result} is out of range for a {extra.name} ({extra.lo}..{extra.hi})"
                    )
            return result

        return annotated
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        inner_opt = _decoder(args[0])

        def optional(value: Any, path: str, strict: bool) -> Any:
            return None if value is None else inner_opt(value, path, strict)

        return optional
    if tp is Any:
        return lambda value, path, strict: value
    if origin is list:
        (item_tp,) = get_args(tp)
        item = _decoder(item_tp)

        def array(value: Any, path: str, strict: bool) -> Any:
            if value is None:
                return None
            if not isinstance(value, list):
                raise ModelError(path, f"expected an array, got {_describe(value)}")
            return [item(v, f"{path}[{i}]", strict) for i, v in enumerate(value)]

        return array
    if origin is dict:
        _, val_tp = get_args(tp)
        val = _decoder(val_tp)

        def mapping(value: Any, path: str, strict: bool) -> Any:
            if value is None:
                return None
            if not isinstance(value, dict):
                raise ModelError(path, f"expected an object, got {_describe(value)}")
            return {k: val(v, _join(path, k), strict) for k, v in value.items()}

        return mapping
    if isinstance(tp, type) and issubclass(tp, Document):
        doc: type[Document] = tp

        def document(value: Any, path: str, strict: bool) -> Any:
            if value is None:
                return None
            return doc.from_obj(value, strict=strict, path=path)

        return document
    if tp is Duration:
        return _decode_duration
    if tp is datetime:
        return _decode_time
    if tp is bool:
        return _decode_bool
    if tp is int:
        return _decode_int
    if tp is float:
        return _decode_float
    if tp is str:
        return _decode_str

    def unsupported(value: Any, path: str, strict: bool) -> Any:
        raise TypeError(f"unsupported model type {tp!r} at {path}")

    return unsupported


def _decode_duration(value: Any, path: str, strict: bool) -> Any:
    if not isinstance(value, str):
        raise ModelError(path, f'expected a duration string such as "5s", got {_describe(value)}')
    try:
        return Duration.parse(value)
    except DurationError as e:
        raise ModelError(path, f'{e} (use a Go duration such as "5s", "1m30s" or "100ms")') from None


def _decode_time(value: Any, path: str, strict: bool) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ModelError(path, f"expected an RFC 3339 time string, got {_describe(value)}")
    try:
        return parse_go_time(value)
    except ValueError as e:
        raise ModelError(path, str(e)) from None


def _decode_bool(value: Any, path: str, strict: bool) -> Any:
    if not isinstance(value, bool):
        raise ModelError(path, f"expected true or false, got {_describe(value)}")
    return value


def _decode_int(value: Any, path: str, strict: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and not strict:
            return int(value)
        raise ModelError(path, f"expected an integer, got {_describe(value)}")
    return value


def _decode_float(value: Any, path: str, strict: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(path, f"expected a number, got {_describe(value)}")
    return float(value)


def _decode_str(value: Any, path: str, strict: bool) -> Any:
    if not isinstance(value, str):
        raise ModelError(path, f"expected a string, got {_describe(value)}")
    return value


@functools.cache
def _encoder(tp: Any) -> Callable[[Any], Any]:
    """The encoding function of one declared field type (what :func:`_encode` does, with the
    type analysis done once); a value of another type than declared falls back to it."""
    st = _strip(tp)
    origin = get_origin(st)
    if isinstance(st, type) and issubclass(st, Document):
        return lambda v: v.to_obj() if isinstance(v, Document) else _encode(tp, v)
    if st is Duration:
        return lambda v: str(v) if isinstance(v, Duration) else _encode(tp, v)
    if st is datetime:
        return lambda v: format_go_time(v) if v is None or isinstance(v, datetime) else _encode(tp, v)
    if origin is list:
        (item_tp,) = get_args(st)
        item = _encoder(item_tp)

        def array(v: Any) -> Any:
            if isinstance(v, list):
                return [item(x) for x in v]
            return _encode(tp, v)

        return array
    if origin is dict:
        _, val_tp = get_args(st)
        val = _encoder(val_tp)

        def mapping(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: val(v[k]) for k in sorted(v)}
            return _encode(tp, v)

        return mapping
    if st in (str, int, bool, float):
        return lambda v: v
    return lambda v: _encode(tp, v)


def _encode(tp: Any, value: Any) -> Any:
    if isinstance(value, Document):
        return value.to_obj()
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, datetime):
        return format_go_time(value)
    if value is None:
        return format_go_time(None) if _is_time_type(tp) else None
    if isinstance(value, list):
        item_tp = _container_args(tp, list)
        return [_encode(item_tp[0] if item_tp else Any, v) for v in value]
    if isinstance(value, dict):
        args = _container_args(tp, dict)
        val_tp = args[1] if args else Any
        return {k: _encode(val_tp, value[k]) for k in sorted(value)}
    return value


@functools.cache  # type introspection, the same few types on every call
def _is_optional(tp: Any) -> bool:
    if get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


@functools.cache  # type introspection, the same few types on every call
def _strip(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else Any
        else:
            return tp


@functools.cache  # type introspection, the same few types on every call
def _is_time_type(tp: Any) -> bool:
    return _strip(tp) is datetime


@functools.cache  # type introspection, the same few types on every call
def _container_args(tp: Any, kind: type) -> tuple[Any, ...]:
    tp = _strip(tp)
    if get_origin(tp) is kind:
        return get_args(tp)
    return ()


def load_json_object(text: str | bytes, what: str) -> dict[str, Any]:
    """Parse user-supplied JSON that must be an object (within the limits of
    :mod:`stolon.model.limits`); errors name ``what``."""
    obj = parse_json(text, what)
    if not isinstance(obj, dict):
        raise ModelError("", f"{what} must be a JSON object, got {_describe(obj)}")
    return obj
