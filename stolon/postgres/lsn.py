"""WAL positions (LSNs) and WAL file names.

An LSN is a 64-bit byte position written ``X/Y`` in hex (high and low 32 bits). A WAL file
name is 24 hex digits: timeline, then the segment number split into "xlog id" and segment
within it, each 8 digits. Go Stolon assumes 16 MiB segments; so do we (see
:data:`WAL_SEGMENT_SIZE`).
"""

from __future__ import annotations

import re

WAL_SEGMENT_SIZE = 16 * 1024 * 1024
MAX_LSN = 2**64 - 1

_WAL_FILE_RE = re.compile(r"[0-9A-F]{24}")
_HEX32_RE = re.compile(r"[0-9A-Fa-f]{1,8}")


def parse_lsn(text: str) -> int:
    """``"0/3000060"`` → ``50331744``. Raises ValueError on anything else."""
    parts = text.strip().split("/")
    if len(parts) != 2 or not all(_HEX32_RE.fullmatch(p) for p in parts):
        raise ValueError(f"bad pg_lsn: {text!r}")
    return (int(parts[0], 16) << 32) | int(parts[1], 16)


def format_lsn(lsn: int) -> str:
    """``50331744`` → ``"0/3000060"`` (PostgreSQL's own upper-case spelling)."""
    if not 0 <= lsn <= MAX_LSN:
        raise ValueError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def is_wal_file_name(name: str) -> bool:
    """24 upper-case hex digits (``.partial``, ``.history``, ``.backup`` names are not)."""
    return bool(_WAL_FILE_RE.fullmatch(name))


def _segments_per_xlog_id(segment_size: int) -> int:
    if segment_size <= 0 or segment_size & (segment_size - 1):
        raise ValueError(f"WAL segment size must be a power of two: {segment_size}")
    return 0x100000000 // segment_size


def wal_file_name(timeline: int, lsn: int, segment_size: int = WAL_SEGMENT_SIZE) -> str:
    """The WAL file holding byte ``lsn`` on ``timeline`` (PostgreSQL's ``XLogFileName``)."""
    if not 0 < timeline <= 0xFFFFFFFF:
        raise ValueError(f"timeline out of range: {timeline}")
    per_id = _segments_per_xlog_id(segment_size)
    segno = lsn // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def wal_file_name_no_timeline(lsn: int, segment_size: int = WAL_SEGMENT_SIZE) -> str:
    """The last 16 digits of :func:`wal_file_name` (Go's ``XlogPosToWalFileNameNoTimeline``)."""
    return wal_file_name(1, lsn, segment_size)[8:]


def strip_timeline(name: str) -> str:
    """``000000020000000000000003`` → ``0000000000000003``."""
    if not is_wal_file_name(name):
        raise ValueError(f"bad wal file name: {name!r}")
    return name[8:]


def wal_file_start_lsn(name: str, segment_size: int = WAL_SEGMENT_SIZE) -> int:
    """The first LSN inside WAL file ``name``."""
    if not is_wal_file_name(name):
        raise ValueError(f"bad wal file name: {name!r}")
    per_id = _segments_per_xlog_id(segment_size)
    segno = int(name[8:16], 16) * per_id + int(name[16:24], 16)
    return segno * segment_size
