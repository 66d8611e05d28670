"""OpenTelemetry setup and the trace-context helpers every component uses.

Exporters are chosen by the standard ``OTEL_*`` variables:

- ``OTEL_TRACES_EXPORTER=otlp`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``
  set): OTLP, from the optional ``stolon[otlp]`` extra, over HTTP (protobuf) or gRPC as
  ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` say
  (``http/protobuf``, the default, or ``grpc``); the exporters read the other ``OTEL_*``
  settings themselves (headers, timeout, certificates, compression);
- ``OTEL_TRACES_EXPORTER=console``: spans printed to stderr;
- unset or ``none``: spans are created (tests may install their own provider) but exported
  nowhere.

A decision's W3C trace context travels in the cluster data (``traceContext`` objects) so
that the keeper's and the proxies' spans join the trace of the sentinel decision that
caused them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from stolon import __version__

log = logging.getLogger(__name__)
_propagator = TraceContextTextMapPropagator()
_configured = False

# Span attribute names shared by components.
ATTR_CLUSTER = "stolon.cluster"
ATTR_KEEPER = "stolon.keeper.uid"
ATTR_DB = "stolon.db.uid"
ATTR_TIMELINE = "stolon.db.timeline"
ATTR_XLOGPOS = "stolon.db.xlogpos"


def _exporter() -> SpanExporter | None:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if name in ("", "otlp") and (name == "otlp" or endpoint):
        return _otlp_exporter()
    if name == "console":
        return ConsoleSpanExporter()
    if name not in ("", "none"):
        log.warning("unsupported OTEL_TRACES_EXPORTER %r: use otlp, console or none", name)
    return None


def _otlp_exporter() -> SpanExporter | None:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).strip().lower() or "http/protobuf"
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            return GrpcExporter()
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )

            return HttpExporter()
    except ImportError:
        log.warning(
            "OTLP trace export (%s) requested but not installed: pip install 'stolon[otlp]'", protocol
        )
        return None
    log.warning("unsupported OTLP protocol %r: use http/protobuf or grpc", protocol)
    return None


def setup_tracing(component: str, cluster_name: str = "") -> None:
    """Install the global tracer provider for a daemon (once per process)."""
    global _configured
    if _configured:
        return
    _configured = True
    attrs: dict[str, str] = {
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or f"stolon-{component}",
        "service.version": __version__,
    }
    if cluster_name:
        attrs[ATTR_CLUSTER] = cluster_name
    provider = TracerProvider(resource=Resource.create(attrs))
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def tracer(component: str) -> trace.Tracer:
    return trace.get_tracer(f"stolon.{component}", __version__)


def context_from(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    """The parent context stored in cluster data, or ``None`` when there is none."""
    if not carrier or "traceparent" not in carrier:
        return None
    return _propagator.extract(carrier=dict(carrier))


def current_carrier() -> dict[str, str]:
    """The current span's W3C trace context, to store in cluster data."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier
