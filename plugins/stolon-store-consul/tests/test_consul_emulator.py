"""The Consul emulator itself, over plain HTTP: each test checks behaviours the plugin relies on
against what Consul's HTTP API reference says (the pages named in the emulator's docstring)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from consul_emulator import ConsulEmulator

from stolon.testing.store_contract import unique_cluster_name, wait_until


class Http:
    def __init__(self, url: str) -> None:
        self.url = url
        self.s = requests.Session()
        self.s.trust_env = False

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.s.get(f"{self.url}/v1/{path}", params=params, timeout=30)

    def put(self, path: str, data: Any = b"", **params: Any) -> requests.Response:
        body = json.dumps(data).encode() if isinstance(data, dict | list) else data
        return self.s.put(f"{self.url}/v1/{path}", params=params, data=body, timeout=30)

    def delete(self, path: str, **params: Any) -> requests.Response:
        return self.s.delete(f"{self.url}/v1/{path}", params=params, timeout=30)

    def entry(self, key: str) -> dict[str, Any] | None:
        r = self.get(f"kv/{key}")
        return None if r.status_code == 404 else dict(r.json()[0])

    def session(self, behavior: str = "release", ttl: str = "", lock_delay: str = "0s") -> str:
        body = {"Behavior": behavior, "LockDelay": lock_delay, **({"TTL": ttl} if ttl else {})}
        r = self.put("session/create", body)
        assert r.status_code == 200, r.text
        return str(r.json()["ID"])


@pytest.fixture
def http(consul_emulator: ConsulEmulator) -> Iterator[Http]:
    h = Http(consul_emulator.url)
    yield h
    h.s.close()


@pytest.fixture
def key() -> str:
    return f"emulator/{unique_cluster_name()}/k"


def test_kv_read_write_and_cas(http: Http, key: str) -> None:
    r = http.get(f"kv/{key}")
    assert r.status_code == 404 and int(r.headers["X-Consul-Index"]) >= 1
    assert http.put(f"kv/{key}", b"v1", flags=7).json() is True
    r = http.get(f"kv/{key}")
    e = r.json()[0]
    assert base64.b64decode(e["Value"]) == b"v1" and e["Flags"] == 7
    assert e["CreateIndex"] == e["ModifyIndex"] == int(r.headers["X-Consul-Index"])
    assert http.put(f"kv/{key}", b"x", cas=0).json() is False  # cas=0: only if missing
    assert http.put(f"kv/{key}", b"x", cas=e["ModifyIndex"] + 100).json() is False
    assert http.put(f"kv/{key}", b"v2", cas=e["ModifyIndex"]).json() is True
    e2 = http.entry(key)
    assert e2 is not None and e2["ModifyIndex"] > e["ModifyIndex"] and e2["CreateIndex"] == e["CreateIndex"]
    http.put(f"kv/{key}", b"v2")  # the value and flags (0) the cas wrote: nothing changes
    assert http.entry(key)["ModifyIndex"] == e2["ModifyIndex"]  # type: ignore[index]
    r = http.put(f"kv/{key}", b"x", cas=1, acquire="s")
    assert r.status_code == 400 and "Conflicting flags" in r.text
    assert http.delete(f"kv/{key}", cas=0).json() is False  # a 0 index never deletes
    assert http.delete(f"kv/{key}").json() is True and http.entry(key) is None


def test_locks(http: Http, key: str) -> None:
    a, b = http.session(), http.session()
    assert http.put(f"kv/{key}", b"a", acquire=a).json() is True
    e = http.entry(key)
    assert e is not None and e["Session"] == a and e["LockIndex"] == 1
    assert http.put(f"kv/{key}", b"b", acquire=b).json() is False
    assert http.put(f"kv/{key}", b"a2", acquire=a).json() is True  # the holder updates
    e = http.entry(key)
    assert e is not None and e["LockIndex"] == 1 and base64.b64decode(e["Value"]) == b"a2"
    http.put(f"kv/{key}", b"plain")  # a plain update keeps the lock
    assert http.entry(key)["Session"] == a  # type: ignore[index]
    assert http.put(f"kv/{key}", b"x", release=b).json() is False
    before = http.entry(key)
    assert http.put(f"kv/{key}", b"released", release=a).json() is True
    e = http.entry(key)
    assert e is not None and "Session" not in e and e["LockIndex"] == 1
    assert e["ModifyIndex"] > before["ModifyIndex"]  # type: ignore[index]
    assert http.put(f"kv/{key}", b"b", acquire=b).json() is True
    assert http.entry(key)["LockIndex"] == 2  # type: ignore[index]
    r = http.put(f"kv/{key}2", b"x", acquire="no-such-session")
    assert r.status_code == 500 and "invalid session" in r.text


def test_sessions(http: Http, key: str, consul_emulator: ConsulEmulator) -> None:
    r = http.put("session/create", {"TTL": "0.5s"})
    assert r.status_code == 500 and "Invalid Session TTL" in r.text  # below session_ttl_min (1s)
    assert http.put("session/renew/nope").status_code == 404
    assert http.put("session/destroy/nope").json() is True
    assert http.get("session/info/nope").json() == []
    deleter = http.session("delete")
    assert http.put(f"kv/{key}", b"d", acquire=deleter).json() is True
    assert http.put(f"session/destroy/{deleter}").json() is True
    assert http.entry(key) is None, "behavior delete must delete the held key"
    releaser = http.session("release", lock_delay="3s")
    assert http.put(f"kv/{key}", b"r", acquire=releaser).json() is True
    idx = http.entry(key)["ModifyIndex"]  # type: ignore[index]
    http.put(f"session/destroy/{releaser}")
    e = http.entry(key)
    assert e is not None and "Session" not in e and e["ModifyIndex"] > idx
    other = http.session()
    assert http.put(f"kv/{key}", b"o", acquire=other).json() is False, "lock-delay not applied"
    assert wait_until(lambda: http.put(f"kv/{key}", b"o", acquire=other).json() is True, 10)
    info = http.get(f"session/info/{other}").json()[0]
    assert info["Behavior"] == "release" and info["LockDelay"] == 0 and info["NodeChecks"] == ["serfHealth"]


def test_ttl_expiry(http: Http, key: str) -> None:
    s = http.session("delete", ttl="1s")
    assert http.put(f"kv/{key}", b"t", acquire=s).json() is True
    assert http.put(f"session/renew/{s}").json()[0]["TTL"] == "1s"
    assert wait_until(lambda: http.entry(key) is None, 5), "the TTL session never expired"
    assert http.put(f"session/renew/{s}").status_code == 404


def test_txn_is_atomic_and_reports_the_failed_operation(http: Http, key: str) -> None:
    b64 = base64.b64encode(b"v").decode()
    s = http.session()
    http.put(f"kv/{key}-lock", b"x", acquire=s)
    ops: list[dict[str, dict[str, Any]]] = [
        {"KV": {"Verb": "set", "Key": f"{key}-a", "Value": b64}},
        {"KV": {"Verb": "check-session", "Key": f"{key}-lock", "Session": "someone-else"}},
        {"KV": {"Verb": "cas", "Key": f"{key}-b", "Value": b64, "Index": 5}},
    ]
    r = http.put("txn", ops)
    assert r.status_code == 409
    body = r.json()
    assert body["Results"] is None
    assert [e["OpIndex"] for e in body["Errors"]] == [1, 2]
    assert "failed session check" in body["Errors"][0]["What"]
    assert http.entry(f"{key}-a") is None, "a rolled back transaction applied a write"
    ops[1]["KV"]["Session"] = s
    ops[2]["KV"]["Index"] = 0
    ops.append({"KV": {"Verb": "get", "Key": f"{key}-lock"}})
    r = http.put("txn", ops)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = [x["KV"] for x in r.json()["Results"]]
    assert [x["Key"] for x in results] == [f"{key}-a", f"{key}-lock", f"{key}-b", f"{key}-lock"]
    assert [x["Value"] for x in results[:3]] == [None, None, None]  # only get returns values
    assert base64.b64decode(results[3]["Value"]) == b"x"
    assert len({x["ModifyIndex"] for x in (results[0], results[2])}) == 1  # one index per txn


def test_blocking_queries(http: Http, key: str) -> None:
    prefix = key + "/"
    http.put(f"kv/{prefix}a", b"1")
    index = int(http.get(f"kv/{prefix}", recurse="").headers["X-Consul-Index"])
    started = time.monotonic()
    r = http.get(f"kv/{prefix}", recurse="", index=index, wait="300ms")
    assert int(r.headers["X-Consul-Index"]) == index and time.monotonic() - started >= 0.29
    timer = threading.Timer(0.2, lambda: http.delete(f"kv/{prefix}a"))
    timer.start()
    r = http.get(f"kv/{prefix}", recurse="", index=index, wait="30s")
    timer.join()
    # the delete wakes it and moves the index forward (tombstone), though nothing is left
    assert r.status_code == 404 and int(r.headers["X-Consul-Index"]) > index


def test_services_and_catalog(http: Http) -> None:
    name = unique_cluster_name()
    body = {"ID": f"{name}-1", "Name": name, "Tags": ["a"], "Address": "10.1.1.1", "Port": 5432,
            "Check": {"TCP": "10.1.1.1:5432", "Interval": "10s"}}  # fmt: skip
    assert http.put("agent/service/register", body).status_code == 200
    assert http.put("agent/service/register", {"Port": 1}).status_code == 400  # Name is required
    got = http.get(f"catalog/service/{name}").json()
    assert [
        (s["ServiceID"], s["ServiceName"], s["ServiceTags"], s["ServiceAddress"], s["ServicePort"])
        for s in got
    ] == [(f"{name}-1", name, ["a"], "10.1.1.1", 5432)]
    assert http.get(f"catalog/service/{name}", tag="b").json() == []
    assert http.put(f"agent/service/deregister/{name}-1").status_code == 200
    assert http.put(f"agent/service/deregister/{name}-1").status_code == 200  # no action
    assert http.get(f"catalog/service/{name}").json() == []


def test_restart_keeps_data_and_renews_ttls(consul_emulator_control: ConsulEmulator, key: str) -> None:
    h = Http(consul_emulator_control.url)
    try:
        s = h.session("delete", ttl="1s")
        h.put(f"kv/{key}", b"kept", acquire=s)
        consul_emulator_control.stop()
        with pytest.raises(requests.ConnectionError):
            h.get(f"kv/{key}")
        time.sleep(2.5)  # longer than the session could live: no timers run while stopped
        consul_emulator_control.start()
        e = h.entry(key)
        assert e is not None and e["Session"] == s, "the session did not get a fresh TTL on restart"
    finally:
        h.s.close()
