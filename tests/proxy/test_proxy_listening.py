"""Go Stolon's TestProxyListening (cmd/proxy, integration tests), with the daemon as a subprocess and a
real etcd that the test stops, restarts and freezes; plus what happens to connections.

The cluster spec uses proxyCheckInterval 1s and proxyTimeout 4s (Go's test: the 5s/15s
defaults), so "within 2 x proxyTimeout" is 8s here.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from stolon.model.uid import new_uid
from stolon.netutil import free_port
from stolon.store import open_store

if TYPE_CHECKING:
    from stolon_store_etcd.testing import EtcdServer

from stolon.plugins import load_plugins
from stolon.testing.proxy_harness import (
    CDDef,
    EchoClient,
    EchoServer,
    ProxyProcess,
    echo_roundtrip,
    etcd_store_config,
    make_cd,
    master_db,
    wait_until,
)

#: The installed plugins, as a process's entry point loads them.
PLUGINS = load_plugins()

pytestmark = pytest.mark.integration

INTERVAL = 1.0
TIMEOUT = 4.0


def test_proxy_listening(etcd_server_control: EtcdServer, tmp_path: Path) -> None:
    etcd = etcd_server_control
    cfg = etcd_store_config(etcd.endpoints, f"proxytest-{new_uid()}", timeout=1.0)
    port = free_port()
    echo = EchoServer()
    proxy = ProxyProcess(cfg, port, log_dir=tmp_path)
    clients: list[EchoClient] = []
    try:
        # 1. started with the store down: never listens
        etcd.stop()
        proxy.start()
        proxy.uid()
        time.sleep(3)
        assert not proxy.listening(), proxy.log()
        assert proxy.stop() == 0

        # 2. store up with a hand-written cd (enabledProxies empty, as in Go's test): listens
        etcd.start()
        store = open_store(cfg, PLUGINS)
        d = CDDef(
            dbs=[master_db("01", echo.port)],
            master="01",
            check_interval=f"{INTERVAL:g}s",
            timeout=f"{TIMEOUT:g}s",
        )
        store.put_cluster_data(make_cd(d))
        proxy = ProxyProcess(cfg, port, log_dir=tmp_path).start()
        uid = proxy.uid()
        wait_until(proxy.listening, 10, "the proxy to listen")
        assert not echo_roundtrip(port), "a proxy not in enabledProxies must not route"
        wait_until(lambda: uid in store.proxies_info(), 10, "the proxy to publish its ProxyInfo")
        assert store.proxies_info()[uid].generation == 1
        # enabled: it routes
        d.enabled_proxies = [uid]
        store.put_cluster_data(make_cd(d))
        wait_until(lambda: echo_roundtrip(port), 10, "the proxy to route to the master")

        # 3. store stopped: connections closed and not listening within 2 x proxyTimeout
        clients.append(EchoClient(port))
        assert clients[-1].alive()
        etcd.stop()
        t0 = time.monotonic()
        wait_until(lambda: not proxy.listening(), 2 * TIMEOUT, "the proxy to stop listening")
        assert time.monotonic() - t0 > TIMEOUT - INTERVAL - 0.5
        assert clients[-1].closed(timeout=1)

        # 4. store back: listening again
        etcd.start()
        wait_until(proxy.listening, 10, "the proxy to listen again")
        wait_until(lambda: echo_roundtrip(port), 10, "routing again")

        # 5. an outage shorter than proxyTimeout: still listening, connections kept
        clients.append(EchoClient(port))
        assert clients[-1].alive()
        etcd.stop()
        time.sleep(TIMEOUT / 3)
        etcd.start()
        assert proxy.listening()
        time.sleep(2 * INTERVAL)
        assert proxy.listening()
        assert clients[-1].alive(), "a short store outage must not drop connections"

        # 6. masterDbUid cleared: connections closed, listener kept; restored: routes again
        d.master_db_uid = ""
        d.proxy_generation += 1
        store.put_cluster_data(make_cd(d))
        assert clients[-1].closed(timeout=10)
        assert proxy.listening()
        wait_until(
            lambda: store.proxies_info()[uid].generation == d.proxy_generation, 10, "the new generation"
        )
        assert not echo_roundtrip(port)
        d.master_db_uid = None
        d.proxy_generation += 1
        store.put_cluster_data(make_cd(d))
        wait_until(lambda: echo_roundtrip(port), 10, "routing after masterDbUid is restored")
        assert proxy.listening()

        # 7. cluster data deleted (a null document): still listening, connections closed
        clients.append(EchoClient(port))
        assert clients[-1].alive()
        store.backend.put_cluster_data(b"null")
        assert clients[-1].closed(timeout=10)
        time.sleep(2 * INTERVAL)
        assert proxy.listening()

        # 8. store frozen (SIGSTOP): not listening within 2 x proxyTimeout; SIGCONT: listening
        etcd.freeze()
        wait_until(lambda: not proxy.listening(), 2 * TIMEOUT, "the proxy to stop listening (store frozen)")
        etcd.thaw()
        wait_until(proxy.listening, 10, "the proxy to listen after SIGCONT")

        # clean shutdown on SIGINT as well as SIGTERM
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGINT)
        assert proxy.proc.wait(15) == 0
        assert "stopping" in proxy.log()
        store.close()
    finally:
        for c in clients:
            c.close()
        proxy.stop()
        echo.close()


def test_stop_listening_false_keeps_the_listener(etcd_server_control: EtcdServer, tmp_path: Path) -> None:
    etcd = etcd_server_control
    cfg = etcd_store_config(etcd.endpoints, f"proxytest-{new_uid()}", timeout=1.0)
    port = free_port()
    echo = EchoServer()
    proxy = ProxyProcess(cfg, port, ["--stop-listening=false"], log_dir=tmp_path)
    try:
        store = open_store(cfg, PLUGINS)
        d = CDDef(dbs=[master_db("01", echo.port)], master="01", check_interval="1s", timeout="2s")
        store.put_cluster_data(make_cd(d))
        proxy.start()
        d.enabled_proxies = [proxy.uid()]
        store.put_cluster_data(make_cd(d))
        wait_until(lambda: echo_roundtrip(port), 15, "routing")
        client = EchoClient(port)
        etcd.stop()
        # Go's behaviour (issues #790, #859): connections are dropped even so
        assert client.closed(timeout=8)
        assert proxy.listening()
        assert not echo_roundtrip(port)
        client.close()
        store.close()
    finally:
        proxy.stop()
        echo.close()
