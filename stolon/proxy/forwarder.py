"""The data path: one accepted client connection forwarded to one PostgreSQL instance.

This is the product's hot path, so it is written for speed:

* asyncio *protocols*, not streams: the event loop reads into a bytes object and calls
  ``data_received``, which hands the very same object to the peer transport's ``write``.
  That is one Python call per chunk read and nothing per byte; with uvloop (used when
  installed) both the read and the write happen in C. The transport sends at once when
  the socket can take it and buffers only the rest.
* Back-pressure is the transports' own flow control: when one side's write buffer passes
  its high-water mark, reading from the other side pauses until it drains.
* TCP_NODELAY on both sockets (PostgreSQL's messages are small and latency-bound);
  keepalive on client sockets with the ``--tcp-keepalive-*`` settings. Client sockets
  inherit them from the listening socket; upstream sockets get TCP_NODELAY before they
  connect.
* ``os.splice`` zero-copy was measured against this and lost on PostgreSQL traffic (see
  ``benchmarks/proxy_forwarders.py`` and docs/proxy.md), so it is not used.

Closing rules: a side that closes makes the other close after flushing what is already
buffered (so a client gets the server's last error message); a half-close (EOF) is passed
on as a half-close; a route change *aborts* both sides at once, discarding buffers, and
cancels a dial in progress (fail closed).

Limits (ours; Go Stolon has none, docs/proxy.md): ``--max-connections`` bounds the client
connections of the whole proxy in flight (dials included); one more is closed at once. The
handshake timeout bounds the time from accept until PostgreSQL has sent its first bytes
(it answers a client's first message, startup or SSL request): a client that connects and
says nothing, or a dial that hangs, no longer holds a connection and a backend.

Hold (ours, ``--hold-connections-timeout``, off by default): a connection accepted while the
listener routes nowhere (between the sentinel's fencing and its pointing at the new master,
during a failover or a switchover) is kept, not read from, and forwarded as soon as the
listener has a destination again; when the hold timeout passes first it is closed, as it
would have been at once without the flag. It counts in ``--max-connections``; the
handshake timeout runs from accept as always.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import cast

from stolon.proxy.routing import Destination, RoutingTable

log = logging.getLogger("stolon.proxy")

#: Give up dialing a destination after this long (Go's dialer has no limit of its own;
#: the OS gives up after minutes, which would hold the client just as long).
DIAL_TIMEOUT = 10.0
#: Write-buffer marks per direction: large enough that a bulk transfer (COPY, a big result)
#: does not pause and resume reading on every read, small enough to bound memory.
WRITE_HIGH_WATER = 1024 * 1024
WRITE_LOW_WATER = 256 * 1024
#: At most one warning about failed dials per listener this often (seconds).
DIAL_WARNING_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """TCP keepalive settings for client sockets; 0 keeps the OS default."""

    keepalive_idle: int = 0
    keepalive_count: int = 0
    keepalive_interval: int = 0


@dataclass(slots=True)
class ConnectionLimits:
    """Limits shared by every listener of one proxy, and the connections they count."""

    #: client connections in flight at most (0: no limit, as Go Stolon)
    max_connections: int = 0
    #: seconds from accept until PostgreSQL's first bytes (0: no limit)
    handshake_timeout: float = 0.0
    #: seconds a new connection waits for a destination when there is none (0: refused)
    hold_timeout: float = 0.0
    #: client connections in flight now (every listener)
    current: int = 0
    _last_warning: float = -DIAL_WARNING_INTERVAL

    def full(self) -> bool:
        return 0 < self.max_connections <= self.current

    def warn_full(self, listener: str) -> None:
        """At most one warning every DIAL_WARNING_INTERVAL seconds."""
        now = time.monotonic()
        if now - self._last_warning >= DIAL_WARNING_INTERVAL:
            self._last_warning = now
            log.warning(
                "listener %s: --max-connections (%d) reached, closing new connections",
                listener,
                self.max_connections,
            )


@dataclass(slots=True)
class ForwardingContext:
    """What every connection of one listener shares: its routing table and counters."""

    name: str
    table: RoutingTable
    options: SocketOptions = field(default_factory=SocketOptions)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    #: connections accepted (including refused ones)
    accepted: int = 0
    #: connections closed at once because there was no destination
    refused: int = 0
    #: connections closed at once because the proxy had --max-connections already
    over_limit: int = 0
    #: connections closed because PostgreSQL had sent nothing within the handshake timeout
    handshake_timeouts: int = 0
    #: connections held because there was no destination when they came
    held: int = 0
    #: held connections closed because no destination came within the hold timeout
    hold_timeouts: int = 0
    #: dials that failed or timed out
    dial_failures: int = 0
    _last_dial_warning: float = -DIAL_WARNING_INTERVAL
    _unreported_dial_failures: int = 0

    def dial_failed(self, dest: Destination, error: BaseException) -> None:
        """Count a failed dial; warn at most every DIAL_WARNING_INTERVAL seconds."""
        self.dial_failures += 1
        now = time.monotonic()
        if now - self._last_dial_warning < DIAL_WARNING_INTERVAL:
            self._unreported_dial_failures += 1
            return
        more = self._unreported_dial_failures
        self._last_dial_warning, self._unreported_dial_failures = now, 0
        log.warning(
            "listener %s: cannot connect to %s (db %s): %s%s",
            self.name,
            dest,
            dest.db_uid,
            error or type(error).__name__,
            f" ({more} more failed dials not logged)" if more else "",
        )


def tune_listening_socket(sock: socket.socket, options: SocketOptions) -> None:
    """TCP_NODELAY and keepalive for client connections, set once on the listening socket:
    Linux copies them to every socket it accepts, which saves five system calls (and, on
    uvloop, a socket object) per connection."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if options.keepalive_idle > 0:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, options.keepalive_idle)
    if options.keepalive_count > 0:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, options.keepalive_count)
    if options.keepalive_interval > 0:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, options.keepalive_interval)


def upstream_socket(dest: Destination) -> socket.socket:
    """A non-blocking socket for ``dest`` with TCP_NODELAY set before it connects."""
    family = socket.AF_INET6 if ":" in dest.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


class Connection(asyncio.Protocol):
    """A client connection (this object is its protocol) and its upstream connection."""

    __slots__ = (
        "_client_eof",
        "_closed",
        "_counted",
        "_ctx",
        "_dial",
        "_handshake",
        "_hold",
        "_pending",
        "_upstream_eof",
        "client",
        "destination",
        "upstream",
    )

    def __init__(self, ctx: ForwardingContext) -> None:
        self._ctx = ctx
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.destination: Destination | None = None
        self._dial: asyncio.Task[None] | None = None
        self._pending: list[bytes] | None = None
        self._closed = False
        self._client_eof = False
        self._upstream_eof = False
        self._counted = False
        #: fires when PostgreSQL has sent nothing within the handshake timeout
        self._handshake: asyncio.TimerHandle | None = None
        #: fires when a held connection got no destination within the hold timeout
        self._hold: asyncio.TimerHandle | None = None

    # -- client side ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.client = transport
        ctx = self._ctx
        ctx.accepted += 1
        limits = ctx.limits
        if limits.full():
            ctx.over_limit += 1
            limits.warn_full(ctx.name)
            self._closed = True
            transport.abort()
            return
        dest = ctx.table.pick()
        if dest is None and limits.hold_timeout <= 0:
            ctx.refused += 1
            self._closed = True
            transport.abort()
            return
        limits.current += 1
        self._counted = True
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        loop = asyncio.get_running_loop()
        if limits.handshake_timeout > 0:
            self._handshake = loop.call_later(limits.handshake_timeout, self._handshake_expired)
        if dest is None:
            # Held: still reading, so that a client that leaves is noticed; its first
            # bytes are kept (and reading paused) until there is somewhere to send them.
            ctx.held += 1
            ctx.table.hold(self)
            self._hold = loop.call_later(limits.hold_timeout, self._hold_expired)
            return
        transport.pause_reading()
        self._route(dest)

    def _route(self, dest: Destination) -> None:
        self.destination = dest
        self._ctx.table.add(dest, self)
        self._dial = asyncio.get_running_loop().create_task(self._connect(dest))

    def release(self) -> None:
        """A held connection: the listener has a destination again."""
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if self._closed:
            return
        dest = self._ctx.table.pick()
        if dest is None:  # not expected: released only when there are destinations
            self.abort()
            return
        self._route(dest)

    def _hold_expired(self) -> None:
        self._hold = None
        self._ctx.table.unhold(self)
        if self._closed:
            return
        self._ctx.hold_timeouts += 1
        log.debug(
            "listener %s: no destination within the hold timeout (%gs): closing",
            self._ctx.name,
            self._ctx.limits.hold_timeout,
        )
        self.abort()

    def _handshake_expired(self) -> None:
        self._handshake = None
        if self._closed:
            return
        self._ctx.handshake_timeouts += 1
        log.debug(
            "listener %s: nothing from %s within the handshake timeout (%gs): closing",
            self._ctx.name,
            self.destination,
            self._ctx.limits.handshake_timeout,
        )
        self.abort()

    def handshake_done(self) -> None:
        """PostgreSQL sent its first bytes: the handshake timeout no longer applies."""
        if self._handshake is not None:
            self._handshake.cancel()
            self._handshake = None

    def data_received(self, data: bytes) -> None:
        up = self.upstream
        if up is not None:
            up.write(data)
        else:
            self._early_data(data)

    def _early_data(self, data: bytes) -> None:
        """Data before the upstream connection exists: keep it and stop reading. (uvloop
        starts reading a server-side transport after ``connection_made`` even when the
        protocol paused it there.)"""
        if self._pending is None:
            self._pending = []
        self._pending.append(data)
        if self.client is not None:
            self.client.pause_reading()

    def eof_received(self) -> bool:
        self._client_eof = True
        if self._hold is not None:  # held: the client gave up waiting
            self._close_both()
            return False
        up = self.upstream
        if up is None and not self._closed:
            return True  # still dialing: the EOF is passed on once connected
        if up is None or self._upstream_eof or not up.can_write_eof():
            self._close_both()
            return False
        up.write_eof()
        return True  # keep the client side open to send it the server's remaining data

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_both()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- upstream side --------------------------------------------------------------------------
    async def _connect(self, dest: Destination) -> None:
        loop = asyncio.get_running_loop()
        sock = None
        try:
            sock = upstream_socket(dest)
            async with asyncio.timeout(DIAL_TIMEOUT):
                await loop.sock_connect(sock, (dest.host, dest.port))
            transport, _ = await loop.create_connection(lambda: _Upstream(self), sock=sock)
        except (OSError, TimeoutError) as e:
            if sock is not None:
                sock.close()
            self._dial = None
            self._ctx.dial_failed(dest, e)
            self._close_both()
            return
        except asyncio.CancelledError:
            if sock is not None:
                sock.close()
            raise
        self._dial = None
        if self._closed:  # aborted (route change) or the client left while dialing
            transport.abort()
            return
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        if self._pending is not None:
            transport.write(b"".join(self._pending))
            self._pending = None
        self.upstream = transport
        if self._client_eof:
            transport.write_eof()
            return
        self.client.resume_reading()  # type: ignore[union-attr]

    def _upstream_eof_received(self) -> bool:
        self._upstream_eof = True
        client = self.client
        if client is None or self._client_eof or not client.can_write_eof():
            self._close_both()
            return False
        client.write_eof()
        return True

    # -- closing --------------------------------------------------------------------------------
    def _close_both(self) -> None:
        """One side is done: flush what is buffered for the other, then close it."""
        if self._closed:
            return
        self._closed = True
        self._forget()
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        if self.client is not None:
            self.client.close()
        if self.upstream is not None:
            self.upstream.close()

    def abort(self) -> None:
        """Close both sides at once, discarding buffers, and cancel a dial (route change)."""
        self._closed = True
        self._forget()
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        if self.client is not None:
            self.client.abort()
        if self.upstream is not None:
            self.upstream.abort()

    def _forget(self) -> None:
        if self.destination is not None:
            self._ctx.table.discard(self.destination, self)
        if self._counted:
            self._counted = False
            self._ctx.limits.current -= 1
        if self._handshake is not None:
            self._handshake.cancel()
            self._handshake = None
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
            self._ctx.table.unhold(self)


class _Upstream(asyncio.Protocol):
    """The server side of a :class:`Connection`."""

    __slots__ = ("client", "conn")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.client = conn.client

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn._handshake is not None:
            conn.handshake_done()
        self.client.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        return self.conn._upstream_eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._close_both()

    def pause_writing(self) -> None:
        self.client.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.client.resume_reading()  # type: ignore[union-attr]
