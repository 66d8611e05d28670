"""The proxy's configuration: typed values for its listeners and connections (the command
line that builds them is :mod:`stolon.cli.proxy`).

Go Stolon's flags define the default listener, which routes with the ``master`` policy;
each extra listener routes with any installed health policy and carries that policy's
settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stolon.proxy.forwarder import SocketOptions
from stolon.store.base import StoreConfig

DEFAULT_LISTENER = "default"
DEFAULT_POLICY = "master"
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
#: PostgreSQL's own authentication_timeout default: a client has this long from accept
#: until the server answers its first message.
DEFAULT_HANDSHAKE_TIMEOUT = 60.0
#: A shorter handshake timeout (other than 0) can't fit a dial and a TLS negotiation.
MIN_HANDSHAKE_TIMEOUT = 0.1
#: A shorter hold (other than 0) would not outlast a master change.
MIN_HOLD_TIMEOUT = 0.1


@dataclass(frozen=True)
class ListenerConfig:
    name: str
    policy: str
    address: str
    port: int
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProxyConfig:
    store: StoreConfig
    listeners: tuple[ListenerConfig, ...]
    stop_listening: bool = True
    socket_options: SocketOptions = field(default_factory=SocketOptions)
    metrics_listen_address: str = ""
    log_level: str = "info"
    event_loop: str = "auto"
    #: client connections in flight at most, over every listener (0: no limit, as Go)
    max_connections: int = 0
    #: seconds from accept until PostgreSQL's first bytes (0: no limit)
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    #: seconds a new connection is held while there is nowhere to route it (0: refused at
    #: once, as Go)
    hold_connections_timeout: float = 0.0
