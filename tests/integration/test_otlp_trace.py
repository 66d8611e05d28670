"""One failover, one trace, exported over OTLP: a local cluster (embedded store, 2 keepers,
a sentinel, a proxy) whose daemons export their spans to OTLP receivers in this test — the
sentinel over gRPC, the keepers and the proxy over HTTP (protobuf), each configured only by
the standard ``OTEL_*`` variables. The master's keeper and PostgreSQL are killed; the trace
of the election must hold the sentinel's decision and election (its candidates with their
WAL positions), the proxy's fence, the new master's promotion (with its DB's UID) and the
proxy's route change to the new master.

The receivers decode ``ExportTraceServiceRequest`` with ``opentelemetry-proto`` (what a
collector such as the OpenTelemetry Collector, Jaeger or Tempo receives).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

grpc = pytest.importorskip("grpc", reason="the otlp extra (grpcio) is not installed")
from opentelemetry.proto.collector.trace.v1 import (  # noqa: E402
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue  # noqa: E402

from stolon.local.cluster import LocalCluster  # noqa: E402
from stolon.netutil import free_port  # noqa: E402
from stolon.plugins import load_plugins  # noqa: E402
from stolon.testing.writer import Writer  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    attributes: dict[str, Any]


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    protocols: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest, protocol: str) -> None:
        with self.lock:
            self.protocols.add(protocol)
            for rs in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        self.spans.append(
                            Span(
                                str(resource.get("service.name", "")),
                                sp.name,
                                sp.trace_id.hex(),
                                {kv.key: _value(kv.value) for kv in sp.attributes},
                            )
                        )


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.add(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def receivers() -> Iterator[tuple[Received, int, int]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/v1/traces":
                received.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body), "http")
            out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)  # type: ignore[no-untyped-call]
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield received, http.server_address[1], grpc_port
    finally:
        server.stop(0)
        http.shutdown()
        http.server_close()


def test_one_failover_is_one_trace(
    receivers: tuple[Received, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    received, http_port, grpc_port = receivers
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{http_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    base = Path(tempfile.mkdtemp(prefix="stolon-otlp-", dir="/tmp"))
    os.chmod(base, 0o755)
    cluster = LocalCluster.create(
        base / "c",
        backends=load_plugins(),
        name="otlp",
        keepers=2,
        sentinels=1,
        spec={"sleepInterval": "1s", "failInterval": "3s", "proxyCheckInterval": "1s", "proxyTimeout": "3s"},
    )
    for name, proc in cluster.processes.items():
        if name.startswith("sentinel"):
            proc.env.update(
                {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                }
            )
    cluster.start()
    try:
        cluster.wait_healthy(180)
        old = cluster.master_keeper()
        assert old is not None
        writer = Writer(cluster.dsn())
        writer.setup()
        writer.start()
        cluster.kill_keeper_and_postgres(old)
        killed = time.monotonic()
        deadline = killed + 120
        while time.monotonic() < deadline and not any(
            ok and t > killed + 0.5 for t, ok in writer.attempts[-20:]
        ):
            time.sleep(0.3)
        writer.stop()
        new = cluster.master_keeper()
        assert new not in (None, old), "no failover"
        cd = cluster.cluster_data()
        assert cd is not None
        new_db = cd.master_db()
        assert new_db is not None
    finally:
        cluster.stop()  # the daemons flush their spans as they exit
        shutil.rmtree(base, ignore_errors=True)

    with received.lock:
        spans = list(received.spans)
    assert received.protocols == {"http", "grpc"}
    elections = [
        s
        for s in spans
        if s.name == "sentinel.failover" and s.attributes.get("stolon.failover.new_master_db") == new_db.uid
    ]
    assert elections, sorted({s.name for s in spans})
    election = elections[-1]
    assert election.service == "stolon-sentinel"
    candidates = [json.loads(c) for c in election.attributes["stolon.failover.candidates"]]
    assert any(c["db_uid"] == new_db.uid and "xlog_pos" in c for c in candidates), candidates
    trace = [s for s in spans if s.trace_id == election.trace_id]
    by_name: dict[str, list[Span]] = {}
    for s in trace:
        by_name.setdefault(s.name, []).append(s)
    assert len(by_name.get("sentinel.decide", [])) >= 2, "the election and the decision pointing the proxies"
    (promote,) = by_name["keeper.promote"]
    assert promote.service == "stolon-keeper" and promote.attributes["stolon.db.uid"] == new_db.uid
    routes = by_name["proxy.route_change"]
    assert any(r.attributes.get("stolon.db.uid") == "" for r in routes), "the proxy's fence"
    assert any(r.attributes.get("stolon.db.uid") == new_db.uid for r in routes), "the route to the new master"
