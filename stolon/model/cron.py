"""Cron expressions for ``backup.schedule``: five fields, evaluated in UTC.

``minute hour day-of-month month day-of-week`` with ``*``, numbers, ranges ``a-b``,
steps ``*/n``, ``a-b/n`` and ``a/n``, lists ``a,b``, month and weekday names (``jan``,
``mon``), weekday 0 or 7 for Sunday, and the macros ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly``, ``@yearly`` (``@annually``). As in Vixie cron,
when both day fields are restricted a day matches if either does.

Pure: the sentinel asks for the latest slot at or before "now" (:meth:`CronSchedule.latest`)
and compares it with the last slot it acted on, so a backup is requested once per slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (  # name, low, high, names
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: how far :meth:`CronSchedule.latest` looks back before giving up (a Feb 30th never comes)
_SEARCH_DAYS = 366 * 5


class CronError(ValueError):
    """An expression that is not a valid cron schedule; the message says which field."""


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    def number(tok: str) -> int:
        tok = tok.lower()
        if tok in names:
            return names[tok]
        if not tok.isdigit():
            raise CronError(f"{name}: {tok!r} is not a number")
        n = int(tok)
        if not low <= n <= high:
            raise CronError(f"{name}: {n} is out of range {low}-{high}")
        return n

    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty list item in {text!r}")
        rng, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if rng == "*":
            lo, hi = low, high
        elif "-" in rng:
            a, _, b = rng.partition("-")
            lo, hi = number(a), number(b)
            if lo > hi:
                raise CronError(f"{name}: range {rng!r} goes backwards")
        else:
            lo = number(rng)
            hi = high if slash else lo
        out.update(range(lo, hi + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class CronSchedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        expr = _MACROS.get(text.strip().lower(), text.strip())
        parts = expr.split()
        if len(parts) != 5:
            raise CronError(
                f"{text!r} has {len(parts)} fields: use 5 (minute hour day-of-month month day-of-week),"
                ' e.g. "0 3 * * *" for 03:00 UTC every day'
            )
        sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            text=text,
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def matches(self, t: datetime) -> bool:
        t = t.astimezone(UTC)
        return (
            t.month in self.months
            and self._day_matches(t)
            and t.hour in self.hours
            and t.minute in self.minutes
        )

    def latest(self, now: datetime) -> datetime | None:
        """The latest slot (a whole minute, UTC) at or before ``now``, or None if none in
        the last five years."""
        t = now.astimezone(UTC).replace(second=0, microsecond=0)
        limit = t - timedelta(days=_SEARCH_DAYS)
        while t >= limit:
            if t.month not in self.months:
                t = t.replace(day=1, hour=0, minute=0) - timedelta(minutes=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) - timedelta(minutes=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) - timedelta(minutes=1)
            elif t.minute not in self.minutes:
                t -= timedelta(minutes=1)
            else:
                return t
        return None

    def next_after(self, now: datetime) -> datetime | None:
        """The first slot strictly after ``now``, or None if none in the next five years."""
        t = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=_SEARCH_DAYS)
        while t <= limit:
            if t.month not in self.months:
                nxt = t.replace(day=1, hour=0, minute=0) + timedelta(days=32)
                t = nxt.replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None
