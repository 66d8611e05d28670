"""Reading a backup method's ``settings`` (a JSON object from the cluster spec) strictly.

Each method's factory wraps its settings in :class:`Settings`, declares the keys it knows
and reads them with typed getters; anything unknown, missing, of the wrong type or holding
a control character raises :class:`~stolon.backup.base.BackupConfigError` with a one-line
message naming ``backup.settings.<key>`` and the fix::

    s = Settings("walg", raw, known=("prefix", "compression", "envFile"))
    prefix = s.string("prefix", required=True)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stolon.backup.base import BackupConfigError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Settings:
    def __init__(
        self, method: str, raw: Mapping[str, Any] | None, known: Iterable[str], path: str = "backup.settings"
    ) -> None:
        self.method = method
        self.path = path
        self.raw: dict[str, Any] = dict(raw or {})
        self.known = tuple(known)
        for key in self.raw:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"the {method} method takes: {', '.join(self.known)}"
                )
                raise BackupConfigError(f"{self.path}.{key}: unknown setting ({hint})")

    def _fail(self, key: str, message: str) -> BackupConfigError:
        return BackupConfigError(f"{self.path}.{key}: {message}")

    def string(self, key: str, *, default: str = "", required: bool = False, example: str = "") -> str:
        value = self.raw.get(key)
        if value is None:
            if required:
                hint = f", e.g. {example!r}" if example else ""
                raise self._fail(key, f"is required by the {self.method} method{hint}")
            return default
        if not isinstance(value, str):
            raise self._fail(key, f"must be a string (got {type(value).__name__})")
        if _CONTROL.search(value):
            raise self._fail(key, "must not contain control characters (newlines, tabs, escapes)")
        if required and not value:
            raise self._fail(key, f"must not be empty for the {self.method} method")
        return value

    def integer(
        self, key: str, *, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer (got {value!r})")
        if minimum is not None and value < minimum:
            raise self._fail(key, f"must be at least {minimum} (got {value})")
        if maximum is not None and value > maximum:
            raise self._fail(key, f"must be at most {maximum} (got {value})")
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false (got {value!r})")
        return value

    def choice(self, key: str, choices: Iterable[str], *, default: str) -> str:
        options = tuple(choices)
        value = self.string(key, default=default)
        if value not in options:
            raise self._fail(key, f"unknown value {value!r}: use one of {', '.join(options)}")
        return value

    def abs_path(self, key: str, *, required: bool = False, default: str = "") -> Path | None:
        value = self.string(key, required=required, default=default)
        if not value:
            return None
        p = Path(value)
        if not p.is_absolute():
            raise self._fail(key, f"must be an absolute path (got {value!r})")
        return p

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self._fail(key, 'must be an object of strings, e.g. {"NAME": "value"}')
        for k, v in value.items():
            if _CONTROL.search(k) or _CONTROL.search(v):
                raise self._fail(key, f"entry {k!r} contains a control character")
        return dict(value)
