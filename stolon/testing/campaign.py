"""``python -m stolon.testing.campaign CONFIG_JSON CANDIDATE TTL``

Campaigns for the sentinel leadership in its own process and prints ``elected`` once it
wins, then keeps the leadership until killed. The store contract suite kills it with
SIGKILL to check that another candidate takes over.
"""

from __future__ import annotations

import json
import sys
import time

from stolon.plugins import load_plugins
from stolon.store import open_backend
from stolon.store.base import StoreConfig


def main(argv: list[str]) -> int:
    raw = json.loads(argv[0])
    raw["endpoints"] = tuple(raw.get("endpoints") or ())
    config = StoreConfig(**raw)
    store = open_backend(config, load_plugins())
    election = store.election(argv[1], float(argv[2]))
    election.start()
    if election.wait_leadership(60) is None:
        print("not elected", flush=True)
        return 1
    print("elected", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
