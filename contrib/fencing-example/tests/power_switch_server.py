"""A network power switch (PDU) on loopback, for the tests: it stands in for the device the
``example-http`` method drives (POST /outlets/<n>/off, GET /outlets/<n>). Each outlet
reports "off" a few reads after the command, as a real switch takes a moment to cut
power. Modes make it fail (HTTP 500), hang (no answer until the test ends) or never
switch off."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class SwitchState:
    mode: str = "ok"  # ok | error | hang | stuck
    token: str = ""
    #: outlet -> reads left before it reports "off" (present once switched off)
    pending: dict[str, int] = field(default_factory=dict)
    switched_off: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    reads_until_off: int = 2


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _common(self) -> SwitchState | None:
        st = self.server.state
        st.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
        if st.mode == "hang":
            st.release.wait(60)
            return None
        if st.mode == "error":
            self._answer(500, {"error": "relay fault"})
            return None
        if st.token and self.headers.get("Authorization") != f"Bearer {st.token}":
            self._answer(401, {"error": "unauthorized"})
            return None
        return st

    def do_POST(self) -> None:
        st = self._common()
        if st is None:
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "outlets" or parts[2] != "off":
            self._answer(404, {"error": "no such endpoint"})
            return
        st.pending[parts[1]] = st.reads_until_off
        st.switched_off.append(parts[1])
        self._answer(202, {"outlet": parts[1], "command": "off"})

    def do_GET(self) -> None:
        st = self._common()
        if st is None:
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "outlets":
            self._answer(404, {"error": "no such outlet"})
            return
        outlet = parts[1]
        left = st.pending.get(outlet)
        if left is None or st.mode == "stuck":
            self._answer(200, {"state": "on"})
            return
        if left > 0:
            st.pending[outlet] = left - 1
            self._answer(200, {"state": "on"})
            return
        self._answer(200, {"state": "off"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: SwitchState


@contextmanager
def power_switch(state: SwitchState | None = None) -> Iterator[tuple[str, SwitchState]]:
    """Run a switch on a free loopback port; yields its base URL and its state."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state or SwitchState()
    thread = threading.Thread(target=server.serve_forever, name="power-switch", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
