"""JSON text as Go's ``encoding/json`` writes it (``json.Marshal`` and ``json.MarshalIndent``).

Go Stolon stores its documents with ``json.Marshal`` and stolonctl prints them with
``json.MarshalIndent(v, "", "\\t")``; Python's ``json.dumps`` differs in its string escapes.
Go's encoder (the version Go Stolon's releases were built with, before Go 1.22):

- escapes ``"`` and ``\\`` with a backslash, and ``\\n``, ``\\r``, ``\\t`` by name;
- escapes every other character below U+0020 as ``\\u00XX`` (lower-case hex; so ``\\b``
  and ``\\f`` are ``\\u0008`` and ``\\u000c``: named escapes for them came with Go 1.22);
- escapes ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026`` (HTML-safe, the
  default of ``Marshal``) and U+2028/U+2029 as ``\\u2028``/``\\u2029``;
- replaces invalid UTF-8 (here: a lone surrogate) with ``\\ufffd``;
- writes every other character as itself, in UTF-8.

Object keys are written in the order of the dict (callers build Go's order: struct fields
in declaration order, map keys sorted). ``MarshalIndent`` puts each element on its own
line, ``"key": value`` with one space, and writes empty objects and arrays as ``{}``/``[]``.

``terminal_safe`` is ours, for what stolonctl prints: it also escapes (as ``\\uXXXX``)
DEL, C1 controls, format characters (bidi overrides, zero-width), private-use and
separator characters, which Go prints raw. The text decodes to the same values.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

_NAMED = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: what Go always escapes: see the module docstring
_GO_ESCAPED = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')
_TERMINAL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs"})


def _u(code: int) -> str:
    return f"\\u{code:04x}"


def _go_escape(m: re.Match[str]) -> str:
    c = m.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    if "\ud800" <= c <= "\udfff":
        return "\\ufffd"
    return _u(ord(c))


def _terminal_escape(c: str) -> str:
    code = ord(c)
    if code <= 0xFFFF:
        return _u(code)
    code -= 0x10000
    return _u(0xD800 + (code >> 10)) + _u(0xDC00 + (code & 0x3FF))


def quote(text: str, *, terminal_safe: bool = False) -> str:
    """A JSON string literal, escaped as Go's encoder escapes it."""
    out = _GO_ESCAPED.sub(_go_escape, text)
    if terminal_safe and not out.isascii():
        out = "".join(
            _terminal_escape(c) if ord(c) >= 0x7F and unicodedata.category(c) in _TERMINAL_CATEGORIES else c
            for c in out
        )
    elif terminal_safe and "\x7f" in out:
        out = out.replace("\x7f", _u(0x7F))
    return '"' + out + '"'


def dumps(value: Any, *, indent: str | None = None, terminal_safe: bool = False) -> str:
    """``json.Marshal(value)`` (compact), or ``json.MarshalIndent(value, "", indent)``.

    The C encoder does the work; its output is fixed up by replacing characters that can
    only occur inside strings. What replacing cannot fix goes through :func:`_write`.
    """
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators)
    if _needs_slow_path(text) or (terminal_safe and (not text.isascii() or "\x7f" in text)):
        return slow_dumps(value, indent=indent, terminal_safe=terminal_safe)
    for raw, escaped in _FAST_REPLACEMENTS:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def _needs_slow_path(text: str) -> bool:
    """Python's output holds what replacing characters cannot fix: a named ``\\b``/``\\f``
    escape (or a backslash before a ``b``/``f``: harmless, takes the slow path) or a lone
    surrogate (which cannot be encoded to UTF-8)."""
    if "\\b" in text or "\\f" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_FAST_REPLACEMENTS = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def slow_dumps(value: Any, *, indent: str | None = None, terminal_safe: bool = False) -> str:
    """:func:`dumps`, written value by value (the reference the fast path is tested against)."""
    parts: list[str] = []
    _write(parts, value, indent, "", terminal_safe)
    return "".join(parts)


def _write(parts: list[str], value: Any, indent: str | None, prefix: str, safe: bool) -> None:
    if isinstance(value, str):
        parts.append(quote(value, terminal_safe=safe))
    elif value is None or isinstance(value, bool | int | float):
        parts.append(json.dumps(value))
    elif isinstance(value, dict):
        if not value:
            parts.append("{}")
            return
        inner = None if indent is None else prefix + indent
        parts.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                parts.append(",")
            if inner is not None:
                parts.append("\n" + inner)
            parts.append(quote(str(k), terminal_safe=safe))
            parts.append(":" if indent is None else ": ")
            _write(parts, v, indent, inner or "", safe)
        if inner is not None:
            parts.append("\n" + prefix)
        parts.append("}")
    elif isinstance(value, list | tuple):
        if not value:
            parts.append("[]")
            return
        inner = None if indent is None else prefix + indent
        parts.append("[")
        for i, v in enumerate(value):
            if i:
                parts.append(",")
            if inner is not None:
                parts.append("\n" + inner)
            _write(parts, v, indent, inner or "", safe)
        if inner is not None:
            parts.append("\n" + prefix)
        parts.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")
