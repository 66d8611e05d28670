"""Test support for the ``barman`` method: a local S3 server and the Barman Cloud tools.

* :class:`MotoS3Server` runs ``python -m moto.server`` (PyPI ``moto[server]``) on a free
  loopback port. It stands in for Amazon S3 / an S3-compatible server, which cannot run
  here; Barman's boto3 client talks real HTTP to it. Buckets live in its memory and die
  with it; requests are not authenticated (any key works).
* :func:`find_tool_dir` finds a directory holding the ``barman-cloud-*`` executables that
  PostgreSQL's OS user can run: ``$STOLON_BARMAN_TOOL_DIR``, else where ``scripts/setup``
  installs them (:data:`WELL_KNOWN_TOOL_DIRS`).

Standard library only (moto runs in a child process), so importing this costs nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from xml.etree import ElementTree

from stolon.netutil import free_port
from stolon.postgres.runas import OSUser, resolve_pg_os_user, run_command
from stolon.testing.tied_child import die_with_parent_preexec

#: names a directory holding barman-cloud-wal-archive & co. (a venv's ``bin``)
TOOL_DIR_ENV = "STOLON_BARMAN_TOOL_DIR"
#: where scripts/setup creates the tools' venv (as root; else under the user's cache)
WELL_KNOWN_TOOL_DIRS = (
    Path("/opt/stolon-tools/barman/bin"),
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stolon-tools/barman/bin",
)
PROBE_TOOL = "barman-cloud-wal-archive"


class ToolsMissing(RuntimeError):
    """No usable Barman Cloud installation; the message says what to do."""


def find_tool_dir(os_user: OSUser) -> Path:
    """The directory of the ``barman-cloud-*`` tools, checked by running one as ``os_user``."""
    configured = os.environ.get(TOOL_DIR_ENV, "").strip()
    candidates = [Path(configured)] if configured else list(WELL_KNOWN_TOOL_DIRS)
    tried = []
    for d in candidates:
        tool = d / PROBE_TOOL
        if not tool.is_file():
            tried.append(f"{d} (no {PROBE_TOOL})")
            continue
        res = run_command([str(tool), "--version"], user=os_user, timeout=60, check=False)
        if res.returncode != 0:
            tried.append(f"{d} (OS user {os_user.name!r} cannot run it: {res.stderr.strip()[-200:]})")
            continue
        return d
    raise ToolsMissing(
        "Barman Cloud is not installed where PostgreSQL's OS user can run it"
        f" (tried {'; '.join(tried)}): run scripts/setup, or set ${TOOL_DIR_ENV} to the bin"
        ' directory of a venv made from /usr/bin/python3 with "barman[cloud]"'
    )


def moto_available() -> bool:
    return importlib.util.find_spec("moto") is not None and importlib.util.find_spec("flask") is not None


class MotoS3Server:
    """moto's S3 server on ``127.0.0.1:<free port>`` (see the module docstring)."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> MotoS3Server:
        fd, log = tempfile.mkstemp(prefix="stolon-moto-", suffix=".log", dir="/tmp")
        self.log_path = Path(log)
        for _attempt in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port(self.host)
            self.proc = subprocess.Popen(
                [self.python, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                preexec_fn=die_with_parent_preexec(),  # noqa: PLW1509
            )
            atexit.register(self.stop)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._answers():
                    os.close(fd)
                    return self
                time.sleep(0.1)
            self.stop()
        os.close(fd)
        raise RuntimeError(f"moto's S3 server did not start: {self.log_tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-2000:]

    def create_bucket(self, name: str = "") -> str:
        """Create a bucket (a fresh unique one unless ``name`` is given); its name."""
        name = name or f"stolon-test-{secrets.token_hex(6)}"
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT", data=b"")
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status != 200:
                raise RuntimeError(f"creating bucket {name} on moto failed: HTTP {r.status}")
        return name

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """The object keys in ``bucket`` under ``prefix`` (first 1000)."""
        query = urllib.parse.urlencode({"list-type": "2", "prefix": prefix})
        with urllib.request.urlopen(f"{self.endpoint}/{bucket}?{query}", timeout=30) as r:
            root = ElementTree.fromstring(r.read())
        return sorted(el.text or "" for el in root.iter() if el.tag.endswith("}Key") or el.tag == "Key")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        with contextlib.suppress(ValueError):
            atexit.unregister(self.stop)

    def close(self) -> None:
        self.stop()
        if self.log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.log_path.unlink()

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    """A ``KEY=VALUE`` credentials file, mode 0600, PostgreSQL's OS user's (what
    ``envFile`` names: it must belong to the user the tools run as)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        for k, v in values.items():
            f.write(f"{k}={v}\n")
    os.chmod(path, 0o600)
    resolve_pg_os_user().chown(path)
    return path


#: credentials moto accepts (it does not check them)
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "stolon-test-key",
    "AWS_SECRET_ACCESS_KEY": "stolon-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
