"""Control characters: refusing them where text reaches a file, escaping them on a terminal.

Whatever a store holds is untrusted, and PostgreSQL's configuration files are line based:
a newline in a value, an address or a pg_hba entry would start a line of the writer's
choosing. A *control character* here is any character of Unicode category ``Cc`` (C0, DEL
and C1: newline, carriage return, NUL, ESC, CSI ...) except the horizontal tab, which
separates pg_hba fields and is harmless inside quotes.

For display, :func:`printable` also escapes the tab, format characters (``Cf``: bidi
overrides, zero-width characters) and the line/paragraph separators, so what a keeper
publishes cannot move the cursor, recolour, retitle the terminal (OSC) or forge lines of
``stolonctl status``.
"""

from __future__ import annotations

import unicodedata

_DISPLAY_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def is_control(char: str) -> bool:
    """``char`` is a control character in the sense of this module (the tab is not)."""
    return char != "\t" and unicodedata.category(char) == "Cc"


def control_chars(text: str) -> list[str]:
    """The control characters in ``text``, each once, in order of appearance."""
    seen: list[str] = []
    for c in text:
        if is_control(c) and c not in seen:
            seen.append(c)
    return seen


def check_no_control(text: str, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``text`` holds a control character."""
    bad = control_chars(text)
    if bad:
        shown = ", ".join(_escape_char(c) for c in bad)
        raise ValueError(f"{what} contains a control character ({shown}): remove it")


def _escape_char(c: str) -> str:
    code = ord(c)
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    if c == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` fit for a terminal: control, format and separator characters (and ``\\``,
    so the escaping is unambiguous) written as Python-style escapes; other text unchanged."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif unicodedata.category(c) in _DISPLAY_ESCAPED_CATEGORIES:
            out.append(_escape_char(c))
        else:
            out.append(c)
    return "".join(out)
