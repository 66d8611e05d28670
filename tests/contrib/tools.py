"""Finding the external tools the contrib checks run; a missing one skips the test with
its name and how to get it (scripts/setup --tests installs them, requirements-contrib.txt)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from stolon.testing.requirements import tool_missing


def tool(name: str, how: str) -> str:
    """The path of ``name``: next to this interpreter (pip-installed tools), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        tool_missing("contrib", f"{name} not installed ({how})")
    return found


PIP_HOW = "pip install -r requirements-contrib.txt; scripts/setup --tests does it"
