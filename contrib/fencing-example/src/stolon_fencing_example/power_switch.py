"""The ``example-http`` fencing method: switch the old master's outlet off on a network
power switch (PDU), then wait until the switch reports it off.

Config (``fencing.methods[].config`` in the cluster spec)::

    {"url": "http://pdu1.example:8080",
     "outlets": {"keeper0": "1", "keeper1": "2", "keeper2": "3"},
     "tokenFile": "/etc/stolon/pdu-token"}

The switch's API, as this example assumes it (adapt it to your device)::

    POST {url}/outlets/{outlet}/off       2xx: the switch accepted the command
    GET  {url}/outlets/{outlet}           {"state": "on" | "off"}

``outlets`` maps keeper UIDs to outlets: a keeper without one can't be fenced (a failure,
so policy ``required`` does not promote). ``tokenFile`` (optional) holds a bearer token,
read when fencing, never stored in the cluster spec; it must not be readable by group or
others. Every request and the wait for "off" share the timeout the sentinel gives.
"""

from __future__ import annotations

import json
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stolon.fencing.base import FencingError, FencingTarget

NAME = "example-http"
_KEYS = ("url", "outlets", "tokenFile")
#: how often the outlet's state is read while waiting for "off"
POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class PowerSwitchFencer:
    url: str
    outlets: Mapping[str, str]
    token_file: str = ""
    poll_interval_s: float = field(default=POLL_INTERVAL_S, compare=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PowerSwitchFencer:
        """Check the config; a ValueError names the setting and how to fix it (the sentinel
        reports it as the method's failure)."""
        unknown = sorted(set(config) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r} ({NAME} takes: {', '.join(_KEYS)})")
        url = config.get("url")
        parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError('url must be the switch\'s http(s) base URL, e.g. "http://pdu1.example:8080"')
        outlets = config.get("outlets")
        if (
            not isinstance(outlets, dict)
            or not outlets
            or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in outlets.items())
        ):
            raise ValueError('outlets must map keeper uids to outlet ids, e.g. {"keeper0": "1"}')
        bad = sorted(v for v in outlets.values() if not v.replace("-", "").replace("_", "").isalnum())
        if bad:
            raise ValueError(f"outlet id {bad[0]!r}: use letters, digits, '-' or '_'")
        token_file = config.get("tokenFile", "")
        if not isinstance(token_file, str):
            raise ValueError('tokenFile must be a path, e.g. "/etc/stolon/pdu-token"')
        return cls(str(url).rstrip("/"), dict(outlets), token_file)

    def fence(self, target: FencingTarget, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        outlet = self.outlets.get(target.keeper_uid)
        if outlet is None:
            raise FencingError(f"no outlet configured for keeper {target.keeper_uid} (add it to outlets)")
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._request("POST", f"/outlets/{outlet}/off", headers, deadline)
        state = self._state(outlet, headers, deadline)
        while state != "off":
            left = deadline - time.monotonic()
            if left > 0:
                time.sleep(min(self.poll_interval_s, left))
            if time.monotonic() >= deadline:
                raise FencingError(
                    f"outlet {outlet} still {state!r} after {timeout:.1f}s: the switch did not power it off"
                )
            state = self._state(outlet, headers, deadline)
        return f"outlet {outlet} of {self.url} is off (keeper {target.keeper_uid})"

    def _token(self) -> str:
        if not self.token_file:
            return ""
        try:
            fd = os.open(self.token_file, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            raise FencingError(f"cannot read tokenFile {self.token_file}: {e.strerror}") from None
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077:
                raise FencingError(f"tokenFile {self.token_file} has mode {mode:04o}: run chmod 600 on it")
            with os.fdopen(fd, encoding="utf-8", closefd=False) as f:
                return f.read().strip()
        finally:
            os.close(fd)

    def _state(self, outlet: str, headers: Mapping[str, str], deadline: float) -> str:
        body = self._request("GET", f"/outlets/{outlet}", headers, deadline)
        try:
            state = json.loads(body)["state"]
        except (ValueError, KeyError, TypeError):
            raise FencingError(f"unexpected answer for outlet {outlet}: {body[:100]!r}") from None
        return str(state)

    def _request(self, method: str, path: str, headers: Mapping[str, str], deadline: float) -> str:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FencingError(f"timed out before {method} {path}")
        req = urllib.request.Request(
            self.url + path, method=method, headers=dict(headers), data=b"" if method == "POST" else None
        )
        try:
            with urllib.request.urlopen(req, timeout=left) as resp:
                return str(resp.read(64 * 1024).decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            raise FencingError(f"{method} {path}: the switch answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError):
                raise FencingError(f"{method} {path}: no answer from {self.url} in time") from None
            raise FencingError(f"{method} {path}: cannot reach {self.url}: {reason}") from None
