"""``stolonctl local up|status|down``: a whole HA cluster on this machine, in one command.

``up`` creates (or restarts) a cluster under a base directory: the embedded store by
default (or the store named by the global ``--store-backend``/``--store-endpoints`` flags),
keepers, sentinels and a proxy on free loopback ports. It shows progress until the cluster
is healthy, prints how to connect through the proxy and a status table, then follows role
changes and failovers until Ctrl-C, which stops everything in order: proxy, sentinels,
keepers (each stops its PostgreSQL). ``status``, ``down``, ``start NAME`` and ``stop NAME``
work from another terminal (``stop keeper0`` then ``start keeper0``: watch a master fail
over and rejoin as a standby).

The default base directory is per user (``/tmp/stolon-<user>-<name>``): /tmp is shared by
every user of a machine, and a cluster directory belongs to whoever created it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import signal
import time
from pathlib import Path
from types import FrameType

from stolon.cli.common import CliError, add_bool_flag, go_duration_seconds
from stolon.cli.ctl_status import collect, render_text
from stolon.cli.ctlcontext import CtlContext
from stolon.local.cluster import LocalCluster
from stolon.local.processes import pid_file_alive, signal_pid_file
from stolon.model import ClusterData

DEFAULT_NAME = "local"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("local", help="Run a whole HA cluster on this machine (up, status, down)")
    lsub = p.add_subparsers(dest="local_command", metavar="COMMAND", required=True)

    up = lsub.add_parser("up", help="Create or start a local cluster and follow it until Ctrl-C")
    _base_args(up)
    # stolonctl's global store flags, accepted after `local up` too (SUPPRESS: a value given
    # before `local` is not overwritten by these defaults)
    up.add_argument(
        "--store-backend",
        default=argparse.SUPPRESS,
        help="store backend of a new cluster (default embedded; etcdv3, consul... with --store-endpoints)",
    )
    up.add_argument(
        "--store-endpoints",
        default=argparse.SUPPRESS,
        help="store endpoints of a new cluster (comma separated)",
    )
    up.add_argument(
        "--keepers", type=int, default=3, help="number of keepers (PostgreSQL instances, default 3)"
    )
    up.add_argument("--sentinels", type=int, default=2, help="number of sentinels (default 2)")
    add_bool_flag(up, "--sync", "use synchronous replication (no acknowledged commit lost on failover)")
    add_bool_flag(up, "--detach", "return once the cluster is healthy and leave it running")
    add_bool_flag(
        up,
        "--check",
        "non-interactive: bring the cluster up, write and read a row through the proxy, stop it, exit",
    )
    up.add_argument(
        "--timeout", type=go_duration_seconds, default=300.0, metavar="DURATION",
        help="how long to wait for the cluster to become healthy (default 5m)",
    )  # fmt: skip
    up.set_defaults(func=cmd_up)

    st = lsub.add_parser("status", help="Show the local cluster's processes and status")
    _base_args(st)
    st.set_defaults(func=cmd_status)

    down = lsub.add_parser("down", help="Stop the local cluster (proxy, sentinels, then keepers)")
    _base_args(down)
    add_bool_flag(down, "--purge", "also delete the base directory (all data)")
    down.set_defaults(func=cmd_down)

    start = lsub.add_parser(
        "start", help="Start one stopped process of a running local cluster (e.g. keeper0)"
    )
    _base_args(start)
    start.add_argument(
        "process", metavar="NAME", help="keeper0, sentinel1, proxy... (see `stolonctl local status`)"
    )
    start.set_defaults(func=cmd_start)

    stop = lsub.add_parser(
        "stop", help="Stop one process of a running local cluster (e.g. the master's keeper)"
    )
    _base_args(stop)
    stop.add_argument(
        "process", metavar="NAME", help="keeper0, sentinel1, proxy... (see `stolonctl local status`)"
    )
    stop.set_defaults(func=cmd_stop)


def _base_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="", help=f"cluster name (default {DEFAULT_NAME}, or --cluster-name)")
    p.add_argument(
        "--base-dir",
        default="",
        help="directory holding the cluster (default /tmp/stolon-<user>-<name>); it must be reachable by"
        " the postgres OS user when running as root",
    )


def _name(ctx: CtlContext) -> str:
    return str(ctx.args.name or ctx.args.cluster_name or DEFAULT_NAME)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())


def _base(ctx: CtlContext) -> Path:
    base = Path(ctx.args.base_dir or f"/tmp/stolon-{_user()}-{_name(ctx)}").absolute()
    _check_owner(base)
    return base


def _check_owner(base: Path) -> None:
    """A base directory that exists must be ours: another user's cluster is not ours to
    start, stop or read (and its files would fail one by one with a traceback)."""
    try:
        st = base.stat()
    except FileNotFoundError:
        return
    except OSError as e:
        raise CliError(
            f"cannot use base directory {base}: {e.strerror}; choose another with --base-dir"
        ) from None
    if st.st_uid != os.geteuid():
        try:
            import pwd

            owner = pwd.getpwuid(st.st_uid).pw_name
        except (KeyError, ImportError):
            owner = str(st.st_uid)
        raise CliError(f"base directory {base} belongs to user {owner}: choose another with --base-dir")


def _load(ctx: CtlContext) -> LocalCluster:
    try:
        return LocalCluster.load(_base(ctx), backends=ctx.plugins)
    except FileNotFoundError as e:
        raise CliError(f"{e}: start one with `stolonctl local up`") from None


def _process(cluster: LocalCluster, name: str) -> str:
    if name not in cluster.processes:
        raise CliError(
            f"no process {name!r} in this local cluster: use one of {', '.join(cluster.processes)}"
        )
    return name


def _running(cluster: LocalCluster) -> list[str]:
    return [name for name in cluster.processes if pid_file_alive(cluster.base / "pids" / f"{name}.pid")]


def _ctl_flags(cluster: LocalCluster) -> str:
    return " ".join(cluster.store_args())


def _status_text(ctx: CtlContext, cluster: LocalCluster) -> None:
    sub = CtlContext(
        replace_args(ctx.args, cluster),
        ctx.plugins,
        stdin=ctx.stdin,
        stdout=ctx.stdout,
        stderr=ctx.stderr,
    )
    try:
        status, cd = collect(sub)
        render_text(sub, status, cd)
    finally:
        sub.close()


def replace_args(args: argparse.Namespace, cluster: LocalCluster) -> argparse.Namespace:
    ns = argparse.Namespace(**vars(args))
    lay = cluster.layout
    ns.cluster_name = lay.name
    ns.store_backend = lay.store_backend
    ns.store_endpoints = ",".join(lay.store_endpoints)
    return ns


def cmd_up(ctx: CtlContext) -> int:
    a = ctx.args
    base = _base(ctx)
    if (base / "cluster.json").exists():
        cluster = LocalCluster.load(base, backends=ctx.plugins)
        running = _running(cluster)
        if running:
            raise CliError(
                f"the local cluster in {base} is already running ({', '.join(running)}):"
                " see `stolonctl local status`, or stop it with `stolonctl local down`"
            )
        ctx.out(f"starting the existing local cluster in {base}")
    else:
        if a.keepers < 1 or a.sentinels < 1:
            raise CliError("--keepers and --sentinels must be at least 1")
        backend = a.store_backend or "embedded"
        endpoints = [e.strip() for e in a.store_endpoints.split(",") if e.strip()] or None
        if backend == "embedded" and endpoints:
            raise CliError(
                "--store-endpoints: the local cluster keeps its embedded store in its base directory"
            )
        try:
            cluster = LocalCluster.create(
                base,
                backends=ctx.plugins,
                name=_name(ctx),
                keepers=a.keepers,
                sentinels=a.sentinels,
                synchronous=bool(a.sync),
                store_backend=backend,
                store_endpoints=endpoints,
            )
        except OSError as e:
            raise CliError(f"cannot create the local cluster in {base}: {e}") from None
        ctx.out(
            f"creating local cluster {cluster.layout.name!r} in {base}: {a.keepers} keepers,"
            f" {a.sentinels} sentinels, a proxy, {backend} store"
            + (", synchronous replication" if a.sync else "")
        )
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    # Explicit handlers: a shell may start us with SIGINT ignored (background jobs).
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    cluster.start()
    try:
        try:
            cluster.wait_healthy(
                a.timeout,
                progress=lambda what: ctx.out(f"  [{time.monotonic() - started:5.1f}s] {what}"),
            )
        except (TimeoutError, RuntimeError) as e:
            ctx.err(f"stolonctl: the local cluster did not become healthy: {e}")
            ctx.err(f"logs are in {base / 'logs'}")
            _stop(ctx, cluster)
            return 1
        _print_ready(ctx, cluster, time.monotonic() - started)
        if a.check:
            ok = _check(ctx, cluster)
            _stop(ctx, cluster)
            return 0 if ok else 1
        if a.detach:
            ctx.out("left running: `stolonctl local status` / `stolonctl local down`" + _base_hint(ctx))
            return 0
        ctx.out("following role changes and failovers (Ctrl-C stops the cluster)")
        _follow(ctx, cluster)
    except KeyboardInterrupt:
        ctx.out("")
    _stop(ctx, cluster)
    return 0


def _base_hint(ctx: CtlContext) -> str:
    return (
        f" --base-dir {_base(ctx)}"
        if ctx.args.base_dir
        else (f" --name {_name(ctx)}" if ctx.args.name else "")
    )


def _print_ready(ctx: CtlContext, cluster: LocalCluster, took: float) -> None:
    lay = cluster.layout
    secret = cluster.base / "secrets" / "su"
    ctx.out(f"\nthe cluster is healthy ({took:.0f}s). Connect through the proxy:\n")
    ctx.out(f"  PGPASSWORD=$(cat {secret}) psql -h 127.0.0.1 -p {lay.proxy_port} -U postgres postgres")
    ctx.out(f"  {cluster.url()}   (password in {secret})\n")
    ctx.out(f"stolonctl for this cluster:  stolonctl {_ctl_flags(cluster)} status\n")
    _status_text(ctx, cluster)


def _check(ctx: CtlContext, cluster: LocalCluster) -> bool:
    """Write and read a row through the proxy."""
    import psycopg

    try:
        with psycopg.connect(cluster.dsn(), connect_timeout=10, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS stolon_local_check (id int PRIMARY KEY, at timestamptz)")
            conn.execute(
                "INSERT INTO stolon_local_check VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()"
            )
            row = conn.execute("SELECT count(*), pg_is_in_recovery() FROM stolon_local_check").fetchone()
    except psycopg.Error as e:
        ctx.err(f"stolonctl: check through the proxy failed: {e}")
        return False
    if row is None or row[0] != 1 or row[1]:
        ctx.err(f"stolonctl: check through the proxy failed: unexpected {row!r}")
        return False
    ctx.out("check passed: wrote and read a row through the proxy on the master")
    return True


def _follow(ctx: CtlContext, cluster: LocalCluster) -> None:
    """A compact live log of what changes: master, keeper health, DBs."""
    last: dict[str, str] = {}
    while True:
        cd = cluster.cluster_data()
        for line in _changes(cd, last):
            ctx.out(f"{time.strftime('%H:%M:%S')} {line}")
        for name, proc in cluster.processes.items():
            key = f"proc:{name}"
            alive = proc.alive or pid_file_alive(cluster.base / "pids" / f"{name}.pid")
            if proc.proc is not None and not alive and last.get(key) != "exited":
                last[key] = "exited"
                code = proc.proc.returncode
                ctx.out(
                    f"{time.strftime('%H:%M:%S')} {name} exited"
                    + (f" (status {code})" if code is not None else "")
                )
            elif alive and last.get(key) == "exited":
                last[key] = "running"
                ctx.out(f"{time.strftime('%H:%M:%S')} {name} is running again")
        ctx.stdout.flush()
        if all(last.get(f"proc:{name}") == "exited" for name in cluster.processes):
            ctx.out(f"{time.strftime('%H:%M:%S')} every process has exited (`stolonctl local down`?): done")
            return
        time.sleep(1)


def _changes(cd: ClusterData | None, last: dict[str, str]) -> list[str]:
    if cd is None or cd.cluster is None:
        return []
    out = []
    master = cd.master_db()
    if master is not None and master.spec is not None:
        now = f"{master.spec.keeper_uid}/{master.uid}"
        if last.get("master") != now:
            if "master" in last:
                out.append(
                    f"failover: master is now {master.spec.keeper_uid} (was {last['master'].split('/')[0]})"
                )
            else:
                out.append(f"master is {master.spec.keeper_uid}")
            last["master"] = now
    for uid, keeper in sorted((cd.keepers or {}).items()):
        state = "healthy" if keeper.status.healthy else "unhealthy"
        key = f"keeper:{uid}"
        if last.get(key) != state:
            if key in last or state != "healthy":
                out.append(f"keeper {uid} is {state}")
            last[key] = state
    for uid, db in sorted((cd.dbs or {}).items()):
        if db.spec is None:
            continue
        key = f"db:{uid}"
        role = db.spec.role
        if last.get(key) != role:
            if key not in last and db.spec.role == "standby":
                out.append(f"{db.spec.keeper_uid} is a standby (db {uid})")
            last[key] = role
    return out


def _stop(ctx: CtlContext, cluster: LocalCluster) -> None:
    ctx.out("stopping: proxy, sentinels, then keepers")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cluster.stop()
    ctx.out("stopped")


def cmd_status(ctx: CtlContext) -> int:
    cluster = _load(ctx)
    running = set(_running(cluster))
    lay = cluster.layout
    ctx.out(f"local cluster {lay.name!r} in {cluster.base}")
    ctx.out(f"store: {lay.store_backend} {','.join(lay.store_endpoints)}")
    ctx.out(f"proxy: 127.0.0.1:{lay.proxy_port}" if lay.proxy else "proxy: none")
    for name in cluster.processes:
        state = "running" if name in running else "stopped"
        extra = f" (PostgreSQL on port {lay.keepers[name]})" if name in lay.keepers else ""
        ctx.out(f"  {name:<10} {state}{extra}")
    ctx.out("")
    if not running:
        ctx.out("not running: start it with `stolonctl local up`" + _base_hint(ctx))
        return 0
    _status_text(ctx, cluster)
    return 0


def cmd_start(ctx: CtlContext) -> int:
    cluster = _load(ctx)
    name = _process(cluster, ctx.args.process)
    if not _running(cluster):
        raise CliError(
            "the local cluster is not running: start it with `stolonctl local up`" + _base_hint(ctx)
        )
    if name in _running(cluster):
        raise CliError(f"{name} is already running")
    proc = cluster.processes[name].start()
    ctx.out(f"started {name} (pid {proc.pid}, log {proc.log_path})")
    return 0


def cmd_stop(ctx: CtlContext) -> int:
    cluster = _load(ctx)
    name = _process(cluster, ctx.args.process)
    if not signal_pid_file(cluster.base / "pids" / f"{name}.pid", 15):
        raise CliError(f"{name} is not running")
    ctx.out(f"stopped {name}" + (" (and its PostgreSQL)" if name in cluster.layout.keepers else ""))
    return 0


def cmd_down(ctx: CtlContext) -> int:
    cluster = _load(ctx)
    stopped = cluster.stop_by_pid_files()
    ctx.out(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if ctx.args.purge:
        shutil.rmtree(cluster.base, ignore_errors=True)
        ctx.out(f"removed {cluster.base}")
    return 0
