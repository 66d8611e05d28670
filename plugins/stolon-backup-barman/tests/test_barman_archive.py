"""The rendered archive and restore commands, run as PostgreSQL runs them (``sh -c`` as its
OS user, in the data directory), against the real Barman Cloud tools and moto's S3 server.
No PostgreSQL needed: the "WAL segments" are files of random bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stolon_backup_barman.method import BarmanMethod
from stolon_backup_barman.testing import MotoS3Server

from stolon.backup.base import BackupConfigError, BackupContext, StorageUnreachableError
from stolon.backup.commands import archive_command, restore_command
from stolon.backup.commands import expand_placeholders as substitute
from stolon.backup.files import ensure_private_dir
from stolon.netutil import free_port
from stolon.postgres.runas import OSUser, child_environment
from stolon.testing.pgsandbox import pg_os_user_or_skip

pytestmark = pytest.mark.integration

SEG = "000000010000000000000005"


@dataclass
class Site:
    """A fake data directory and a work directory owned by PostgreSQL's OS user."""

    base: Path
    user: OSUser

    @property
    def pgdata(self) -> Path:
        return self.base / "pgdata"

    def ctx(self, work: str = "work") -> BackupContext:
        work_dir = self.base / work
        ensure_private_dir(work_dir, self.user)
        return BackupContext(
            cluster_name="archive-test",
            pgdata=self.pgdata,
            pg_bin_dir=Path("/usr/lib/postgresql/15/bin"),
            pg_major=15,
            os_user=self.user,
            work_dir=work_dir,
        )

    def segment(self, name: str, content: bytes, sub: str = "pg_wal") -> str:
        d = self.pgdata / sub
        d.mkdir(parents=True, exist_ok=True)
        self.user.chown(d)
        f = d / name
        f.write_bytes(content)
        self.user.chown(f)
        return f"{sub}/{name}"

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=self.pgdata,
            env=child_environment(self.user),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self.user.popen_kwargs(),
        )

    def archive(
        self, method: BarmanMethod, path: str, name: str, work: str = "work"
    ) -> subprocess.CompletedProcess[str]:
        ctx = self.ctx(work)
        method.prepare(ctx)
        return self.sh(substitute(archive_command(method.archive_command(ctx)), {"%p": path, "%f": name}))

    def fetch(self, method: BarmanMethod, name: str, work: str = "work") -> bytes | None:
        ctx = self.ctx(work)
        method.prepare(ctx)
        dest = f"pg_wal/RECOVERYXLOG.{name}"
        res = self.sh(substitute(restore_command(method.restore_command(ctx)), {"%p": dest, "%f": name}))
        if res.returncode != 0:
            return None
        data = (self.pgdata / dest).read_bytes()
        (self.pgdata / dest).unlink()
        return data


@pytest.fixture
def site(barman_tool_dir: Path) -> Iterator[Site]:
    user = pg_os_user_or_skip()
    base = Path(tempfile.mkdtemp(prefix="stolon-barman-archive-", dir="/tmp"))
    os.chmod(base, 0o700)
    user.chown(base)
    s = Site(base, user)
    s.pgdata.mkdir(mode=0o700)
    user.chown(s.pgdata)
    try:
        yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def method(settings: dict[str, Any], **extra: Any) -> BarmanMethod:
    return BarmanMethod({**settings, **extra})


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_archive_identical_again_and_refuse_different(
    site: Site, barman_settings: dict[str, Any], compression: str
) -> None:
    m = method(barman_settings, compression=compression)
    a, b = os.urandom(64 * 1024), os.urandom(64 * 1024)
    first = site.archive(m, site.segment(SEG, a), SEG)
    assert first.returncode == 0, first.stderr
    assert site.fetch(m, SEG) == a
    again = site.archive(m, f"pg_wal/{SEG}", SEG)
    assert again.returncode == 0, again.stderr
    clash = site.archive(m, site.segment(SEG, b, sub="elsewhere"), SEG)
    assert clash.returncode != 0
    assert "already archived with different content" in clash.stderr
    assert site.fetch(m, SEG) == a, "the archived segment was replaced"
    assert not [p for p in site.ctx().work_dir.iterdir() if p.name.startswith(".archive-check")]


def test_identical_content_under_another_compression_is_not_uploaded_again(
    site: Site, barman_settings: dict[str, Any], moto_s3: MotoS3Server
) -> None:
    data = os.urandom(32 * 1024)
    path = site.segment(SEG, data)
    assert site.archive(method(barman_settings, compression="gzip"), path, SEG).returncode == 0
    plain = method(barman_settings)
    res = site.archive(plain, path, SEG)
    assert res.returncode == 0, res.stderr
    bucket = barman_settings["destinationUrl"].split("/")[2]
    keys = moto_s3.list_keys(bucket, "stolon/archive-test/wals/")
    assert keys == [f"stolon/archive-test/wals/0000000100000000/{SEG}.gz"]


def test_a_partial_segment_is_another_name(site: Site, barman_settings: dict[str, Any]) -> None:
    m = method(barman_settings)
    full, partial = os.urandom(16 * 1024), os.urandom(16 * 1024)
    assert site.archive(m, site.segment(SEG, full), SEG).returncode == 0
    res = site.archive(m, site.segment(SEG + ".partial", partial), SEG + ".partial")
    assert res.returncode == 0, res.stderr
    assert site.archive(m, f"pg_wal/{SEG}.partial", SEG + ".partial").returncode == 0
    assert site.fetch(m, SEG) == full  # restore_command never hands out the .partial
    assert site.fetch(m, "000000010000000000000006") is None


def test_history_and_backup_history_files(
    site: Site, barman_settings: dict[str, Any], moto_s3: MotoS3Server
) -> None:
    m = method(barman_settings)
    label = f"{SEG}.00000028.backup"
    assert site.archive(m, site.segment(label, b"START WAL LOCATION: 0/5000028\n"), label).returncode == 0
    bucket = barman_settings["destinationUrl"].split("/")[2]
    assert f"stolon/archive-test/wals/0000000100000000/{label}" in moto_s3.list_keys(bucket)
    history = b"1\t0/5000000\tno recovery target specified\n"
    assert site.archive(m, site.segment("00000002.history", history), "00000002.history").returncode == 0
    assert site.archive(m, "pg_wal/00000002.history", "00000002.history").returncode == 0
    other = site.segment("00000002.history", b"1\t0/6000000\tother\n", sub="x")
    assert site.archive(m, other, "00000002.history").returncode != 0
    assert site.fetch(m, "00000002.history") == history


def test_unreachable_storage_never_uploads_blind(site: Site, barman_settings: dict[str, Any]) -> None:
    m = method(barman_settings, endpointUrl=f"http://127.0.0.1:{free_port()}")
    res = site.archive(m, site.segment(SEG, b"x" * 1024), SEG)
    assert res.returncode != 0
    assert "cannot tell whether" in res.stderr and "not archiving it" in res.stderr
    assert site.fetch(m, SEG) is None


def test_missing_bucket(site: Site, barman_settings: dict[str, Any]) -> None:
    m = method(barman_settings, destinationUrl="s3://no-such-bucket-here/x")
    res = site.archive(m, site.segment(SEG, b"x" * 1024), SEG)
    assert res.returncode != 0 and "NoSuchBucket" in res.stderr
    with pytest.raises(StorageUnreachableError) as e:
        m.check(site.ctx())
    assert "does not exist: create it" in str(e.value)


def test_inherited_aws_variables_do_not_override_the_env_file(
    site: Site, barman_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # an access key without its secret (the keeper's cleaned environment drops *SECRET*):
    # boto3 would fail on the partial credentials if the method did not unset it
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "inherited-and-wrong")
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    m = method(barman_settings)
    data = os.urandom(1024)
    res = site.archive(m, site.segment(SEG, data), SEG)
    assert res.returncode == 0, res.stderr
    assert site.fetch(m, SEG) == data
    assert "barman-cloud" in m.check(site.ctx())


def test_ambient_credentials_without_env_file(
    site: Site, barman_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without envFile the tools use the AWS SDK's own chain (here a shared credentials file
    named by the environment PostgreSQL inherits)."""
    cred = site.base / "ambient-credentials"
    cred.write_text("[default]\naws_access_key_id = a\naws_secret_access_key = b\n")
    cred.chmod(0o600)
    site.user.chown(cred)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(cred))
    settings = {k: v for k, v in barman_settings.items() if k != "envFile"}
    m = method(settings)
    data = os.urandom(1024)
    res = site.archive(m, site.segment(SEG, data), SEG)
    assert res.returncode == 0, res.stderr
    assert site.fetch(m, SEG) == data
    assert not (site.ctx().work_dir / "aws-credentials").exists()


def test_tool_dir_setting(site: Site, barman_settings: dict[str, Any], barman_tool_dir: Path) -> None:
    assert "barman-cloud 3." in method(barman_settings, toolDir=str(barman_tool_dir)).check(site.ctx())
    with pytest.raises(BackupConfigError) as e:
        method(barman_settings, toolDir="/nonexistent/bin").check(site.ctx())
    message = str(e.value)
    assert "backup.settings.toolDir /nonexistent/bin" in message and "\n" not in message
