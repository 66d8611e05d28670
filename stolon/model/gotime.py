"""Go ``time.Time`` JSON encoding (RFC 3339 with trimmed fractional seconds).

Go encodes the zero time as ``0001-01-01T00:00:00Z`` and, because ``omitempty`` has no
effect on structs, always emits it. Here the zero time is ``None``. Sub-microsecond digits
written by Go are dropped on load (Python's datetime has microsecond precision).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

GO_ZERO_TIME = "0001-01-01T00:00:00Z"

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_go_time(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp; the Go zero time gives ``None``."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid RFC 3339 time {text!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if (year, month, day, hour, minute, second) == (1, 1, 1, 0, 0, 0) and not (m.group(7) or "").strip("0"):
        return None
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    offset = m.group(8)
    if offset in ("Z", "z"):
        tz: timezone = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    return datetime(year, month, day, hour, minute, second, int(frac), tzinfo=tz)


def format_go_time(value: datetime | None) -> str:
    """Format like Go's ``time.Time.MarshalJSON`` (RFC 3339 with nanosecond precision)."""
    if value is None:
        return GO_ZERO_TIME
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        base += ("." + f"{value.microsecond:06d}").rstrip("0")
    offset = value.utcoffset()
    if not offset:
        return base + "Z"
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{base}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def now_utc() -> datetime:
    return datetime.now(UTC)
