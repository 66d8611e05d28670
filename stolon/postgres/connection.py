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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from stolon.postgres.errors import QueryError, QueryTimeoutError
from stolon.postgres.runas import scrub

log = logging.getLogger(__name__)

APPLICATION_NAME = "stolon-keeper"

Connection = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")


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


def _open(params: ConnectParams, timeout: float) -> Connection:
    """An autocommit connection whose statements the server cancels after ``timeout``."""
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
    try:
        return psycopg.connect(**kwargs)
    except psycopg.errors.ConnectionTimeout:
        raise QueryTimeoutError(f"connecting to {params.describe()} timed out after {timeout:g}s") from None
    except psycopg.Error as e:
        msg = scrub(str(e).strip(), [params.password])
        raise QueryError(f"cannot connect to {params.describe()}: {msg}") from None


@contextmanager
def connect(params: ConnectParams, timeout: float) -> Iterator[Connection]:
    """An autocommit connection, closed at the end of the block; see the module docstring.

    psycopg errors raised in the block come out as :class:`QueryError` (or
    :class:`QueryTimeoutError` when the deadline was the cause).
    """
    deadline = time.monotonic() + timeout
    conn = _open(params, timeout)
    secrets = [params.password]
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


class _Sentry:
    """The watchdog of a :class:`ReusableConnection`: one thread for the connection's
    whole life (a :class:`_Watchdog` starts a timer thread per connection), armed with a
    deadline for each use and idle in between.

    Arming does not wake the thread when it already means to look before the new
    deadline (it then looks, finds a later deadline and waits again): a connection used
    every half second with a deadline of seconds costs one wake-up per deadline, not two
    thread switches per use."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        #: when the thread will look next (None: it waits to be woken)
        self._wake_at: float | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self.fired = False
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pg-sentry", daemon=True)
                self._thread.start()
            deadline = time.monotonic() + max(seconds, 0.0)
            self._sock, self._deadline, self.fired = sock, deadline, False
            if self._wake_at is None or self._wake_at > deadline:
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._sock, self._deadline = None, None

    def close(self) -> None:
        with self._cond:
            self._closed, self._sock, self._deadline = True, None, None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._wake_at = None
                    self._cond.wait()
                    continue
                now = time.monotonic()
                if self._deadline > now:
                    self._wake_at = self._deadline
                    self._cond.wait(self._deadline - now)
                    continue
                self.fired = True
                if self._sock is not None:
                    try:
                        self._sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self._deadline = None


class ReusableConnection:
    """One connection kept open between uses, for a caller that queries the same server
    again and again (the keeper's state collector, every ``sleepInterval/2``): opening one
    each time costs a backend fork and an authentication on the server, and a watchdog
    thread here, for a few cheap queries.

    :meth:`run` gives the block the same bounds as :func:`connect`: ``statement_timeout``
    on the server, and a watchdog (one thread for the connection's life) that shuts the
    socket down when the deadline passes. An error closes the connection; a kept
    connection that fails (the server restarted while it was idle) is replaced by a new
    one and the block runs again, once, so a reuse never turns into an error a fresh
    connection would not have had. Not thread-safe: one user thread.
    """

    def __init__(self, params: Callable[[], ConnectParams]) -> None:
        self._params = params
        self._conn: Connection | None = None
        self._key: tuple[ConnectParams, float] | None = None
        self._sock: socket.socket | None = None
        self._sentry = _Sentry()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def run(self, fn: Callable[[Connection], T], timeout: float) -> T:
        params = self._params()
        if self._conn is not None and (self._key != (params, timeout) or self._conn.closed):
            self.close_connection()
        if self._conn is not None:
            try:
                return self._use(params, fn, timeout)
            except QueryTimeoutError:
                raise
            except QueryError as e:
                log.debug("kept connection to %s failed, reconnecting: %s", params.describe(), e)
        return self._use(params, fn, timeout)

    def _use(self, params: ConnectParams, fn: Callable[[Connection], T], timeout: float) -> T:
        started = time.monotonic()
        if self._conn is None:
            conn = _open(params, timeout)
            self._conn, self._key = conn, (params, timeout)
            self._sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        conn = self._conn
        assert self._sock is not None
        self._sentry.arm(self._sock, timeout - (time.monotonic() - started))
        ok = False
        try:
            result = fn(conn)
            ok = True
            return result
        except psycopg.Error as e:
            msg = scrub(str(e).strip(), [params.password])
            if self._sentry.fired or isinstance(e, psycopg.errors.QueryCanceled):
                raise QueryTimeoutError(
                    f"query on {params.describe()} did not complete within {timeout:g}s: {msg}"
                ) from None
            raise QueryError(f"query on {params.describe()} failed: {msg}") from e
        finally:
            self._sentry.disarm()
            if not ok or conn.closed or conn.broken:
                self.close_connection()

    def close_connection(self) -> None:
        """Close the kept connection (the next :meth:`run` opens a new one)."""
        conn, sock = self._conn, self._sock
        self._conn = self._sock = None
        self._key = None
        if sock is not None:
            sock.close()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        self.close_connection()
        self._sentry.close()
