"""Proxies: which are alive and the two fencing steps of a master change.

Step 1 (at election, in :mod:`stolon.sentinel.failover`): clear ``masterDbUid`` so every
proxy drops its client connections. Step 2 (here, once the master is settled): when every
active proxy reports the proxy generation of step 1, point them at the master, then keep
``enabledProxies`` equal to the active proxies.
"""

from __future__ import annotations

from collections.abc import Mapping

from stolon.model.cluster import DB, ClusterData
from stolon.model.infos import ProxyInfo
from stolon.sentinel.cycle import Cycle, proxy
from stolon.sentinel.events import (
    EnabledProxiesChanged,
    ProxiesPointed,
    ProxiesWait,
    ProxiesWaiting,
)
from stolon.sentinel.memory import ProxyInfoSeen


def active_proxies(
    proxies_info: Mapping[str, ProxyInfo], history: Mapping[str, ProxyInfoSeen], now_mono: float
) -> tuple[dict[str, ProxyInfo], dict[str, ProxyInfoSeen]]:
    """The proxies considered alive, and the new proxy info history (Go's activeProxiesInfos).

    A proxy is inactive when its InfoUID has not changed for more than twice the proxyTimeout
    it publishes. Proxies never seen before count as active (a stale one is at worst enabled
    for a while); history entries of proxies whose info disappeared are dropped.
    """
    new_history = {uid: h for uid, h in history.items() if uid in proxies_info}
    active: dict[str, ProxyInfo] = {}
    for uid in sorted(proxies_info):
        pi = proxies_info[uid]
        seen = new_history.get(uid)
        if seen is not None and seen.info_uid == pi.info_uid:
            if now_mono - seen.changed_at > 2 * pi.proxy_timeout_ns / 1e9:
                continue
        else:
            new_history[uid] = ProxyInfoSeen(pi.info_uid, now_mono)
        active[uid] = pi
    return active, new_history


def master_promoted(master: DB) -> bool:
    """Quirk 3: the keeper reports the DB's current generation, so it applied the spec that
    made it master (and any later one). Until then it may still be in recovery."""
    return master.status.current_generation == master.generation


def point_proxies(cd: ClusterData, master: DB, cyc: Cycle) -> None:
    """Fencing step 2 and enabled proxies, for a settled master (cur master == wanted master)."""
    p = proxy(cd)
    if not p.spec.master_db_uid:
        unconverged = tuple(uid for uid, pi in cyc.active_proxies.items() if pi.generation != p.generation)
        if unconverged:
            cyc.emit(ProxiesWaiting(master.uid, ProxiesWait.NOT_CONVERGED, unconverged, p.generation))
        elif not master_promoted(master):
            cyc.emit(ProxiesWaiting(master.uid, ProxiesWait.MASTER_NOT_PROMOTED, (), p.generation))
        elif not master.status.healthy:
            # A master that failed with no replacement available: don't route clients to it.
            cyc.emit(ProxiesWaiting(master.uid, ProxiesWait.MASTER_UNHEALTHY, (), p.generation))
        else:
            p.spec.master_db_uid = master.uid
            p.generation += 1
            cyc.emit(ProxiesPointed(master.uid, p.generation))
        return
    enabled = sorted(cyc.active_proxies)
    old = sorted(p.spec.enabled_proxies or [])
    # Compared as sets: Go compares nil with [] and bumps the generation every cycle when no
    # proxy is active (the stored empty list reads back as nil).
    if old != enabled:
        p.spec.enabled_proxies = enabled
        p.generation += 1
        cyc.emit(EnabledProxiesChanged(tuple(old), tuple(enabled), p.generation))
