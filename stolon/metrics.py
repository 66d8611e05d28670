"""Prometheus metrics with Go Stolon's names (plus ours, documented with the component that
exports them), served on ``--metrics-listen-address`` at ``/metrics``.

Each daemon gets its own registry (so tests can run several in one process) plus the
process collector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

ROLES = ("undefined", "master", "standby")


@dataclass
class Metrics:
    component: str
    cluster_name: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        ProcessCollector(registry=self.registry)
        ident = Gauge(
            "stolon_cluster_identifier",
            "Set to 1, labelled with the cluster name and component",
            ["cluster_name", "component"],
            registry=self.registry,
        )
        ident.labels(self.cluster_name, self.component).set(1)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=self.registry)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def serve(self, listen_address: str) -> WSGIServer | None:
        """Serve ``/metrics`` on ``host:port``; empty address means disabled."""
        if not listen_address:
            return None
        host, _, port = listen_address.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=self.registry)
        log.info("metrics listening on %s", listen_address)
        return server


def set_role(gauge: Gauge, role: str) -> None:
    """Exactly one of the role labels is 1 (Go Stolon's keeper role gauges)."""
    for r in ROLES:
        gauge.labels(r).set(1 if r == role else 0)
