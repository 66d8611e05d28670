"""Time-bounded psycopg connections to the local instance (or any server).

Every connection has one deadline covering connect and all queries:

* connecting is bounded by libpq's ``connect_timeout`` (enforced by psycopg, also on unix
  sockets);
* on a normal connection the server cancels statements running past the deadline
  (``statement_timeout`` in the startup options);
* a watchdog timer shuts the socket down when the deadline passes, so even a server that
  does not answer at all (SIGSTOPped, hung storage) cannot block the caller: the blocked
  call fails at once and :class:`~stolon.postgres.errors.QueryTimeoutError` is raised.

The watchdog works on a ``dup`` of the socket taken when the connection opens and closed
with it, so it can never touch a descriptor reused by something else.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from stolon.postgres.errors import QueryError, QueryTimeoutError
from stolon.postgres.runas import scrub

log = logging.getLogger(__name__)

APPLICATION_NAME = "stolon-keeper"

Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class ConnectParams:
    """Where and as whom to connect. ``host`` may be a unix socket directory."""

    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)
    dbname: str = "postgres"
    #: ``"true"`` for a physical replication connection (walsender), else None
    replication: str | None = None
    application_name: str = APPLICATION_NAME

    def describe(self) -> str:
        kind = " (replication)" if self.replication else ""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}{kind}"


class _Watchdog:
    def __init__(self, conn: Connection, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        self._sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def disarm(self) -> None:
        with self._lock:
            self._done = True
            self._timer.cancel()
            self._sock.close()


@contextmanager
def connect(params: ConnectParams, timeout: float) -> Iterator[Connection]:
    """An autocommit connection, closed at the end of the block; see the module docstring.

    psycopg errors raised in the block come out as :class:`QueryError` (or
    :class:`QueryTimeoutError` when the deadline was the cause).
    """
    deadline = time.monotonic() + timeout
    kwargs: dict[str, Any] = {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "dbname": params.dbname,
        "application_name": params.application_name,
        "connect_timeout": max(2, math.ceil(timeout)),
        "autocommit": True,
    }
    if params.password:
        kwargs["password"] = params.password
    if params.replication:
        kwargs["replication"] = params.replication
    else:
        kwargs["options"] = f"-c statement_timeout={max(1, int(timeout * 1000))}"
    secrets = [params.password]
    try:
        conn = psycopg.connect(**kwargs)
    except psycopg.errors.ConnectionTimeout:
        raise QueryTimeoutError(f"connecting to {params.describe()} timed out after {timeout:g}s") from None
    except psycopg.Error as e:
        msg = scrub(str(e).strip(), secrets)
        raise QueryError(f"cannot connect to {params.describe()}: {msg}") from None
    watchdog = _Watchdog(conn, deadline - time.monotonic())
    try:
        yield conn
    except psycopg.Error as e:
        msg = scrub(str(e).strip(), secrets)
        if watchdog.fired or isinstance(e, psycopg.errors.QueryCanceled):
            raise QueryTimeoutError(
                f"query on {params.describe()} did not complete within {timeout:g}s: {msg}"
            ) from None
        raise QueryError(f"query on {params.describe()} failed: {msg}") from e
    finally:
        watchdog.disarm()
        conn.close()


def text(value: object) -> str:
    """A column value as str (replication connections return text columns as bytes)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()
    return str(value)
