"""A listening socket, its health policy and its routing table.

The checker opens listeners after its first good check and, with ``--stop-listening``,
closes them when checks time out (so load balancers in front stop sending clients to a
proxy that can't tell where the master is). Closing a listener does not close the
connections it accepted; routing to nothing does.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from stolon.proxy.forwarder import (
    Connection,
    ConnectionLimits,
    ForwardingContext,
    SocketOptions,
    tune_listening_socket,
)
from stolon.proxy.policies import HealthPolicy
from stolon.proxy.routing import RoutingTable

log = logging.getLogger("stolon.proxy")

#: The kernel caps it at net.core.somaxconn; many clients reconnect at once after a failover.
LISTEN_BACKLOG = 4096


class ListenError(Exception):
    """The listening socket could not be opened (address in use, unknown host...)."""


class Listener:
    """One ``address:port`` whose connections go where ``policy`` says."""

    def __init__(
        self,
        name: str,
        address: str,
        port: int,
        policy: HealthPolicy,
        options: SocketOptions | None = None,
        *,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.policy = policy
        self.ctx = ForwardingContext(
            name, RoutingTable(policy.balance), options or SocketOptions(), limits or ConnectionLimits()
        )
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"Listener({self.name!r}, {self.address}:{self.port}, policy={self.policy.name!r})"

    @property
    def table(self) -> RoutingTable:
        return self.ctx.table

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def bound_port(self) -> int | None:
        """The port actually bound (differs from ``port`` only when that is 0)."""
        if self._server is None or not self._server.sockets:
            return None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def open(self) -> bool:
        """Start listening if not already; ``True`` if this call opened the socket."""
        if self._server is not None:
            return False
        loop = asyncio.get_running_loop()
        ctx = self.ctx
        try:
            infos = await loop.getaddrinfo(
                self.address or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, sockaddr = infos[0]
            sock = socket.create_server(sockaddr, family=family, backlog=LISTEN_BACKLOG)
            try:
                tune_listening_socket(sock, ctx.options)
            except OSError:
                sock.close()
                raise
        except OSError as e:
            raise ListenError(f"error listening on tcp addr {self.address}:{self.port}: {e}") from None
        try:
            self._server = await loop.create_server(
                lambda: Connection(ctx), sock=sock, backlog=LISTEN_BACKLOG
            )
        except BaseException:
            sock.close()
            raise
        return True

    def close(self) -> bool:
        """Stop listening (connections in flight are left alone); ``True`` if it was open."""
        server, self._server = self._server, None
        if server is None:
            return False
        server.close()
        return True
