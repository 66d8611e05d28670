"""Bounds on the JSON documents we read: size and nesting depth.

Everything in the store is untrusted input, and so is what an operator pipes into stolonctl.
Python's JSON decoder recurses once per nesting level, so a few kilobytes of ``[[[[...`` raise
``RecursionError`` (not a ``ValueError``), and a document of hundreds of megabytes takes
seconds and gigabytes to parse on every cycle of every component. :func:`parse_json` checks
both before anything else looks at a document and turns every way a document can be bad into
one :class:`~stolon.model.errors.ModelError` naming the problem.

The limits (docs/security.md, "Bad input and malformed documents"):

- cluster data, and a cluster spec given to stolonctl: :data:`MAX_DOCUMENT_BYTES` (4 MiB).
  A cluster data of 100 keepers, each DB with 40 ``pgParameters``, is about 500 KB; etcd
  refuses values above 1.5 MiB by default anyway.
- an info a daemon publishes (keeper, sentinel, proxy): :data:`MAX_INFO_BYTES` (256 KiB); a
  keeper info is 1 to 3 KB.
- nesting: :data:`MAX_DEPTH` (32) levels of objects and arrays; Go Stolon's documents use 7.
"""

from __future__ import annotations

import json
from typing import Any

from stolon.model.errors import ModelError

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_INFO_BYTES = 256 * 1024
MAX_DEPTH = 32


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} bytes"


_CONTAINERS = (dict, list)


def depth_of(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), without recursion; stops
    counting once past ``limit``. Walks a level at a time and keeps only the containers of
    the next one (half the time of a stack of every value: a keeper reads the cluster data
    twice a second at rest). ``isinstance`` with a tuple: a quarter faster than with
    ``dict | list``."""
    level: list[Any] = [obj] if isinstance(obj, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return depth
        children: list[Any] = []
        for value in level:
            children.extend(value.values() if isinstance(value, dict) else value)
        level = [c for c in children if isinstance(c, _CONTAINERS)]
    return depth


def parse_json(
    data: str | bytes, what: str, *, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Decode ``data`` (a document called ``what`` in errors) within the size and depth
    limits; every failure is a :class:`ModelError` with a one-line message."""
    if len(data) > max_bytes:
        raise ModelError(
            "",
            f"{what} is {len(data)} bytes, more than the {max_bytes} bytes ({_size(max_bytes)})"
            " a document may have",
        )
    try:
        obj = json.loads(data)
    except RecursionError:
        raise ModelError("", f"{what} is nested more than {max_depth} levels deep") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, int digit limit, bad UTF-8
        raise ModelError("", f"{what} is not valid JSON: {e}") from None
    if depth_of(obj, max_depth) > max_depth:
        raise ModelError("", f"{what} is nested more than {max_depth} levels deep")
    return obj
