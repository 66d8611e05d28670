"""Codec benchmark (issue 12 item 5): what parsing and encoding the model documents costs.

At rest the leader sentinel parses the cluster data and writes it back every cycle and
parses the keepers' infos on their heartbeats; the proxy parses the cluster data on every
check, the keepers on every change. This times, in CPU of the calling thread per call:

- ``ClusterData.parse`` (JSON text to objects: ``json.loads``, depth check, ``from_obj``)
  and ``from_obj`` alone, ``to_bytes`` (``to_obj`` and Go-compatible JSON) and ``to_obj``
  alone, for the cluster data of ``--keepers`` (default 3 and 100) keepers built by
  ``benchmarks/cost.py``'s ``decide_cluster(n)`` (a master, standbys, a proxy), with the
  times a running cluster has (each keeper's ``changeTime`` and ``lastHealthyTime``...);
- the same for one keeper's info (``KeeperInfo``, as the keeper publishes it).

Each figure is the median of ``--repeats`` runs of ``--iterations`` calls (a short run: the
machine is shared; the median holds against other processes better than the mean).

    .venv/bin/python benchmarks/codec.py
    .venv/bin/python benchmarks/codec.py --keepers 3 100 --iterations 200 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stolon.model import ClusterData, KeeperInfo
from stolon.testing.sentinel_builders import CD


def decide_cluster(n: int) -> CD:
    """``decide_cluster(n)`` of benchmarks/cost.py, beside this file."""
    spec = importlib.util.spec_from_file_location("cost", Path(__file__).with_name("cost.py"))
    assert spec is not None and spec.loader is not None
    cost = sys.modules.get("cost")
    if cost is None:
        cost = sys.modules["cost"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cost)
    b = cost.decide_cluster(n)
    assert isinstance(b, CD)
    return b


T0 = datetime(2026, 12, 2, 7, 0, 0, 123456, tzinfo=UTC)


def cluster_data(n: int) -> ClusterData:
    """``decide_cluster(n).build()`` with the times a running cluster's data has."""
    cd = decide_cluster(n).build()
    cd.change_time = T0
    assert cd.cluster is not None
    cd.cluster.change_time = T0 - timedelta(days=3)
    for i, k in enumerate((cd.keepers or {}).values()):
        k.change_time = T0 - timedelta(microseconds=1000 * i)
        k.status.last_healthy_time = T0 - timedelta(microseconds=1000 * i + 500)
        k.status.boot_uuid = f"0b8e9a46-7f3c-4e0e-9d8b-{i:012d}"
    for db in (cd.dbs or {}).values():
        db.change_time = T0 - timedelta(hours=1)
    return cd


def keeper_info() -> KeeperInfo:
    """keeper001's info as the sentinel sees it in ``decide_cluster(3)``."""
    info = decide_cluster(3).observations().keepers_info["keeper001"]
    info.boot_uuid = "0b8e9a46-7f3c-4e0e-9d8b-2c7c5f1a9e11"
    return info


def per_call_us(fn: Callable[[], Any], iterations: int, repeats: int) -> float:
    """Median over ``repeats`` of the thread CPU time per call, in microseconds."""
    fn()  # warm caches
    runs = []
    for _ in range(repeats):
        c0 = time.thread_time()
        for _ in range(iterations):
            fn()
        runs.append((time.thread_time() - c0) / iterations * 1e6)
    return statistics.median(runs)


def bench(name: str, doc: Any, iterations: int, repeats: int) -> dict[str, Any]:
    cls = type(doc)
    data = doc.to_bytes()
    obj = json.loads(data)
    parse: Callable[[], Any] = (lambda: cls.parse(data)) if cls is ClusterData else (lambda: cls.loads(data))
    row = {
        "document": name,
        "bytes": len(data),
        "parse_us": per_call_us(parse, iterations, repeats),
        "from_obj_us": per_call_us(lambda: cls.from_obj(obj), iterations, repeats),
        "to_bytes_us": per_call_us(doc.to_bytes, iterations, repeats),
        "to_obj_us": per_call_us(doc.to_obj, iterations, repeats),
    }
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keepers", type=int, nargs="+", default=[3, 100], help="cluster sizes (default 3 100)")
    ap.add_argument("--iterations", type=int, default=0, help="calls per run (default: about 0.2 s a run)")
    ap.add_argument("--repeats", type=int, default=5, help="runs per figure, the median shown (default 5)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)
    docs: list[tuple[str, Any]] = [(f"cluster data, {n} keepers", cluster_data(n)) for n in args.keepers]
    docs.append(("keeper info", keeper_info()))
    rows = []
    print(f"{'document':<26} {'bytes':>7} {'parse':>10} {'from_obj':>10} {'to_bytes':>10} {'to_obj':>10}")
    for name, doc in docs:
        iterations = args.iterations or max(5, int(2_000_000 / max(len(doc.to_bytes()), 1)))
        row = bench(name, doc, iterations, args.repeats)
        rows.append(row)
        print(
            f"{name:<26} {row['bytes']:>7} {row['parse_us']:>8.0f}µs {row['from_obj_us']:>8.0f}µs"
            f" {row['to_bytes_us']:>8.0f}µs {row['to_obj_us']:>8.0f}µs",
            flush=True,
        )
    print("(thread CPU per call, median of the runs)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
