"""The chaos matrix: faults against a whole local cluster, counting what was lost.

For each fault and replication mode, a cluster (3 keepers, 2 sentinels, 1 proxy; the
embedded store, or real etcd when the fault needs the store to die or a node to be
partitioned) runs a writer through the proxy, a writer connected straight to the master
and a prober that tries a write on every instance every 100 ms. Each round injects the
fault, repairs it, waits for full strength and records: acknowledged rows lost on the final
master, samples in which two instances accepted writes (through the proxy / directly), when
writes through the proxy resumed, and when the cluster was back to full strength. See
docs/reliability.md. Needs root (namespaces, tmpfs), PostgreSQL and etcd.

    .venv/bin/python benchmarks/chaos.py [--faults node-loss,freeze] [--modes sync,async]
        [--rounds 3] [--time-limit 90] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict
from typing import Any

from stolon.testing import netns
from stolon.testing.chaos import (
    ChaosCluster,
    Fault,
    RoundResult,
    format_table,
    interrupt_on_sigterm,
    run_round,
    summarize,
)
from stolon.testing.chaos_faults import BY_NAME, FAULTS


def groups(faults: list[Fault]) -> list[tuple[tuple[str, int], list[Fault]]]:
    """Faults that can share a cluster (same store, same tmpfs), in matrix order."""
    out: dict[tuple[str, int], list[Fault]] = {}
    for f in faults:
        out.setdefault((f.store, f.tmpfs_mb), []).append(f)
    return list(out.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--faults", default=",".join(f.name for f in FAULTS), help="comma-separated; default: all"
    )
    ap.add_argument("--modes", default="sync,async", help="sync, async or both (default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=120.0, help="minutes; no new round starts after it")
    ap.add_argument("--json", help="write every round's result to this file")
    a = ap.parse_args()
    names = [n.strip() for n in a.faults.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"--faults: unknown {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or any(m not in ("sync", "async") for m in modes):
        ap.error("--modes: give sync, async or sync,async")
    if a.rounds < 1:
        ap.error("--rounds: give 1 or more")
    chosen = [BY_NAME[n] for n in names]
    order = {f.name: i for i, f in enumerate(FAULTS)}
    chosen.sort(key=lambda f: order[f.name])
    deadline = time.monotonic() + a.time_limit * 60
    stale = netns.remove_stale()
    if stale:
        print(f"removed what an earlier run left: {', '.join(stale)}")
    results: list[RoundResult] = []
    skipped: list[str] = []
    print(
        f"chaos matrix: {', '.join(f.name for f in chosen)}; modes {', '.join(modes)}; {a.rounds} rounds",
        flush=True,
    )
    started = time.monotonic()
    try:
        with interrupt_on_sigterm():
            for mode in modes:
                for (store, tmpfs), faults in groups(chosen):
                    if time.monotonic() > deadline:
                        skipped += [f"{f.name} [{mode}]" for f in faults]
                        continue
                    print(
                        f"cluster: {store} store, {mode} replication{f', {tmpfs} MB tmpfs' if tmpfs else ''}",
                        flush=True,
                    )
                    try:
                        with ChaosCluster(mode == "sync", store, tmpfs) as cc:
                            for f in faults:
                                for n in range(1, a.rounds + 1):
                                    if time.monotonic() > deadline:
                                        skipped.append(f"{f.name} [{mode}] round {n}")
                                        continue
                                    try:
                                        results.append(run_round(cc, f, n))
                                    except Exception as e:
                                        traceback.print_exc()
                                        results.append(RoundResult(f.name, mode, n, error=repr(e)))
                                        print(cc.logs(2000)[-12000:], flush=True)
                                        cc.wait_full_strength(300)
                    except Exception as e:
                        traceback.print_exc()
                        for f in faults:
                            results.append(RoundResult(f.name, mode, 0, error=f"cluster: {e!r}"))
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
    rows = summarize(results)
    print(f"\n{time.monotonic() - started:.0f}s\n")
    print(format_table(rows))
    for r in results:
        if r.error:
            print(f"failed: {r.fault} [{r.mode}] round {r.round}: {r.error}")
    if skipped:
        print(f"not run (time limit): {', '.join(skipped)}")
    if a.json:
        doc: dict[str, Any] = {"rounds": [asdict(r) for r in results], "summary": rows, "skipped": skipped}
        with open(a.json, "w") as out:
            json.dump(doc, out, indent=2)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
