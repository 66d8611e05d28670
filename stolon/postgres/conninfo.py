"""libpq connection strings (``key=value`` form) and password files.

:class:`ConnInfo` renders values quoted the libpq way (``'...'`` with ``\\`` and ``'``
backslash-escaped) and sorts keys so equal settings give equal strings (the keeper compares
``primary_conninfo`` values to decide on a restart). Its ``str()``/``repr()`` hide the
password, so a ConnInfo can be logged; :meth:`ConnInfo.to_string` is the real thing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from stolon.model.text import check_no_control
from stolon.postgres.runas import REDACTED

_NEEDS_QUOTES = frozenset(" \t\n\r\v\f'\\")


def quote_value(value: str) -> str:
    """A conninfo value: bare when safe, else single-quoted with ``\\`` and ``'`` escaped."""
    if value and not any(c in _NEEDS_QUOTES for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ConnInfo(Mapping[str, str]):
    """An immutable set of libpq connection parameters."""

    __slots__ = ("_params",)

    def __init__(self, params: Mapping[str, str] | None = None, **kwargs: str) -> None:
        merged = dict(params or {})
        merged.update(kwargs)
        for k, v in merged.items():
            if not k or not k.replace("_", "").isalnum():
                raise ValueError(f"bad connection parameter name {k!r}")
            if not isinstance(v, str):
                raise TypeError(f"connection parameter {k!r} must be a string")
            check_no_control(v, f"connection parameter {k}")
        self._params = merged

    def __getitem__(self, key: str) -> str:
        return self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConnInfo):
            return self._params == other._params
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._params.items()))

    def with_params(self, **kwargs: str) -> ConnInfo:
        return ConnInfo(self._params, **kwargs)

    def without(self, *keys: str) -> ConnInfo:
        return ConnInfo({k: v for k, v in self._params.items() if k not in keys})

    def to_string(self) -> str:
        """The full connection string, keys sorted, empty values left out (as Go does)."""
        return " ".join(f"{k}={quote_value(v)}" for k, v in sorted(self._params.items()) if v)

    def redacted(self) -> str:
        """:meth:`to_string` with the password replaced by asterisks."""
        if self._params.get("password"):
            return self.with_params(password=REDACTED).to_string()
        return self.to_string()

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"ConnInfo({self.redacted()!r})"


def parse_conninfo(text: str) -> ConnInfo:
    """Parse a ``key=value ...`` string with libpq's rules (``conninfo_parse``).

    URIs (``postgresql://``) are not handled here.
    """
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and not text[i].isspace() and text[i] != "=":
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            raise ValueError(f'missing "=" after {key!r} in connection info string')
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ValueError("unterminated quoted string in connection info string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                elif c == "'":
                    i += 1
                    break
                else:
                    value.append(c)
                    i += 1
        else:
            while i < n and not text[i].isspace():
                c = text[i]
                if c == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                else:
                    value.append(c)
                    i += 1
        params[key] = "".join(value)
    return ConnInfo(params)


def redact_conninfo_string(text: str) -> str:
    """A user-supplied conninfo fit for a log line (unparsable input is hidden entirely)."""
    try:
        return parse_conninfo(text).redacted()
    except ValueError:
        return "<unparsable conninfo>"


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(user: str, password: str, host: str = "*", port: str = "*") -> str:
    """One ``.pgpass`` line matching any database (``:`` and ``\\`` escaped)."""
    return (
        ":".join(
            [
                host if host == "*" else _pgpass_field(host),
                port if port == "*" else _pgpass_field(port),
                "*",
                _pgpass_field(user),
                _pgpass_field(password),
            ]
        )
        + "\n"
    )
