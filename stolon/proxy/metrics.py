"""The proxy's Prometheus metrics.

``stolon_cluster_identifier{component="proxy"}`` is Go Stolon's (the only metric its proxy
has). Ours are read from the listeners' plain counters when ``/metrics`` is scraped, so
the data path never touches a metric object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from stolon.metrics import Metrics
from stolon.proxy.listener import Listener


class ProxyCollector(Collector):
    """Connection counts per listener and the time of the last good check."""

    def __init__(
        self,
        listeners: Sequence[Listener],
        last_success: Callable[[], float | None],
        spec_warnings: Callable[[], int] = lambda: 0,
    ) -> None:
        self.listeners = list(listeners)
        self.last_success = last_success
        self.spec_warnings = spec_warnings

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        current = GaugeMetricFamily(
            "stolon_proxy_connections", "Client connections in flight (dials included)", labels=["listener"]
        )
        listening = GaugeMetricFamily(
            "stolon_proxy_listening", "1 when the listener's socket is open", labels=["listener"]
        )
        destinations = GaugeMetricFamily(
            "stolon_proxy_destinations", "Destinations new connections may go to", labels=["listener"]
        )
        accepted = CounterMetricFamily(
            "stolon_proxy_connections_accepted", "Client connections accepted", labels=["listener"]
        )
        refused = CounterMetricFamily(
            "stolon_proxy_connections_refused",
            "Client connections closed at once because there was no destination",
            labels=["listener"],
        )
        closed = CounterMetricFamily(
            "stolon_proxy_connections_closed_by_route_change",
            "Connections closed because their destination was no longer routed to",
            labels=["listener"],
        )
        dial_failures = CounterMetricFamily(
            "stolon_proxy_dial_failures", "Connections to a destination that failed", labels=["listener"]
        )
        over_limit = CounterMetricFamily(
            "stolon_proxy_connections_over_limit",
            "Client connections closed at once because --max-connections were in flight",
            labels=["listener"],
        )
        handshake = CounterMetricFamily(
            "stolon_proxy_handshake_timeouts",
            "Client connections closed because PostgreSQL sent nothing within --handshake-timeout",
            labels=["listener"],
        )
        held_now = GaugeMetricFamily(
            "stolon_proxy_held_connections",
            "Client connections waiting for a destination (--hold-connections-timeout)",
            labels=["listener"],
        )
        held = CounterMetricFamily(
            "stolon_proxy_connections_held",
            "Client connections held because there was no destination when they came",
            labels=["listener"],
        )
        hold_timeouts = CounterMetricFamily(
            "stolon_proxy_hold_timeouts",
            "Held client connections closed because no destination came within --hold-connections-timeout",
            labels=["listener"],
        )
        for listener in self.listeners:
            ctx = listener.ctx
            labels = [listener.name]
            current.add_metric(labels, ctx.table.connection_count())
            listening.add_metric(labels, 1 if listener.listening else 0)
            destinations.add_metric(labels, len(ctx.table.destinations))
            accepted.add_metric(labels, ctx.accepted)
            refused.add_metric(labels, ctx.refused)
            closed.add_metric(labels, ctx.table.closed_by_route_change)
            dial_failures.add_metric(labels, ctx.dial_failures)
            over_limit.add_metric(labels, ctx.over_limit)
            handshake.add_metric(labels, ctx.handshake_timeouts)
            held_now.add_metric(labels, ctx.table.held_count)
            held.add_metric(labels, ctx.held)
            hold_timeouts.add_metric(labels, ctx.hold_timeouts)
        yield from (
            current,
            listening,
            destinations,
            accepted,
            refused,
            closed,
            dial_failures,
            over_limit,
            handshake,
            held_now,
            held,
            hold_timeouts,
        )
        warnings = GaugeMetricFamily(
            "stolon_cluster_spec_warnings",
            "Rules of ours the stored cluster spec breaks (used as documented; see stolonctl status)",
        )
        warnings.add_metric([], self.spec_warnings())
        yield warnings
        last = self.last_success()
        if last is not None:
            g = GaugeMetricFamily(
                "stolon_proxy_last_check_success_seconds",
                "Unix time of the last successful check of the cluster data",
            )
            g.add_metric([], last)
            yield g


def proxy_metrics(
    cluster_name: str,
    listeners: Sequence[Listener],
    last_success: Callable[[], float | None],
    spec_warnings: Callable[[], int] = lambda: 0,
) -> Metrics:
    metrics = Metrics("proxy", cluster_name)
    metrics.registry.register(ProxyCollector(listeners, last_success, spec_warnings))
    return metrics
