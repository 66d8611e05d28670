"""STOLON_TESTS_REQUIRE: a missing tool skips a test unless it is required, then it fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stolon.testing.requirements import ENV, TOOLS, UnknownToolError, required, tool_missing


def test_required_parses_names_and_refuses_unknown_ones() -> None:
    assert required({}) == frozenset()
    assert required({ENV: " postgres, etcd ,,"}) == {"postgres", "etcd"}
    with pytest.raises(UnknownToolError, match="unknown tool 'postgresql'"):
        required({ENV: "postgresql"})
    assert set(TOOLS) >= {"postgres", "etcd", "pgbackrest", "barman"}


def test_missing_tool_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "etcd")
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        tool_missing("postgres", "no initdb")
    with pytest.raises(pytest.fail.Exception, match=f"no etcd \\({ENV} requires etcd\\)"):
        tool_missing("etcd", "no etcd")


def test_a_session_with_an_unknown_required_tool_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(textwrap.dedent("def test_x():\n    pass\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        check=False,
        env={"PATH": "/usr/bin:/bin", ENV: "postgres,etdc"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown tool 'etdc'" in proc.stderr + proc.stdout
