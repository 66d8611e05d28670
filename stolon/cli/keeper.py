"""``stolon-keeper`` command line entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from stolon.cli.common import CliError, setup_logging
from stolon.keeper.config import parse_config


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging("info")
    try:
        cfg = parse_config(sys.argv[1:] if argv is None else argv)
    except CliError as e:
        print(f"stolon-keeper: {e}", file=sys.stderr)
        return e.exit_code
    import logging

    logging.getLogger().setLevel(cfg.log_level.upper() if cfg.log_level != "warn" else "WARNING")
    from stolon.keeper.daemon import Keeper

    return Keeper(cfg).run()


if __name__ == "__main__":
    sys.exit(main())
