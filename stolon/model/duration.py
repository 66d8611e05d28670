"""Go ``time.Duration`` compatible durations.

Go Stolon writes durations in the cluster spec as the strings ``time.Duration.String()``
produces ("5s", "1m30s", "48h0m0s", "100ms") and parses them with ``time.ParseDuration``.
Both directions are reproduced exactly here so stored specs look the same whichever
implementation wrote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_TOKEN = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")
_MAX_NS = 2**63 - 1


class DurationError(ValueError):
    """A string that ``time.ParseDuration`` would refuse."""


@total_ordering
@dataclass(frozen=True, slots=True)
class Duration:
    """A signed duration in nanoseconds, like Go's ``time.Duration``."""

    ns: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(parse_go_duration(text))

    @classmethod
    def of(cls, *, hours: float = 0, minutes: float = 0, seconds: float = 0, ms: float = 0) -> Duration:
        return cls(int(hours * HOUR + minutes * MINUTE + seconds * SECOND + ms * MILLISECOND))

    @property
    def seconds(self) -> float:
        return self.ns / SECOND

    def __str__(self) -> str:
        return format_go_duration(self.ns)

    def __repr__(self) -> str:
        return f"Duration({format_go_duration(self.ns)!r})"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return self.ns < other.ns

    def __bool__(self) -> bool:
        return self.ns != 0


def parse_go_duration(text: str) -> int:
    """Parse like Go's ``time.ParseDuration``; return nanoseconds."""
    orig = text
    if not isinstance(text, str):
        raise DurationError(f"invalid duration {orig!r}")
    neg = False
    if text[:1] in ("-", "+"):
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise DurationError(f"invalid duration {orig!r}")
    total = 0
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.group(1) in ("", "."):
            raise DurationError(f"invalid duration {orig!r}")
        number, unit = m.group(1), m.group(2)
        if unit not in _UNITS:
            raise DurationError(f"unknown unit {unit!r} in duration {orig!r}")
        whole, _, frac = number.partition(".")
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // (10 ** len(frac))
        total += value
        if total > _MAX_NS:
            raise DurationError(f"invalid duration {orig!r}: overflow")
        pos = m.end()
    return -total if neg else total


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Format the ``prec`` low decimal digits of v as a fraction, trailing zeros trimmed."""
    digits = []
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits.append(str(digit))
        v //= 10
    frac = "".join(reversed(digits))
    return ("." + frac if frac else ""), v


def format_go_duration(ns: int) -> str:
    """Format like Go's ``time.Duration.String()``."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u < MICROSECOND:
            out = f"{u}ns"
        elif u < MILLISECOND:
            frac, whole = _fmt_frac(u, 3)
            out = f"{whole}{frac}µs"
        else:
            frac, whole = _fmt_frac(u, 6)
            out = f"{whole}{frac}ms"
    else:
        frac, secs = _fmt_frac(u, 9)
        out = f"{secs % 60}{frac}s"
        mins = secs // 60
        if mins > 0:
            out = f"{mins % 60}m" + out
            hours = mins // 60
            if hours > 0:
                out = f"{hours}h" + out
    return "-" + out if neg else out
