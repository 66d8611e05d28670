"""What the ``stolon_lease`` module costs per commit (docs/self-fencing.md, "The lease").

One sandboxed PostgreSQL (``fsync`` and ``synchronous_commit`` off, so that the commit
itself is cheap and the check shows), three configurations, alternated ``--rounds`` times:

- ``without``: the module not loaded;
- ``loaded, off``: loaded, ``stolon_lease.file`` empty (no check);
- ``checking``: loaded and checking a valid lease at every commit (one open + read +
  close of a small file, a clock read).

Each round runs ``--commits`` single-row autocommit INSERTs over the unix socket from one
client and reports microseconds per commit (median over the rounds). A read-only SELECT
loop with the lease checked is shown too (it must cost nothing: no xid, no check).

    .venv/bin/python benchmarks/lease_overhead.py [--commits 2000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import psycopg

from stolon.postgres import lease
from stolon.postgres.instance import Instance
from stolon.postgres.lease import LeaseFile, library_dirs
from stolon.testing.pgsandbox import open_sandbox


def connect(inst: Instance) -> psycopg.Connection[tuple[Any, ...]]:
    p = inst.admin_params()
    return psycopg.connect(
        host=p.host, port=p.port, user=p.user, password=p.password, dbname=p.dbname, autocommit=True
    )


def per_commit_us(inst: Instance, n: int, sql: str = "INSERT INTO t VALUES (1)") -> float:
    with connect(inst) as conn:
        for _ in range(50):  # warm-up
            conn.execute(sql)
        started = time.perf_counter()
        for _ in range(n):
            conn.execute(sql)
        return (time.perf_counter() - started) / n * 1e6


def configure(inst: Instance, base: dict[str, str], *, loaded: bool, lease_file: str) -> None:
    params = dict(base)
    if loaded:
        params = lease.with_lease(params, lease_file)
    inst.set_config(parameters=params)
    running = inst.is_running()
    if not running:
        inst.start()
        inst.wait_ready(60)
        return
    current = inst.applied_config
    was_loaded = current is not None and lease.LIBRARY in current.parameters.get(lease.PRELOAD_PARAMETER, "")
    if was_loaded != loaded:
        inst.restart("fast")
        inst.wait_ready(60)
    else:
        inst.reload(confirm_timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args()
    with open_sandbox("stolon-lease-bench-") as sb:
        if not any((d / f"{lease.LIBRARY}.so").is_file() for d in library_dirs(sb.binaries)):
            print("the stolon_lease module is not installed (scripts/setup --tests as root)", file=sys.stderr)
            return 2
        lf = LeaseFile(sb.dir / lease.LEASE_FILE, sb.os_user, sb.binaries)
        lf.write(lease.FAR_FUTURE_NS)
        inst = sb.instance("bench")
        inst.initdb(no_sync=True)
        base = sb.parameters(inst)
        configure(inst, base, loaded=False, lease_file="")
        inst.setup_roles()
        with connect(inst) as conn:
            conn.execute("CREATE TABLE t (id int)")
        cases: dict[str, list[float]] = {
            "without": [],
            "loaded, off": [],
            "checking": [],
            "select, checking": [],
        }
        for _ in range(a.rounds):
            configure(inst, base, loaded=False, lease_file="")
            cases["without"].append(per_commit_us(inst, a.commits))
            configure(inst, {**base, lease.FILE_PARAMETER: ""}, loaded=True, lease_file="")
            cases["loaded, off"].append(per_commit_us(inst, a.commits))
            configure(inst, base, loaded=True, lease_file=str(lf.path))
            cases["checking"].append(per_commit_us(inst, a.commits))
            cases["select, checking"].append(per_commit_us(inst, a.commits, "SELECT 1"))
        med = {k: statistics.median(v) for k, v in cases.items()}
    print(f"stolon_lease commit overhead ({a.commits} autocommit INSERTs x {a.rounds} rounds, median)")
    for k, v in med.items():
        spread = f"{min(cases[k]):.1f}-{max(cases[k]):.1f}"
        print(f"  {k:<18} {v:8.1f} us per statement  (rounds {spread})")
    print(f"  check cost         {med['checking'] - med['loaded, off']:8.1f} us per write commit")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"commits": a.commits, "rounds": a.rounds, "us": cases, "median_us": med}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
