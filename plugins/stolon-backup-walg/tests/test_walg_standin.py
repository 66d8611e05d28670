"""The WAL-G stand-in on its own (no PostgreSQL): the CLI contract the plugin relies on
(configuration, exit codes, log lines, storage layout, JSON shapes, retention) and its LZ4
and LZMA codecs. The PostgreSQL side (backup-push, backup-fetch, archiving) runs in
``test_walg_contract.py``."""

from __future__ import annotations

import gzip
import importlib.machinery
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest
from walg_testing import STANDIN_SOURCE

from stolon.testing.requirements import tool_missing


def _module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("walg_standin_script", str(STANDIN_SOURCE))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


standin = _module()


class Walg:
    """Runs the stand-in with a config file for ``repo`` and a clean environment."""

    def __init__(self, binary: Path, home: Path, repo: Path | None, **config: str) -> None:
        self.binary = binary
        self.config = home / "walg.json"
        doc = {"WALG_PREVENT_WAL_OVERWRITE": "true", **config}
        if repo is not None:
            doc["WALG_FILE_PREFIX"] = str(repo)
        self.config.write_text(json.dumps(doc))
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WALG_", "WALE_", "PG", "AWS_"))
        } | {"HOME": str(home)}

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self.env | (env or {}),
            cwd=cwd,
            timeout=120,
            check=False,
        )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    p = tmp_path / "repo"
    p.mkdir()
    return p


@pytest.fixture
def walg(walg_standin: Path, tmp_path: Path, repo: Path) -> Walg:
    return Walg(walg_standin, tmp_path, repo)


# -- configuration, errors ---------------------------------------------------------------------


def test_version(walg: Walg) -> None:
    out = walg("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("wal-g version ")
    assert out.stdout.rstrip("\n").endswith("\tPostgreSQL")


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"WALG_FILE_PREFIX": "/nonexistent/stolon-walg"}, "FS storage root directory doesn't exist"),
        ({"WALG_S3_PREFIX": "s3://bucket/x"}, "only file storage"),
        ({}, "Failed to find any configured storage"),
    ],
)
def test_storage_errors(walg_standin: Path, tmp_path: Path, config: dict[str, str], words: str) -> None:
    out = Walg(walg_standin, tmp_path, None, **config)("backup-list", "--json")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and words in last, out.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["backup-list", "--json", "--nope"], "Error: unknown flag: --nope"),
        (["wal-push"], "Error: accepts between 1 and 1 arg(s), received 0"),
        (["nope"], 'Error: unknown command "nope"'),
        (["delete", "retain", "0", "--confirm"], "Error: cannot retain less than one backup"),
        (["delete", "retain", "x"], "Error: expected to get a number as retantion count"),
    ],
)
def test_usage_errors(walg: Walg, args: list[str], words: str) -> None:
    out = walg(*args)
    assert out.returncode == 1
    assert words in out.stderr


def test_empty_backup_list(walg: Walg) -> None:
    for args in (["--json"], ["--json", "--detail"]):
        out = walg("backup-list", *args)
        assert (out.returncode, out.stdout) == (0, "[]\n")


# -- wal-push / wal-fetch ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "suffix"), [("lz4", ".lz4"), ("lzma", ".lzma"), ("none", "")])
def test_wal_roundtrip(walg: Walg, repo: Path, tmp_path: Path, method: str, suffix: str) -> None:
    seg = tmp_path / "000000010000000000000003"
    data = os.urandom(5000) + b"\0" * (5 << 20)
    seg.write_bytes(data)
    out = walg("wal-push", seg.name, cwd=tmp_path, env={"WALG_COMPRESSION_METHOD": method})
    assert out.returncode == 0, out.stderr
    assert [p.name for p in (repo / "wal_005").iterdir()] == [seg.name + suffix]
    fetched = tmp_path / "RECOVERYXLOG"
    out = walg("wal-fetch", seg.name, str(fetched))
    assert out.returncode == 0, out.stderr
    assert fetched.read_bytes() == data
    again = walg("wal-fetch", seg.name, str(fetched))
    assert again.returncode == 1, "wal-fetch creates its destination with O_EXCL"


def test_environment_wins_over_config_file(walg_standin: Path, tmp_path: Path, repo: Path) -> None:
    walg = Walg(walg_standin, tmp_path, repo, WALG_COMPRESSION_METHOD="lzma")
    seg = tmp_path / "000000010000000000000004"
    seg.write_bytes(b"x" * 100)
    assert walg("wal-push", str(seg)).returncode == 0
    seg2 = tmp_path / "000000010000000000000005"
    seg2.write_bytes(b"y" * 100)
    assert walg("wal-push", str(seg2), env={"WALG_COMPRESSION_METHOD": "none"}).returncode == 0
    assert sorted(p.name for p in (repo / "wal_005").iterdir()) == [
        "000000010000000000000004.lzma",
        "000000010000000000000005",
    ]


def test_prevent_overwrite(walg_standin: Path, tmp_path: Path, repo: Path) -> None:
    seg = tmp_path / "000000010000000000000007"
    seg.write_bytes(b"a" * 1000)
    strict = Walg(walg_standin, tmp_path, repo)
    assert strict("wal-push", str(seg)).returncode == 0
    same = strict("wal-push", str(seg))
    assert same.returncode == 0 and "already archived with equal content" in same.stderr
    seg.write_bytes(b"b" * 1000)
    clash = strict("wal-push", str(seg))
    assert clash.returncode == 1
    assert "already archived, contents differ, unable to overwrite" in clash.stderr
    # without the setting WAL-G overwrites a segment, but never a timeline history file
    loose = strict("wal-push", str(seg), env={"WALG_PREVENT_WAL_OVERWRITE": "false"})
    assert loose.returncode == 0
    history = tmp_path / "00000002.history"
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    assert strict("wal-push", str(history)).returncode == 0
    history.write_text("1\t0/4000000\tsomething else\n")
    assert strict("wal-push", str(history), env={"WALG_PREVENT_WAL_OVERWRITE": "false"}).returncode == 1


def test_wal_fetch_of_a_missing_file(walg: Walg, tmp_path: Path) -> None:
    dest = tmp_path / "RECOVERYHISTORY"
    out = walg("wal-fetch", "00000002.history", str(dest))
    assert out.returncode == 74
    assert "Archive '00000002.history' does not exist." in out.stderr
    assert not dest.exists()


def test_wal_fetch_reads_gzip(walg: Walg, repo: Path, tmp_path: Path) -> None:
    (repo / "wal_005").mkdir()
    (repo / "wal_005" / "000000010000000000000009.gz").write_bytes(gzip.compress(b"wal" * 1000))
    dest = tmp_path / "out"
    assert walg("wal-fetch", "000000010000000000000009", str(dest)).returncode == 0
    assert dest.read_bytes() == b"wal" * 1000


# -- backup-list and delete retain on a hand-made repository ---------------------------------


def _fake_backup(repo: Path, wal: str, start_lsn: int, mtime: float) -> str:
    name = f"base_{wal}"
    folder = repo / "basebackups_005" / name
    (folder / "tar_partitions").mkdir(parents=True)
    (folder / "tar_partitions" / "part_001.tar.lz4").write_bytes(b"tar")
    meta = {
        "start_time": standin.go_time(int((mtime - 60) * 1e9), local=False),
        "finish_time": standin.go_time(int(mtime * 1e9), local=False),
        "date_fmt": "%Y-%m-%dT%H:%M:%S.%fZ",
        "hostname": "h",
        "data_dir": "/data",
        "pg_version": 150004,
        "start_lsn": start_lsn,
        "finish_lsn": start_lsn + 100,
        "is_permanent": False,
        "system_identifier": 7000000000000000001,
        "uncompressed_size": 10,
        "compressed_size": 3,
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    sentinel = repo / "basebackups_005" / f"{name}_backup_stop_sentinel.json"
    sentinel.write_text(json.dumps({"LSN": start_lsn, "FinishLSN": start_lsn + 100, "PgVersion": 150004}))
    os.utime(sentinel, (mtime, mtime))
    return name


def test_backup_list_detail_shape(walg: Walg, repo: Path) -> None:
    now = time.time()
    b2 = _fake_backup(repo, "000000010000000000000005", 0x5000028, now - 10)
    b1 = _fake_backup(repo, "000000010000000000000002", 0x2000028, now - 20)
    out = walg("backup-list", "--json", "--detail")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1, "compact JSON on one line"
    rows = json.loads(out.stdout)
    assert [r["backup_name"] for r in rows] == [b1, b2]
    assert list(rows[0]) == [
        "backup_name", "time", "wal_file_name", "storage_name", "start_time", "finish_time", "date_fmt",
        "hostname", "data_dir", "pg_version", "start_lsn", "finish_lsn", "is_permanent", "system_identifier",
        "uncompressed_size", "compressed_size",
    ]  # fmt: skip
    assert rows[0]["wal_file_name"] == "000000010000000000000002"
    assert rows[0]["storage_name"] == "default"
    assert rows[0]["start_lsn"] == 0x2000028
    short = json.loads(walg("backup-list", "--json").stdout)
    assert list(short[0]) == ["backup_name", "time", "wal_file_name", "storage_name"]
    pretty = walg("backup-list", "--json", "--detail", "--pretty").stdout
    assert json.loads(pretty) == rows and '\n    {\n        "backup_name"' in pretty


def _wal(repo: Path, *names: str) -> None:
    (repo / "wal_005").mkdir(exist_ok=True)
    for n in names:
        (repo / "wal_005" / n).write_bytes(b"w")


def test_delete_retain(walg: Walg, repo: Path) -> None:
    now = time.time()
    old = _fake_backup(repo, "000000010000000000000002", 0x2000028, now - 30)
    mid = _fake_backup(repo, "000000010000000000000005", 0x5000028, now - 20)
    new = _fake_backup(repo, "000000020000000000000007", 0x7000028, now - 10)
    _wal(
        repo,
        "000000010000000000000001.lz4",
        "000000010000000000000004.lz4",
        "000000010000000000000005.lz4",
        "000000010000000000000006.partial.lz4",
        "00000002.history.lz4",
        "000000020000000000000006.lz4",
        "000000020000000000000007.lz4",
    )
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    dry = walg("delete", "retain", "FULL", "2")
    assert dry.returncode == 0 and "Dry run" in dry.stderr
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()) == before

    out = walg("delete", "retain", "FULL", "2", "--confirm")
    assert out.returncode == 0, out.stderr
    names = [r["backup_name"] for r in json.loads(walg("backup-list", "--json").stdout)]
    assert names == [mid, new]
    assert not (repo / "basebackups_005" / old).exists(), "the deleted backup's folder is gone"
    assert sorted(p.name for p in (repo / "wal_005").iterdir()) == [
        "000000010000000000000005.lz4",
        "000000010000000000000006.partial.lz4",
        "00000002.history.lz4",
        "000000020000000000000006.lz4",
        "000000020000000000000007.lz4",
    ]
    # (timeline, segment) order: everything on timeline 1 is older than a timeline 2 target
    assert walg("delete", "retain", "1", "--confirm").returncode == 0
    assert [r["backup_name"] for r in json.loads(walg("backup-list", "--json").stdout)] == [new]
    assert sorted(p.name for p in (repo / "wal_005").iterdir()) == [
        "00000002.history.lz4",
        "000000020000000000000007.lz4",
    ]
    nothing = walg("delete", "retain", "FULL", "5", "--confirm")
    assert nothing.returncode == 0 and "No backup found for deletion" in nothing.stderr


# -- codecs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", 0x02CC5D05),
        (b"abc", 0x32D153FF),
        (b"Nobody inspects the spammish repetition", 0xE2293B2F),
    ],
)
def test_xxh32(data: bytes, digest: int) -> None:
    assert standin.xxh32(data) == digest


def test_lz4_header_checksum_of_the_lz4_tool() -> None:
    """``04 22 4D 18 64 40 A7``: the frame header the lz4 command-line tool writes."""
    assert (standin.xxh32(b"\x64\x40") >> 8) & 0xFF == 0xA7


def _frame(flg: int, blocks: list[tuple[bytes, bool]], content_checksum: bool = False) -> bytes:
    bd = 0x40
    out = struct.pack("<I", standin.LZ4_MAGIC) + bytes(
        [flg, bd, (standin.xxh32(bytes([flg, bd])) >> 8) & 0xFF]
    )
    for data, stored in blocks:
        out += struct.pack("<I", len(data) | (0x80000000 if stored else 0)) + data
    out += struct.pack("<I", 0)
    if content_checksum:
        out += b"\0\0\0\0"
    return out


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out = self.data[self.pos : end]
        self.pos += len(out)
        return out


def _lz4(frames: bytes) -> bytes:
    return b"".join(standin.decompressed("lz4", _Bytes(frames)))


def test_lz4_compressed_and_dependent_blocks() -> None:
    block1 = bytes([0x35]) + b"abc" + b"\x03\x00" + bytes([0x10]) + b"!"  # "abc", copy 9 from 3 back, "!"
    block2 = bytes([0x00]) + b"\x0d\x00" + bytes([0x10]) + b"?"  # copy 4 from the previous block, "?"
    assert (
        _lz4(_frame(0x44, [(block1, False), (block2, False)], content_checksum=True)) == b"abcabcabcabc!abca?"
    )


def test_lz4_long_lengths_and_concatenated_frames() -> None:
    literals = bytes(range(20))
    block = bytes([0xF0, 20 - 15]) + literals  # literal length 15 + 5
    match = bytes([0x1F]) + b"z" + b"\x01\x00" + bytes([255, 3]) + bytes([0x10]) + b"."  # 'z' then 4+15+255+3
    skippable = struct.pack("<II", 0x184D2A50, 3) + b"xyz"
    frames = _frame(0x60, [(block, False)]) + skippable + _frame(0x60, [(match, False), (b"stored", True)])
    assert _lz4(frames) == literals + b"z" * (1 + 4 + 15 + 255 + 3) + b"." + b"stored"


def test_lz4_writer_roundtrip() -> None:
    data = os.urandom(100) + b"\0" * (9 << 20) + b"end"
    sink = _Sink()
    w = standin.Lz4FrameWriter(sink)
    for i in range(0, len(data), 1 << 20):
        w.write(data[i : i + (1 << 20)])
    w.close()
    assert _lz4(bytes(sink.buf)) == data


class _Sink:
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)


def test_lz4_bad_header_checksum() -> None:
    frame = bytearray(_frame(0x60, [(b"x", True)]))
    frame[6] ^= 0xFF
    with pytest.raises(standin.Fatal, match="header checksum"):
        _lz4(bytes(frame))


def test_lzma_alone_roundtrip() -> None:
    sink = _Sink()
    w = standin.LzmaWriter(sink)
    w.write(b"hello " * 1000)
    w.close()
    assert bytes(sink.buf[:1]) == b"\x5d", "LZMA alone header (lc=3, lp=0, pb=2)"
    assert b"".join(standin.decompressed("lzma", _Bytes(bytes(sink.buf)))) == b"hello " * 1000


@pytest.mark.parametrize("member", ["../etc/passwd", "/etc/passwd", "base/../../x", ""])
def test_tar_members_stay_inside(member: str, tmp_path: Path) -> None:
    with pytest.raises(standin.Fatal, match="refusing tar member"):
        standin.safe_member_path(str(tmp_path), member)


def test_go_time_format() -> None:
    assert standin.go_time(1_767_225_600_000_000_000, local=False) == "2026-01-01T00:00:00Z"
    assert standin.go_time(1_767_225_600_730_000_000, local=False) == "2026-01-01T00:00:00.73Z"
    assert standin.go_time(1_767_225_600_000_000_001, local=False) == "2026-01-01T00:00:00.000000001Z"


def test_backup_push_without_a_server(walg: Walg, tmp_path: Path) -> None:
    """The session can't be opened: psql's error becomes WAL-G's one-line fatal error."""
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("15\n")
    if not os.access("/usr/lib/postgresql/15/bin/psql", os.X_OK) and not shutil.which("psql"):
        tool_missing("postgres", "psql is not installed")
    out = walg("backup-push", str(pgdata), env={"PGHOST": str(tmp_path / "nosocket"), "PGPORT": "1"})
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and "QueryRunner: " in last and "connection" in last, out.stderr
