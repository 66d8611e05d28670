"""Failover benchmark (issue 12 item 6): how long writes through the proxy stop, and how many
acknowledged rows are lost, when the master fails or is switched over; with Patroni + HAProxy
side by side in the same run where Patroni is available.

A writer inserts one row every 20 ms through the proxy (stolon) or HAProxy (Patroni) and
records every acknowledgement. Each round starts from a healthy cluster, causes the event,
waits until the cluster has recovered and writes succeed again, then measures the write gap
(the longest stretch without a successful write since the event) and the acknowledged rows
missing on the new master. Killed processes are started again before the next round.

Scenarios (``--scenario``, comma-separated or ``all``):
  node-loss        SIGKILL the master's keeper and its postmaster (a machine dying)
  postmaster-kill  SIGKILL only the master's postmaster (the keeper restarts PostgreSQL)
  leader-kill      node loss, then SIGKILL of the leader sentinel as soon as it has elected
                   the new master (the other sentinel must finish the failover); stolon only
  switchover       ``stolonctl switchover --wait --yes`` (Patroni: ``POST /switchover``)

Specs (``--spec``; stolon's spec on top of the local cluster's, Patroni's timings):
  default  Go Stolon's defaults: sleepInterval 5s, failInterval 20s, requestTimeout 10s,
           proxyCheckInterval 5s, proxyTimeout 15s, sentinel election TTL 20s (Go's fixed one)
           | Patroni's defaults: ttl 30, loop_wait 10, retry_timeout 10; HAProxy checks /primary
           every 3s, fall 3, rise 2 (Patroni's documented haproxy.cfg)
  tight    sleepInterval 1s, failInterval 3s, requestTimeout 2s, proxyCheckInterval 1s,
           proxyTimeout 3s, election TTL 5s
           | Patroni as tight as it allows: ttl 20 (its floor), loop_wait 1, retry_timeout 3;
           HAProxy every 1s, fall 2, rise 1
  fi2      sleepInterval 1s, failInterval 2s, requestTimeout 2s, proxyCheckInterval 1s,
           proxyTimeout 3s, election TTL 5s   | Patroni: same as tight (ttl can't go lower)

Modes (``--mode``): async, sync (stolon ``synchronousReplication``; Patroni
``synchronous_mode``, not strict), or both.

Stores (``--store``): the embedded store, or ``etcd`` (a real etcd on free ports, shared with
Patroni). Patroni always needs etcd: one is started for it when ``--patroni`` is on.

    .venv/bin/python benchmarks/failover.py --scenario node-loss --spec tight --mode async --rounds 5
    .venv/bin/python benchmarks/failover.py --store etcd --patroni yes --rounds 5   # everything
    .venv/bin/python benchmarks/failover.py --setup-patroni        # only install Patroni + HAProxy

``--patroni auto`` (the default) runs Patroni when it is installed in its venv (see
``stolon.testing.patroni_cluster``) or can be installed; ``yes`` fails if it can't; ``no``
skips it. ``--hold DURATION`` starts stolon's proxy with ``--hold-connections-timeout`` (it
holds new connections while there is no master instead of refusing them; off by default, as
in Go). ``--json FILE`` writes every round; ``--quick`` shortens the settle waits (CI smoke).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from stolon.local.cluster import LocalCluster
from stolon.plugins import load_plugins
from stolon.testing.writer import Writer

SCENARIOS = ["node-loss", "postmaster-kill", "leader-kill", "switchover"]
MODES = ["async", "sync"]


@dataclass(frozen=True)
class Spec:
    stolon: dict[str, Any]
    election_ttl: str
    patroni: str  # key of PATRONI_PROFILES


SPECS: dict[str, Spec] = {
    "default": Spec(
        {"sleepInterval": "5s", "failInterval": "20s", "requestTimeout": "10s",
         "proxyCheckInterval": "5s", "proxyTimeout": "15s"},
        "20s", "default",
    ),
    "tight": Spec(
        {"sleepInterval": "1s", "failInterval": "3s", "requestTimeout": "2s",
         "proxyCheckInterval": "1s", "proxyTimeout": "3s"},
        "5s", "tight",
    ),
    "fi2": Spec(
        {"sleepInterval": "1s", "failInterval": "2s", "requestTimeout": "2s",
         "proxyCheckInterval": "1s", "proxyTimeout": "3s"},
        "5s", "tight",
    ),
}  # fmt: skip

#: how long a round may take from the event to recovered writes before it counts as failed
ROUND_TIMEOUT = 300.0


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- what a round drives ------------------------------------------------------------------------
class Target(Protocol):
    """One HA system under test: the operations the scenarios need."""

    system: str

    def dsn(self) -> str: ...
    def master(self) -> str | None: ...
    def postmaster_pid(self, node: str) -> int | None: ...
    def kill_node(self, node: str) -> None: ...
    def restart_node(self, node: str) -> None: ...
    def wait_healthy(self, timeout: float) -> None: ...
    def switchover(self, master: str) -> tuple[bool, str]: ...


class StolonTarget:
    system = "stolon"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def dsn(self) -> str:
        return self.cluster.dsn()

    def master(self) -> str | None:
        return self.cluster.master_keeper()

    def postmaster_pid(self, node: str) -> int | None:
        return self.cluster.postmaster_pid(node)

    def kill_node(self, node: str) -> None:
        self.cluster.kill_keeper_and_postgres(node)

    def restart_node(self, node: str) -> None:
        self.cluster.processes[node].start()

    def wait_healthy(self, timeout: float) -> None:
        """Healthy as the cluster data says, and every standby streaming from the master.

        The cluster data says a standby is healthy before its WAL receiver has reconnected
        (after the master restarted it retries every ``wal_retrieve_retry_interval``, 5 s):
        a round started then would measure that window's loss, not the scenario's.
        """
        deadline = time.monotonic() + timeout
        self.cluster.wait_healthy(timeout)
        want = len(self.cluster.keeper_uids()) - 1
        streaming = -1
        while time.monotonic() < deadline:
            master = self.cluster.master_keeper()
            if master is not None:
                try:
                    dsn = self.cluster.dsn(port=self.cluster.keeper_pg_port(master))
                    with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
                        row = conn.execute(
                            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                        ).fetchone()
                    streaming = int(row[0]) if row is not None else 0
                except psycopg.Error:
                    streaming = -1
                if streaming >= want:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"only {max(streaming, 0)}/{want} standbys streaming after {timeout:g}s")

    def switchover(self, master: str) -> tuple[bool, str]:
        argv = [
            sys.executable, "-m", "stolon.cli.stolonctl", *self.cluster.store_args(),
            "switchover", "--wait", "--yes", "--timeout", "120s",
        ]  # fmt: skip
        res = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        return res.returncode == 0, (res.stdout + res.stderr).strip()[-600:]

    def proxy_routes(self, node: str) -> bool:
        """The proxies are pointed at ``node``'s DB."""
        cd = self.cluster.cluster_data()
        if cd is None or cd.proxy is None:
            return False
        db = cd.dbs.get(cd.proxy.spec.master_db_uid or "") if cd.dbs else None
        return db is not None and db.spec is not None and db.spec.keeper_uid == node


class PatroniTarget:
    system = "patroni"

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster  # stolon.testing.patroni_cluster.PatroniCluster

    def dsn(self) -> str:
        return str(self.cluster.dsn())

    def master(self) -> str | None:
        m = self.cluster.leader()
        return str(m) if m is not None else None

    def postmaster_pid(self, node: str) -> int | None:
        pid = self.cluster.postmaster_pid(node)
        return int(pid) if pid is not None else None

    def kill_node(self, node: str) -> None:
        self.cluster.kill_node(node)

    def restart_node(self, node: str) -> None:
        self.cluster.start_node(node)

    def wait_healthy(self, timeout: float) -> None:
        self.cluster.wait_healthy(timeout)

    def switchover(self, master: str) -> tuple[bool, str]:
        ok, text = self.cluster.switchover(master)
        return bool(ok), str(text)


# -- rounds -------------------------------------------------------------------------------------
@dataclass
class Round:
    system: str
    scenario: str
    mode: str
    spec: str
    index: int
    gap: float | None = None
    lost: int | None = None
    old: str = ""
    new: str = ""
    note: str = ""
    ok: bool = True
    #: seconds from the event until the command returned (switchover only)
    command_s: float | None = None


@dataclass
class Ctx:
    target: Target
    writer: Writer
    quick: bool
    #: ids already reported missing by an earlier round (so each round counts its own losses)
    seen_missing: set[int] = field(default_factory=set)
    #: stolon only: restarts the leader sentinel killed by leader-kill
    pending_restart: list[Callable[[], object]] = field(default_factory=list)


def _oks_since(writer: Writer, since: float) -> int:
    return sum(1 for t, ok in writer.attempts[-200:] if ok and t > since)


def _wait_writes(writer: Writer, count: int, timeout: float) -> bool:
    """``count`` consecutive successful writes (the writer is up to speed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = writer.attempts[-count:]
        if len(tail) == count and all(ok for _, ok in tail):
            return True
        time.sleep(0.05)
    return False


def run_round(ctx: Ctx, scenario: str, r: Round, stolon: StolonTarget | None) -> Round:
    target, writer = ctx.target, ctx.writer
    old = target.master()
    if old is None:
        r.ok, r.note = False, "no master before the event"
        return r
    r.old = old
    _wait_writes(writer, 10, 60)
    time.sleep(0.5 if ctx.quick else 2.0)
    killed_pm: int | None = None
    command: dict[str, Any] = {}
    leader_name: str | None = None
    if scenario == "leader-kill" and stolon is not None:
        leader_name = stolon.cluster.leader_sentinel()
        if leader_name is None:
            r.ok, r.note = False, "no leader sentinel found"
            return r
    event = time.monotonic()
    if scenario in ("node-loss", "leader-kill"):
        target.kill_node(old)
    elif scenario == "postmaster-kill":
        killed_pm = target.postmaster_pid(old)
        if killed_pm is None:
            r.ok, r.note = False, "no postmaster pid for the master"
            return r
        os.kill(killed_pm, signal.SIGKILL)
    elif scenario == "switchover":

        def call() -> None:
            ok, text = target.switchover(old)
            command.update(ok=ok, text=text, at=time.monotonic())

        threading.Thread(target=call, daemon=True).start()

    deadline = event + ROUND_TIMEOUT
    seen_at: float | None = None
    leader_killed = False
    while time.monotonic() < deadline:
        m = target.master()
        if scenario == "leader-kill" and not leader_killed and stolon is not None and leader_name:
            if m not in (None, old):
                late = stolon.proxy_routes(m)
                stolon.cluster.processes[leader_name].kill()
                leader_killed = True
                r.note = f"leader {leader_name} killed {time.monotonic() - event:.2f}s after the node" + (
                    " (late: the proxy already routed to the new master)" if late else ""
                )
                ctx.pending_restart.append(stolon.cluster.processes[leader_name].start)
            time.sleep(0.02)
            continue
        if seen_at is None:
            if scenario == "postmaster-kill":
                pm = target.postmaster_pid(m) if m is not None else None
                done = m not in (None, old) or (m == old and pm is not None and pm != killed_pm)
            elif scenario == "switchover":
                done = bool(command) and m not in (None, old)
                if command and not command.get("ok"):
                    r.ok, r.note = False, f"switchover failed: {command.get('text')}"
                    break
            else:
                done = m not in (None, old)
            if done:
                seen_at = time.monotonic()
        if seen_at is not None and _oks_since(writer, seen_at) >= (5 if ctx.quick else 10):
            break
        time.sleep(0.1)
    else:
        r.ok, r.note = False, (r.note + "; " if r.note else "") + f"not recovered after {ROUND_TIMEOUT:g}s"
    r.new = target.master() or "?"
    if command.get("at") is not None:
        r.command_s = float(command["at"]) - event
    r.gap = writer.unavailability(event - 0.5)
    try:
        missing = set(writer.missing(target.dsn())) - ctx.seen_missing
        ctx.seen_missing |= missing
        r.lost = len(missing)
    except Exception as e:  # the cluster may be down after a failed round
        r.note = (r.note + "; " if r.note else "") + f"lost rows not checked: {e}"
    # put back what the round killed; the next round waits for the cluster to be healthy
    if scenario in ("node-loss", "leader-kill"):
        target.restart_node(old)
    for restart in ctx.pending_restart:
        restart()
    ctx.pending_restart.clear()
    return r


def run_rounds(
    target: Target,
    *,
    quick: bool,
    system: str,
    scenarios: list[str],
    mode: str,
    spec: str,
    rounds: int,
    stolon: StolonTarget | None,
) -> list[Round]:
    """Every round of ``scenarios`` on a started cluster, the same way for each system: once
    ``target`` is healthy, with the writer inserting through it."""
    target.wait_healthy(ROUND_TIMEOUT)
    with writing(target) as writer:
        ctx = Ctx(target, writer, quick)
        out: list[Round] = []
        for scenario in scenarios:
            for i in range(1, rounds + 1):
                try:
                    ctx.target.wait_healthy(ROUND_TIMEOUT)
                except (TimeoutError, RuntimeError) as e:
                    out.append(Round(system, scenario, mode, spec, i, ok=False, note=f"not healthy: {e}"))
                    log(
                        f"{system} {scenario} {mode} {spec}: not healthy before round {i}, stopping here: {e}"
                    )
                    return out
                r = run_round(ctx, scenario, Round(system, scenario, mode, spec, i), stolon)
                out.append(r)
                extra = f", command {r.command_s:.2f}s" if r.command_s is not None else ""
                gap = f"{r.gap:6.2f}s" if r.gap is not None else "   ?"
                log(
                    f"{system:<7} {scenario:<15} {mode:<5} {spec:<7} round {i}: {r.old} -> {r.new}: write gap {gap},"
                    f" {r.lost if r.lost is not None else '?'} acknowledged rows lost{extra}"
                    + (f" [{r.note}]" if r.note else "")
                    + ("" if r.ok else " FAILED")
                )
                if not r.ok:
                    break
        return out


@contextlib.contextmanager
def writing(target: Target) -> Iterator[Writer]:
    writer = Writer(target.dsn(), interval=0.02)
    writer.setup()
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()


def run_stolon(
    *,
    spec_name: str, mode: str, scenarios: list[str], rounds: int, store: str, etcd: Any, quick: bool,
    hold: str = "",
) -> list[Round]:  # fmt: skip
    spec = SPECS[spec_name]
    base = Path(tempfile.mkdtemp(prefix="stolon-failover-", dir="/tmp"))
    os.chmod(base, 0o755)
    backend, endpoints = ("etcdv3", list(etcd.endpoints)) if store == "etcd" else ("embedded", None)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, True)
        cluster = LocalCluster.create(
            base / "c", backends=load_plugins(), keepers=3, sentinels=2, synchronous=mode == "sync", spec=spec.stolon,
            store_backend=backend, store_endpoints=endpoints, election_ttl=spec.election_ttl,
            name=f"bench{os.getpid()}{spec_name}{mode}",
        )  # fmt: skip
        stack.callback(cluster.stop)
        if hold:
            cluster.processes["proxy"].env["STPROXY_HOLD_CONNECTIONS_TIMEOUT"] = hold
        log(
            f"stolon: starting 3 keepers, 2 sentinels, 1 proxy ({store} store, {mode}, spec {spec_name},"
            f" proxy hold {hold or 'off'})"
        )
        cluster.start()
        target = StolonTarget(cluster)
        return run_rounds(
            target,
            quick=quick,
            system="stolon",
            scenarios=scenarios,
            mode=mode,
            spec=spec_name,
            rounds=rounds,
            stolon=target,
        )


def run_patroni(
    *,
    profile: str,
    mode: str,
    spec_label: str,
    scenarios: list[str],
    rounds: int,
    etcd: Any,
    tools: tuple[Path, str],
    quick: bool,
) -> list[Round]:
    from stolon.testing.patroni_cluster import PATRONI_DEFAULT, PATRONI_TIGHT, PatroniCluster

    timings = PATRONI_DEFAULT if profile == "default" else PATRONI_TIGHT
    hosts = [u.split("://", 1)[-1] for u in etcd.endpoints]
    cluster = PatroniCluster(
        Path(tempfile.mkdtemp(prefix="stolon-bench-patroni-", dir="/tmp")), hosts, timings=timings,
        synchronous=mode == "sync", patroni=tools[0], haproxy=tools[1],
    )  # fmt: skip
    try:
        log(f"patroni: starting 3 nodes + HAProxy ({mode}, {timings.describe()})")
        cluster.start()
        return run_rounds(
            PatroniTarget(cluster),
            quick=quick,
            system="patroni",
            scenarios=scenarios,
            mode=mode,
            spec=spec_label,
            rounds=rounds,
            stolon=None,
        )
    finally:
        cluster.stop()


# -- report -------------------------------------------------------------------------------------
def summarize(rounds: list[Round]) -> str:
    gaps = [r.gap for r in rounds if r.ok and r.gap is not None]
    lost = [r.lost for r in rounds if r.lost is not None]
    failed = sum(1 for r in rounds if not r.ok)
    if not gaps:
        return "failed" if failed else "-"
    text = f"{statistics.median(gaps):5.1f} / {max(gaps):5.1f} s, lost {max(lost) if lost else '?'}"
    cmd = [r.command_s for r in rounds if r.command_s is not None]
    if cmd:
        text += f", cmd {statistics.median(cmd):.1f} s"
    if failed:
        text += f", {failed} failed"
    return text + f" (n={len(gaps)})"


def print_table(results: list[Round], patroni_for: dict[str, str], patroni_on: bool) -> None:
    print(
        "\nwrite gap through the proxy (median / max over the rounds) and acknowledged rows lost (max per round)"
    )
    head = f"{'scenario':<16} {'mode':<5} {'spec':<8} {'stolon':<42}"
    if patroni_on:
        head += " patroni + HAProxy"
    print(head)
    keys: list[tuple[str, str, str]] = []
    for r in results:
        if r.system == "stolon" and (r.scenario, r.mode, r.spec) not in keys:
            keys.append((r.scenario, r.mode, r.spec))
    for scenario, mode, spec in keys:
        ours = [
            r
            for r in results
            if r.system == "stolon" and (r.scenario, r.mode, r.spec) == (scenario, mode, spec)
        ]
        line = f"{scenario:<16} {mode:<5} {spec:<8} {summarize(ours):<42}"
        if patroni_on:
            if scenario == "leader-kill":
                line += " n/a (no sentinel)"
            else:
                label = patroni_for[spec]
                theirs = [
                    r for r in results
                    if r.system == "patroni" and (r.scenario, r.mode, r.spec) == (scenario, mode, label)
                ]  # fmt: skip
                line += " " + summarize(theirs) + (f" (= {label})" if label != spec else "")
        print(line)


def parse_list(value: str, allowed: list[str], flag: str) -> list[str]:
    items = allowed if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(
            f"{flag}: unknown {', '.join(bad) or 'empty value'}; choose from {', '.join(allowed)} or all"
        )
    return items


def patroni_tools(setting: str, install: bool) -> tuple[Path, str] | None:
    from stolon.testing.patroni_cluster import PatroniUnavailable, ensure_haproxy, ensure_patroni

    try:
        return ensure_patroni(install=install), ensure_haproxy(install=install)
    except PatroniUnavailable as e:
        if setting == "yes":
            raise SystemExit(f"--patroni yes: {e}") from None
        log(f"Patroni side skipped: {e}")
        return None


@contextlib.contextmanager
def maybe_etcd(needed: bool) -> Iterator[Any]:
    if not needed:
        yield None
        return
    try:
        from stolon_store_etcd.testing import EtcdServer
    except ImportError:
        raise SystemExit(
            "etcd is needed (--store etcd or Patroni): install plugins/stolon-store-etcd"
        ) from None
    server = EtcdServer(name="stolon-bench")
    try:
        server.start()
        log(f"etcd at {server.client_url}")
        yield server
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="all", help=f"{','.join(SCENARIOS)} or all (default all)")
    ap.add_argument("--spec", default="all", help=f"{','.join(SPECS)} or all (default all)")
    ap.add_argument("--mode", default="all", help="async, sync or all (default all)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per scenario (default 5)")
    ap.add_argument("--store", choices=["embedded", "etcd"], default="embedded")
    ap.add_argument("--patroni", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--setup-patroni", action="store_true", help="install Patroni and HAProxy, then exit")
    ap.add_argument(
        "--hold",
        default="",
        metavar="DURATION",
        help="start stolon's proxy with --hold-connections-timeout DURATION (docs/proxy.md; default off)",
    )
    ap.add_argument("--quick", action="store_true", help="short settle waits (CI smoke test)")
    # the flags of the earlier version of this script
    ap.add_argument("--only", dest="spec", help=argparse.SUPPRESS)
    ap.add_argument("--sync", dest="mode", action="store_const", const="sync", help=argparse.SUPPRESS)
    ap.add_argument("--json", metavar="FILE", help="also write every round as JSON to FILE")
    a = ap.parse_args(argv)
    if a.setup_patroni:
        tools = patroni_tools("yes", install=True)
        print(f"patroni: {tools[0] if tools else '?'}; haproxy: {tools[1] if tools else '?'}")
        return 0
    scenarios = parse_list(a.scenario, SCENARIOS, "--scenario")
    specs = parse_list(a.spec, list(SPECS), "--spec")
    modes = parse_list(a.mode, MODES, "--mode")
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    tools = patroni_tools(a.patroni, install=True) if a.patroni != "no" else None
    patroni_scenarios = [s for s in scenarios if s != "leader-kill"]
    print(
        f"failover benchmark: 3 keepers, 2 sentinels, 1 proxy, {a.store} store; scenarios {', '.join(scenarios)};"
        f" specs {', '.join(specs)}; modes {', '.join(modes)}; {a.rounds} rounds each"
        + ("; Patroni + HAProxy side by side" if tools else ""),
        flush=True,
    )
    results: list[Round] = []
    patroni_for = {s: SPECS[s].patroni for s in specs}
    done_patroni: set[tuple[str, str]] = set()
    started = time.monotonic()
    with maybe_etcd(a.store == "etcd" or tools is not None) as etcd:
        for mode in modes:
            for spec in specs:
                try:
                    results += run_stolon(
                        spec_name=spec, mode=mode, scenarios=scenarios, rounds=a.rounds, store=a.store,
                        etcd=etcd, quick=a.quick, hold=a.hold,
                    )  # fmt: skip
                except (RuntimeError, TimeoutError) as e:
                    log(f"stolon ({spec}, {mode}) failed: {e}")
                    results.append(Round("stolon", scenarios[0], mode, spec, 0, ok=False, note=str(e)))
                profile = SPECS[spec].patroni
                if tools is not None and patroni_scenarios and (profile, mode) not in done_patroni:
                    done_patroni.add((profile, mode))
                    try:
                        results += run_patroni(
                            profile=profile,
                            mode=mode,
                            spec_label=profile,
                            scenarios=patroni_scenarios,
                            rounds=a.rounds,
                            etcd=etcd,
                            tools=tools,
                            quick=a.quick,
                        )
                    except (RuntimeError, TimeoutError) as e:
                        log(f"patroni ({profile}, {mode}) failed: {e}")
                        results.append(Round("patroni", "*", mode, profile, 0, ok=False, note=str(e)))
    print_table(results, patroni_for, tools is not None)
    print(
        f"\n(total {time.monotonic() - started:.0f}s on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')})"
    )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {"date": time.strftime("%Y-%m-%d %H:%M"), "rounds": [asdict(r) for r in results]}, indent=2
            )
            + "\n"
        )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
