"""Running commands as the PostgreSQL user, timeouts, and children tied to our lifetime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stolon.postgres.binaries import PgBinaries
from stolon.postgres.errors import BinaryNotFoundError, CommandError, CommandTimeoutError
from stolon.postgres.runas import OSUser, resolve_pg_os_user, run_command
from stolon.testing.requirements import tool_missing


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def test_timeout_error_names_the_command_and_kills_the_group() -> None:
    t0 = time.monotonic()
    with pytest.raises(CommandTimeoutError) as ei:
        run_command(["sh", "-c", "sleep 30 & echo $! >&2; wait"], user=None, timeout=0.5)
    assert time.monotonic() - t0 < 5
    msg = str(ei.value)
    assert "sh -c 'sleep 30 & echo $! >&2; wait'" in msg
    assert "timed out after 0.5s" in msg
    # the grandchild (same process group) was killed too
    grandchild = int(ei.value.output.strip().splitlines()[-1])
    assert _wait_gone([grandchild], 5) == []


def test_command_error_quotes_stderr_without_secrets() -> None:
    with pytest.raises(CommandError) as ei:
        run_command(
            ["sh", "-c", "echo 'auth failed for hunter2' >&2; exit 3"],
            user=None,
            timeout=10,
            secrets=["hunter2"],
        )
    assert ei.value.returncode == 3
    assert "exited with status 3" in str(ei.value)
    assert "auth failed for ********" in str(ei.value)
    assert "hunter2" not in str(ei.value)
    res = run_command(["sh", "-c", "exit 4"], user=None, timeout=10, check=False)
    assert res.returncode == 4


def test_missing_binary() -> None:
    with pytest.raises(BinaryNotFoundError):
        run_command(["/nonexistent/initdb"], user=None, timeout=5)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_run_as_pg_user() -> None:
    try:
        user = resolve_pg_os_user(None)
    except Exception as e:
        tool_missing("postgres", f"no postgres OS user: {e}")
    res = run_command(["sh", "-c", 'id -u; id -G; echo "$HOME"'], user=user, timeout=10)
    uid, groups, home = res.stdout.split("\n")[:3]
    assert int(uid) == user.uid
    assert {int(g) for g in groups.split()} == set(user.groups)
    assert home == user.home


def test_resolve_pg_os_user_refuses_root() -> None:
    if os.geteuid() != 0:
        # not root: always ourselves
        assert resolve_pg_os_user("somebody-else").uid == os.geteuid()
        return
    from stolon.postgres.errors import OSUserError

    with pytest.raises(OSUserError, match="refuses to run as root"):
        resolve_pg_os_user("root")
    with pytest.raises(OSUserError, match="does not exist"):
        resolve_pg_os_user("no-such-user-xyz")
    assert OSUser.current().uid == 0


_TIED_CHILD_SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading, time
    from stolon.postgres.pdeathsig import spawn_tied

    result = {}
    def start():
        # SIGKILL: this test is about *when* the signal comes, whatever the
        # inherited signal dispositions (SIGINT may be ignored in background jobs)
        result["p"] = spawn_tied(["sleep", "1000"], death_signal=signal.SIGKILL)
    # start it from a short-lived thread: the child must not die when that thread ends
    t = threading.Thread(target=start)
    t.start()
    t.join()
    time.sleep(0.5)
    print(result["p"].pid, flush=True)
    time.sleep(1000)
    """
)


def test_child_dies_with_parent_not_with_the_calling_thread(
    run_script: Callable[[str], subprocess.Popen[str]], subreaper: Callable[[int], None]
) -> None:
    parent = run_script(_TIED_CHILD_SCRIPT)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip(), parent.stderr.read() if parent.stderr else ""
    child = int(line)
    subreaper(child)
    assert _alive(child), "the child died with the thread that asked for it"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert _wait_gone([child], 5) == [], "the tied child outlived its SIGKILLed parent"


def test_spawn_tied_rejects_preexec() -> None:
    from stolon.postgres.pdeathsig import spawn_tied

    with pytest.raises(ValueError):
        spawn_tied([sys.executable, "-c", "pass"], preexec_fn=lambda: None)


def test_find_binaries(pg_binaries: PgBinaries, tmp_path: Path) -> None:
    # found through PATH or the Debian layout; a symlinked postgres resolves to the real dir,
    # which also holds the other tools (a /usr/local/bin symlink farm may not)
    assert Path(pg_binaries.path("pg_basebackup")).parent == pg_binaries.bin_dir
    v = pg_binaries.check_supported()
    assert v.major >= 12
    assert pg_binaries.version() is v  # cached
    explicit = PgBinaries.find(pg_binaries.bin_dir)
    assert explicit.bin_dir == pg_binaries.bin_dir
    with pytest.raises(BinaryNotFoundError, match="not found or not executable"):
        PgBinaries.find(tmp_path)
    with pytest.raises(BinaryNotFoundError):
        pg_binaries.path("no_such_tool")
