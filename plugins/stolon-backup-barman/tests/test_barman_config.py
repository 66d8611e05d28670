"""Settings validation of the ``barman`` method (table-driven, no tools needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stolon_backup_barman.config import BarmanSettings

from stolon.backup.base import BackupConfigError

BASE = {"destinationUrl": "s3://my-bucket/stolon"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"destinationUrl": "s3://my-bucket"}, {"destination_url": "s3://my-bucket"}),
        ({"destinationUrl": "s3://my-bucket/a/b/"}, {"destination_url": "s3://my-bucket/a/b"}),
        ({"destinationUrl": "s3://b.example-1/x_y/z+1"}, {"destination_url": "s3://b.example-1/x_y/z+1"}),
        (BASE, {"server_name": "", "compression": "none", "addressing_style": "auto", "env_file": None}),
        ({**BASE, "serverName": "pg-main_1.a"}, {"server_name": "pg-main_1.a"}),
        ({**BASE, "endpointUrl": "http://127.0.0.1:9000"}, {"endpoint_url": "http://127.0.0.1:9000"}),
        ({**BASE, "endpointUrl": "https://minio.example/s3"}, {"endpoint_url": "https://minio.example/s3"}),
        ({**BASE, "addressingStyle": "path"}, {"addressing_style": "path"}),
        ({**BASE, "envFile": "/etc/stolon/s3.env"}, {"env_file": Path("/etc/stolon/s3.env")}),
        ({**BASE, "compression": "gzip"}, {"compression": "gzip"}),
        ({**BASE, "compression": "snappy"}, {"compression": "snappy"}),
        ({**BASE, "toolDir": "/opt/barman/bin"}, {"tool_dir": Path("/opt/barman/bin")}),
    ],
)
def test_valid_settings(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    s = BarmanSettings.parse(raw)
    for attr, value in expected.items():
        assert getattr(s, attr) == value


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({}, ["backup.settings.destinationUrl", "required", "s3://"]),
        ({"destinationUrl": ""}, ["backup.settings.destinationUrl", "must not be empty"]),
        ({"destinationUrl": "/var/backups"}, ["destinationUrl", "not an s3:// URL"]),
        ({"destinationUrl": "gs://bucket/x"}, ["destinationUrl", "S3"]),
        ({"destinationUrl": "s3://My_Bucket/x"}, ["destinationUrl", "not a valid bucket name"]),
        ({"destinationUrl": "s3://ab/x"}, ["destinationUrl", "bucket"]),
        ({"destinationUrl": "s3://bucket:9000/x"}, ["destinationUrl", "s3://bucket/prefix"]),
        ({"destinationUrl": "s3://key:secret@bucket/x"}, ["destinationUrl"]),
        ({"destinationUrl": "s3://bucket/a//b"}, ["destinationUrl", "prefix"]),
        ({"destinationUrl": "s3://bucket/a/../b"}, ["destinationUrl", "'..'"]),
        ({"destinationUrl": "s3://bucket/a b"}, ["destinationUrl", "prefix"]),
        ({"destinationUrl": "s3://bucket/x?versionId=1"}, ["destinationUrl"]),
        ({"destinationUrl": "s3://bucket/x\n"}, ["destinationUrl", "control characters"]),
        ({**BASE, "serverName": "../other"}, ["backup.settings.serverName", "not a usable"]),
        ({**BASE, "serverName": "a/b"}, ["serverName"]),
        ({**BASE, "serverName": "x" * 65}, ["serverName", "at most 64"]),
        ({**BASE, "serverName": 7}, ["serverName", "must be a string"]),
        ({**BASE, "endpointUrl": "minio:9000"}, ["backup.settings.endpointUrl", "http://"]),
        ({**BASE, "endpointUrl": "ftp://host"}, ["endpointUrl"]),
        ({**BASE, "endpointUrl": "http://user:pw@host"}, ["endpointUrl", "envFile"]),
        ({**BASE, "endpointUrl": "http://host:99999"}, ["endpointUrl", "port"]),
        ({**BASE, "addressingStyle": "dns"}, ["backup.settings.addressingStyle", "auto, virtual, path"]),
        ({**BASE, "compression": "zip"}, ["backup.settings.compression", "gzip"]),
        ({**BASE, "envFile": "s3.env"}, ["backup.settings.envFile", "absolute"]),
        ({**BASE, "toolDir": "bin"}, ["backup.settings.toolDir", "absolute"]),
        ({**BASE, "toolDir": "/opt/a=b/bin"}, ["backup.settings.toolDir", "'='"]),
        ({**BASE, "awsSecretAccessKey": "x"}, ["backup.settings.awsSecretAccessKey", "unknown setting"]),
        ({**BASE, "destinationURL": "s3://x"}, ["destinationURL", "did you mean 'destinationUrl'"]),
    ],
)
def test_invalid_settings(raw: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(BackupConfigError) as e:
        BarmanSettings.parse(raw)
    message = str(e.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("server", "cluster", "expected"),
    [("", "c1", "c1"), ("", "prod.db-1", "prod.db-1"), ("srv", "whatever name", "srv")],
)
def test_server_name_defaults_to_the_cluster_name(server: str, cluster: str, expected: str) -> None:
    raw = {**BASE, **({"serverName": server} if server else {})}
    assert BarmanSettings.parse(raw).server_for(cluster) == expected


@pytest.mark.parametrize("cluster", ["my cluster", "a/b", "-x", "x" * 65, ""])
def test_unusable_cluster_name_asks_for_server_name(cluster: str) -> None:
    with pytest.raises(BackupConfigError) as e:
        BarmanSettings.parse(BASE).server_for(cluster)
    assert "backup.settings.serverName" in str(e.value)
    assert "set serverName" in str(e.value)
