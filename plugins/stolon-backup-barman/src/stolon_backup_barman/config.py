"""The ``barman`` method's settings (``backup.settings`` in the cluster spec), read strictly.

Nothing here is secret: settings live in the cluster data, which every component reads.
Credentials come from the file named by ``envFile`` (see :mod:`stolon_backup_barman.credentials`)
or from the default AWS credential chain of PostgreSQL's OS user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stolon.backup.base import BackupConfigError
from stolon.backup.settings import Settings
from stolon_backup_barman import METHOD_NAME

KNOWN = (
    "destinationUrl",
    "serverName",
    "endpointUrl",
    "addressingStyle",
    "envFile",
    "compression",
    "toolDir",
)

#: compressions both barman-cloud-backup and barman-cloud-wal-archive accept (3.19);
#: "snappy" and "lz4" need barman's ``snappy`` / ``lz4`` extras in the tools' environment
COMPRESSIONS = ("none", "gzip", "bzip2", "snappy", "lz4")
ADDRESSING_STYLES = ("auto", "virtual", "path")

# S3 bucket naming rules (3-63 characters, lower-case letters, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9_.+=@,-]+")
#: what a Barman server name may be here: one path component of the object keys
SERVER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class BarmanSettings:
    destination_url: str
    server_name: str
    endpoint_url: str
    addressing_style: str
    env_file: Path | None
    compression: str
    tool_dir: Path | None

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> BarmanSettings:
        s = Settings(METHOD_NAME, raw, known=KNOWN)
        destination = parse_destination(
            s.string("destinationUrl", required=True, example="s3://my-bucket/stolon")
        )
        server_name = s.string("serverName")
        if server_name:
            check_server_name(server_name, "backup.settings.serverName")
        endpoint = s.string("endpointUrl")
        if endpoint:
            check_endpoint(endpoint)
        tool_dir = s.abs_path("toolDir")
        if tool_dir is not None and "=" in str(tool_dir):
            # argv goes through env(1), which would read NAME=VALUE as an assignment
            raise BackupConfigError(f"backup.settings.toolDir: {tool_dir} must not contain '='")
        return cls(
            destination_url=destination,
            server_name=server_name,
            endpoint_url=endpoint,
            addressing_style=s.choice("addressingStyle", ADDRESSING_STYLES, default="auto"),
            env_file=s.abs_path("envFile"),
            compression=s.choice("compression", COMPRESSIONS, default="none"),
            tool_dir=tool_dir,
        )

    def server_for(self, cluster_name: str) -> str:
        """The Barman server name: ``serverName``, or the cluster name when it fits."""
        if self.server_name:
            return self.server_name
        if not SERVER_NAME_RE.fullmatch(cluster_name):
            raise BackupConfigError(
                f"backup.settings.serverName: the cluster name {cluster_name!r} cannot be a Barman"
                " server name (letters, digits, '_', '.', '-', at most 64): set serverName"
            )
        return cluster_name


def parse_destination(url: str) -> str:
    """``s3://bucket[/prefix]`` normalised (no trailing slash); a one-line error otherwise."""
    what = "backup.settings.destinationUrl"
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise BackupConfigError(
            f"{what}: {url!r} is not an s3:// URL (e.g. s3://my-bucket/stolon);"
            " this method supports S3 and S3-compatible storage only"
        )
    if parts.query or parts.fragment or parts.username or parts.password or parts.port:
        raise BackupConfigError(f"{what}: {url!r} must be s3://bucket/prefix, nothing else")
    bucket = parts.hostname or ""
    if parts.netloc != bucket or not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise BackupConfigError(
            f"{what}: {parts.netloc!r} is not a valid bucket name (3-63 lower-case letters, digits, '.', '-')"
        )
    prefix = parts.path.strip("/")
    if prefix:
        for part in prefix.split("/"):
            if part in ("", ".", "..") or not _PREFIX_PART.fullmatch(part):
                raise BackupConfigError(
                    f"{what}: the prefix {parts.path!r} has an empty, '.'/'..' or unusual part {part!r}"
                    " (use letters, digits and _.+=@,- between slashes)"
                )
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def check_server_name(name: str, what: str) -> None:
    if not SERVER_NAME_RE.fullmatch(name):
        raise BackupConfigError(
            f"{what}: {name!r} is not a usable Barman server name"
            " (letters, digits, '_', '.', '-', at most 64, not starting with a symbol)"
        )


def check_endpoint(url: str) -> None:
    what = "backup.settings.endpointUrl"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackupConfigError(
            f"{what}: {url!r} must be an http:// or https:// URL, e.g. https://minio:9000"
        )
    if parts.username or parts.password:
        raise BackupConfigError(f"{what}: put no credentials in the URL: use envFile")
    if parts.query or parts.fragment:
        raise BackupConfigError(f"{what}: {url!r} must have no query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise BackupConfigError(f"{what}: {url!r} has an invalid port") from None
