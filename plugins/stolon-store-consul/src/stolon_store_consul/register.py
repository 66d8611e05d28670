"""``stolonctl register``: Go Stolon's Consul service registration loop.

Every ``--sleep-interval`` seconds: read the cluster data from the store (any backend), build
one Consul service per **healthy** database (name = the cluster name, ID = the DB uid,
address and port = the DB's, tags ``--tag-master-as`` for the master and ``--tag-slave-as``
for the others, a TCP check every 10 s), leave the master out unless ``--register-master``,
compare with the catalog's instances of that service, and deregister what is gone or
changed, then register what is new or changed, through the local agent. Errors are logged
and the loop goes on, as in Go Stolon (``cmd/stolonctl/cmd/register.go``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from stolon.cli.common import CliError, add_bool_flag, split_csv
from stolon.model import ClusterData, ModelError
from stolon.store.base import StoreConfigError, StoreError
from stolon_store_consul import DEFAULT_ENDPOINT

if TYPE_CHECKING:
    from stolon.cli.ctlcontext import CtlContext
    from stolon_store_consul.client import ConsulClient, TLSFiles

log = logging.getLogger(__name__)

#: Go Stolon's TCP check interval for registered services.
CHECK_INTERVAL = "10s"


class RegisterError(StoreError):
    """The cluster data cannot be turned into services (this round is skipped)."""


@dataclass(frozen=True)
class ServiceInfo:
    """One database as a Consul service instance."""

    name: str
    id: str
    address: str
    port: int
    tags: tuple[str, ...]
    is_master: bool = False

    def same(self, other: ServiceInfo) -> bool:
        """Go's ``ServiceInfo.Compare``: name, ID, address, port and tags (in order)."""
        return (self.name, self.id, self.address, self.port, self.tags) == (
            other.name,
            other.id,
            other.address,
            other.port,
            other.tags,
        )

    def registration(self) -> dict[str, Any]:
        """The body of ``PUT /v1/agent/service/register``, with a TCP check on the DB."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return {
            "ID": self.id,
            "Name": self.name,
            "Address": self.address,
            "Port": self.port,
            "Tags": list(self.tags),
            "Check": {"TCP": f"{host}:{self.port}", "Interval": CHECK_INTERVAL},
        }


def service_infos(
    cd: ClusterData, cluster_name: str, tag_master: tuple[str, ...], tag_slave: tuple[str, ...]
) -> dict[str, ServiceInfo]:
    """The healthy DBs of ``cd`` as services, by DB uid (Go's ``Cluster.ServiceInfos``)."""
    if cd.cluster is None:
        raise RegisterError("cluster data not available")
    master = cd.cluster.status.master
    infos: dict[str, ServiceInfo] = {}
    for uid, db in (cd.dbs or {}).items():
        if not db.status.healthy:
            continue
        try:
            port = int(db.status.port)
        except ValueError:
            raise RegisterError(
                f"invalid database port {db.status.port!r} for {cluster_name} with uid {uid}"
            ) from None
        is_master = uid == master
        infos[uid] = ServiceInfo(
            name=cluster_name,
            id=uid,
            address=db.status.listen_address,
            port=port,
            tags=tag_master if is_master else tag_slave,
            is_master=is_master,
        )
    return infos


@dataclass(frozen=True)
class Diff:
    added: dict[str, ServiceInfo]
    removed: dict[str, ServiceInfo]


def diff(existing: Mapping[str, ServiceInfo], discovered: Mapping[str, ServiceInfo]) -> Diff:
    """What to register and deregister so the catalog matches ``existing`` (Go's ``Diff``):
    new ones are added, gone ones removed, changed ones removed and added again."""
    added: dict[str, ServiceInfo] = {}
    removed: dict[str, ServiceInfo] = {}
    for sid, want in existing.items():
        have = discovered.get(sid)
        if have is None:
            added[sid] = want
        elif not want.same(have):
            added[sid] = want
            removed[sid] = have
    for sid, have in discovered.items():
        if sid not in existing:
            removed[sid] = have
    return Diff(added, removed)


class ConsulServiceDiscovery:
    """Services through the local agent, read back from the catalog."""

    def __init__(self, client: ConsulClient) -> None:
        self.client = client

    def services(self, name: str) -> dict[str, ServiceInfo]:
        found: dict[str, ServiceInfo] = {}
        for s in self.client.catalog_service(name):
            sid = str(s.get("ServiceID", ""))
            found[sid] = ServiceInfo(
                name=str(s.get("ServiceName", "")),
                id=sid,
                address=str(s.get("ServiceAddress", "")),
                port=int(s.get("ServicePort") or 0),
                tags=tuple(s.get("ServiceTags") or ()),
            )
        return found

    def register(self, info: ServiceInfo) -> None:
        self.client.agent_service_register(info.registration())

    def deregister(self, info: ServiceInfo) -> None:
        self.client.agent_service_deregister(info.id)


def register_once(
    cd: ClusterData,
    cluster_name: str,
    discovery: ConsulServiceDiscovery,
    *,
    register_master: bool,
    tag_master: tuple[str, ...],
    tag_slave: tuple[str, ...],
) -> Diff:
    """One round: diff the wanted services against the catalog and apply the difference.

    A failed (de)registration is logged and the others still run, as in Go Stolon.
    """
    discovered = discovery.services(cluster_name)
    wanted = {}
    for uid, info in service_infos(cd, cluster_name, tag_master, tag_slave).items():
        if info.is_master and not register_master:
            log.info("skipping registering master")
            continue
        wanted[uid] = info
    changes = diff(wanted, discovered)
    for info in changes.removed.values():
        try:
            discovery.deregister(info)
        except StoreError as e:
            log.error(
                "unable to deregister %s with uid %s as %s, reason: %s",
                info.name,
                info.id,
                list(info.tags),
                e,
            )
        else:
            log.info("successfully deregistered %s with uid %s as %s", info.name, info.id, list(info.tags))
    for info in changes.added.values():
        try:
            discovery.register(info)
        except StoreError as e:
            log.error(
                "unable to register %s with uid %s as %s, reason: %s", info.name, info.id, list(info.tags), e
            )
        else:
            log.info("successfully registered %s with uid %s as %s", info.name, info.id, list(info.tags))
    return changes


# -- the command ------------------------------------------------------------------------------


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "register",
        help="Register stolon keepers for service discovery (healthy DBs as Consul services)",
        description="Register the cluster's healthy databases as Consul services, named after the"
        " cluster and tagged master or slave, with a TCP check; loops until interrupted.",
    )
    p.add_argument("--register-backend", default="consul", help="register backend type (consul)")
    p.add_argument(
        "--register-endpoints",
        default=DEFAULT_ENDPOINT,
        help="the Consul agent to register with, one URL (use https scheme for tls communication)"
        f" (default {DEFAULT_ENDPOINT})",
    )
    p.add_argument(
        "--register-cert-file", default="", help="certificate file for client identification to the register"
    )
    p.add_argument(
        "--register-key", default="", help="private key file for client identification to the register"
    )
    p.add_argument(
        "--register-ca-file",
        default="",
        help="verify certificates of HTTPS-enabled register servers using this CA bundle",
    )
    add_bool_flag(p, "--register-skip-tls-verify", "skip register certificate verification (insecure!!!)")
    add_bool_flag(
        p, "--register-master", "register master as well for service discovery (use it with caution!!!)"
    )
    p.add_argument(
        "--tag-master-as",
        default="master",
        help="a comma-delimited list of tag to be used when registering master (default master)",
    )
    p.add_argument(
        "--tag-slave-as",
        default="slave",
        help="a comma-delimited list of tag to be used when registering slave (default slave)",
    )
    p.add_argument(
        "--sleep-interval",
        default=10,
        type=_positive_int,
        metavar="SECONDS",
        help="number of seconds to sleep before probing for change (default 10)",
    )
    add_bool_flag(p, "--debug", "enable debug logging (same as --log-level debug)")
    p.set_defaults(func=cmd_register)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {text!r}: use a whole number such as 10"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}: must be at least 1")
    return value


@dataclass(frozen=True)
class RegisterConfig:
    endpoint: str
    tls: TLSFiles
    register_master: bool
    tag_master: tuple[str, ...]
    tag_slave: tuple[str, ...]
    sleep_interval: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RegisterConfig:
        """Go's ``register.Config.Validate``, with messages that say what to change."""
        from stolon_store_consul.client import TLSFiles

        if args.register_backend != "consul":
            raise CliError(f"unknown register backend: {args.register_backend!r} (only consul is supported)")
        endpoints = [e for e in args.register_endpoints.split(",") if e.strip()]
        if len(endpoints) != 1:
            raise CliError(
                f"--register-endpoints: consul does not support multiple endpoints: {args.register_endpoints!r}"
                " (give the URL of one agent)"
            )
        return cls(
            endpoint=endpoints[0].strip(),
            tls=TLSFiles(
                args.register_cert_file,
                args.register_key,
                args.register_ca_file,
                bool(args.register_skip_tls_verify),
                flag_prefix="register",
            ),
            register_master=bool(args.register_master),
            tag_master=tuple(split_csv(args.tag_master_as)),
            tag_slave=tuple(split_csv(args.tag_slave_as)),
            sleep_interval=args.sleep_interval,
        )


def cmd_register(ctx: CtlContext) -> int:
    """Run the registration loop until SIGINT or SIGTERM."""
    args = ctx.args
    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    # The loop reports what it does at info level (Go Stolon's default level for stolonctl).
    if log.getEffectiveLevel() > logging.INFO and args.log_level != "error":
        log.setLevel(logging.INFO)
    from stolon_store_consul.client import ConsulClient, acl_token

    cfg = RegisterConfig.from_args(args)
    try:
        client = ConsulClient(
            [cfg.endpoint],
            timeout=args.store_timeout,
            tls=cfg.tls,
            token=acl_token(),
            endpoints_flag="--register-endpoints",
        )
    except StoreConfigError as e:
        raise CliError(str(e)) from None
    discovery = ConsulServiceDiscovery(client)
    store = ctx.store  # checks the common store flags before the loop starts
    cluster_name = store.config.cluster_name
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            try:
                cd, _ = store.get_cluster_data()
                if cd is None:
                    raise RegisterError("no cluster data available")
                register_once(
                    cd,
                    cluster_name,
                    discovery,
                    register_master=cfg.register_master,
                    tag_master=cfg.tag_master,
                    tag_slave=cfg.tag_slave,
                )
            except (RegisterError, ModelError) as e:
                log.error("cannot get service infos: %s; skipping", e)
            except StoreError as e:
                log.error("registration round failed: %s; skipping", e)
            stop.wait(cfg.sleep_interval)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        client.close()
    return 0
