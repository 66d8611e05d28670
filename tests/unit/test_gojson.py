"""stolon.model.gojson writes JSON text as Go's encoding/json does.

Expected bytes follow Go's ``encodeState.string`` (encoding/json/encode.go, before Go 1.22:
``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t`` named, other bytes below 0x20 as ``\\u00XX`` in
lower-case hex, ``<`` ``>`` ``&`` as ``\\u003c`` ``\\u003e`` ``\\u0026`` because ``Marshal``
is HTML-safe, U+2028/U+2029 escaped, invalid UTF-8 as ``\\ufffd``, everything else raw) and
``MarshalIndent``'s layout.
"""

from __future__ import annotations

import json
import random

import pytest

from stolon.model import gojson


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a<b>&c", '"a\\u003cb\\u003e\\u0026c"'),
        ("host all all 0.0.0.0/0 md5", '"host all all 0.0.0.0/0 md5"'),
        ('q"\\', '"q\\"\\\\"'),
        ("\n\r\t", '"\\n\\r\\t"'),
        ("\b\f\x00\x1f", '"\\u0008\\u000c\\u0000\\u001f"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("é€😀\x7f\x9b\u202e", '"é€😀\x7f\x9b\u202e"'),
        ("\ud800x", '"\\ufffdx"'),
        ("\\b", '"\\\\b"'),
    ],
)
def test_strings_are_escaped_as_go_escapes_them(text: str, expected: str) -> None:
    assert gojson.dumps(text) == expected
    assert gojson.slow_dumps(text) == expected
    if "\ud800" not in text:
        assert json.loads(expected) == text


def test_terminal_safe_escapes_what_could_drive_a_terminal() -> None:
    """Ours (stolonctl's output): DEL, C1, format and separator characters as \\uXXXX."""
    text = "é\x7f\x9b\u202e\U000e0001"
    out = gojson.dumps(text, terminal_safe=True)
    assert out == '"é\\u007f\\u009b\\u202e\\udb40\\udc01"'
    assert json.loads(out) == text


def test_marshal_indent_layout() -> None:
    """Go: ``json.MarshalIndent(v, "", "\\t")``: one element per line, ``"key": value``,
    ``{}`` and ``[]`` for empty ones, keys in the given order."""
    value = {"b": [1, {"x": None}], "a": {}, "c": [], "d": True, "e": "<"}
    expected = '{\n\t"b": [\n\t\t1,\n\t\t{\n\t\t\t"x": null\n\t\t}\n\t],\n\t"a": {},\n\t"c": [],\n\t"d": true,\n\t"e": "\\u003c"\n}'
    assert gojson.dumps(value, indent="\t") == expected
    assert gojson.slow_dumps(value, indent="\t") == expected
    assert gojson.dumps(value) == '{"b":[1,{"x":null}],"a":{},"c":[],"d":true,"e":"\\u003c"}'


def test_fast_path_equals_the_reference() -> None:
    rng = random.Random(15)
    alphabet = 'ab<>&"\\\n\t\b\f\x00\x1f\x7f\x9bé\u2028\u202e😀 /'
    for _ in range(2000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        value = {"k" + s: [s, {"n": 1, s: s}]}
        for indent in (None, "\t"):
            for safe in (False, True):
                fast = gojson.dumps(value, indent=indent, terminal_safe=safe)
                assert fast == gojson.slow_dumps(value, indent=indent, terminal_safe=safe), repr(s)
                assert json.loads(fast) == value
