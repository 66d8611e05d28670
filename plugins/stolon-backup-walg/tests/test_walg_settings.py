"""The walg method's settings, the WAL-G config document made from them, and the rendered
archive/restore commands (pure functions, no PostgreSQL, no WAL-G)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stolon_backup_walg.method import WalgMethod
from stolon_backup_walg.settings import WalgSettings, config_document, looks_like_credential, parse_settings

from stolon.backup.base import BackupConfigError, BackupContext
from stolon.backup.commands import archive_command, restore_command
from stolon.postgres.runas import OSUser

FILE = {"filePrefix": "/var/lib/stolon-backups/c1"}
S3 = {"s3Prefix": "s3://backups/c1"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (FILE, WalgSettings(file_prefix=Path("/var/lib/stolon-backups/c1"))),
        (
            {**S3, "s3Endpoint": "http://127.0.0.1:9000", "s3Region": "eu-west-1", "s3ForcePathStyle": True},
            WalgSettings(
                s3_prefix="s3://backups/c1",
                s3_endpoint="http://127.0.0.1:9000",
                s3_region="eu-west-1",
                s3_force_path_style=True,
            ),
        ),
        (
            {**S3, "s3ForcePathStyle": False},
            WalgSettings(s3_prefix="s3://backups/c1", s3_force_path_style=False),
        ),
        (
            {**FILE, "compression": "lzma"},
            WalgSettings(file_prefix=Path(FILE["filePrefix"]), compression="lzma"),
        ),
        (
            {**FILE, "compression": "none"},
            WalgSettings(file_prefix=Path(FILE["filePrefix"]), compression="none"),
        ),
        (
            {**FILE, "walgPath": "/usr/local/bin/wal-g", "envFile": "/etc/stolon/walg.env"},
            WalgSettings(
                file_prefix=Path(FILE["filePrefix"]),
                walg_path="/usr/local/bin/wal-g",
                env_file=Path("/etc/stolon/walg.env"),
            ),
        ),
        (
            {**S3, "envFromKeeper": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]},
            WalgSettings(
                s3_prefix="s3://backups/c1", env_from_keeper=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            ),
        ),
        (
            {**S3, "config": {"WALG_UPLOAD_CONCURRENCY": "4", "WALG_S3_STORAGE_CLASS": "STANDARD_IA"}},
            WalgSettings(
                s3_prefix="s3://backups/c1",
                config={"WALG_UPLOAD_CONCURRENCY": "4", "WALG_S3_STORAGE_CLASS": "STANDARD_IA"},
            ),
        ),
    ],
)
def test_valid_settings(raw: dict[str, Any], expected: WalgSettings) -> None:
    assert parse_settings(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({}, "filePrefix", "needs a storage"),
        (None, "filePrefix", "needs a storage"),
        ({**FILE, **S3}, "s3Prefix", "not both"),
        ({"filePrefix": "backups/c1"}, "filePrefix", "absolute path"),
        ({"filePrefix": "/b\n"}, "filePrefix", "control characters"),
        ({"filePrefix": 7}, "filePrefix", "must be a string"),
        ({"s3Prefix": "backups/c1"}, "s3Prefix", "s3://<bucket>"),
        ({"s3Prefix": "s3://"}, "s3Prefix", "s3://<bucket>"),
        ({**FILE, "s3Endpoint": "http://minio:9000"}, "s3Endpoint", "only used with s3Prefix"),
        ({**FILE, "s3Region": "eu-west-1"}, "s3Region", "only used with s3Prefix"),
        ({**FILE, "s3ForcePathStyle": True}, "s3ForcePathStyle", "only used with s3Prefix"),
        ({**S3, "s3ForcePathStyle": "yes"}, "s3ForcePathStyle", "true or false"),
        ({**S3, "s3Endpoint": "minio:9000"}, "s3Endpoint", "not a URL"),
        ({**FILE, "compression": "gzip"}, "compression", "lz4, lzma, zstd, brotli, none"),
        ({**FILE, "walgPath": "wal-g"}, "walgPath", "absolute path"),
        ({**FILE, "envFile": "walg.env"}, "envFile", "absolute path"),
        (
            {**FILE, "envFromKeeper": "AWS_ACCESS_KEY_ID"},
            "envFromKeeper",
            "list of environment variable names",
        ),
        ({**FILE, "envFromKeeper": ["1BAD"]}, "envFromKeeper", "list of environment variable names"),
        ({**FILE, "config": {"AWS_SECRET_ACCESS_KEY": "x"}}, "config.AWS_SECRET_ACCESS_KEY", "credential"),
        ({**FILE, "config": {"AWS_ACCESS_KEY_ID": "x"}}, "config.AWS_ACCESS_KEY_ID", "credential"),
        ({**FILE, "config": {"WALG_LIBSODIUM_KEY": "x"}}, "config.WALG_LIBSODIUM_KEY", "credential"),
        (
            {**FILE, "config": {"WALG_PGP_KEY_PASSPHRASE": "x"}},
            "config.WALG_PGP_KEY_PASSPHRASE",
            "credential",
        ),
        ({**FILE, "config": {"WALG_S3_PREFIX": "s3://x/y"}}, "config.WALG_S3_PREFIX", "storage"),
        ({**FILE, "config": {"WALG_FILE_PREFIX": "/x"}}, "config.WALG_FILE_PREFIX", "storage"),
        ({**FILE, "config": {"PGHOST": "/tmp"}}, "config.PGHOST", "connection"),
        ({**FILE, "config": {"PGDATA": "/x"}}, "config.PGDATA", "data directory"),
        (
            {**FILE, "config": {"WALG_COMPRESSION_METHOD": "lzma"}},
            "config.WALG_COMPRESSION_METHOD",
            "compression",
        ),
        (
            {**FILE, "config": {"WALG_PREVENT_WAL_OVERWRITE": "false"}},
            "config.WALG_PREVENT_WAL_OVERWRITE",
            "always",
        ),
        ({**S3, "s3Region": "x", "config": {"AWS_REGION": "y"}}, "config.AWS_REGION", "s3Region"),
        ({**FILE, "config": {"walg_upload": "1"}}, "config.walg_upload", "setting name"),
        ({**FILE, "config": {"WALG_UPLOAD_CONCURRENCY": 4}}, "config", "object of strings"),
        ({**FILE, "filePrefx": "/x"}, "filePrefx", "did you mean 'filePrefix'"),
        ({**FILE, "password": "x"}, "password", "unknown setting"),
    ],
)
def test_invalid_settings(raw: dict[str, Any] | None, field: str, words: str) -> None:
    with pytest.raises(BackupConfigError) as e:
        parse_settings(raw)
    message = str(e.value)
    assert message.startswith(f"backup.settings.{field}:"), message
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("AWS_SESSION_TOKEN", True),
        ("WALG_LIBSODIUM_KEY", True),
        ("WALG_PGP_KEY", True),
        ("AZURE_STORAGE_SAS_TOKEN", True),
        ("SSH_PASSWORD", True),
        ("WALG_LIBSODIUM_KEY_PATH", False),
        ("WALG_UPLOAD_CONCURRENCY", False),
        ("AWS_PROFILE", False),
        ("GOOGLE_APPLICATION_CREDENTIALS", False),
    ],
)
def test_credential_names(name: str, credential: bool) -> None:
    assert looks_like_credential(name) is credential


def test_config_document_for_a_directory() -> None:
    doc = config_document(parse_settings(FILE), Path("/var/lib/pg/data"))
    assert doc == {
        "PGDATA": "/var/lib/pg/data",
        "WALG_COMPRESSION_METHOD": "lz4",
        "WALG_FILE_PREFIX": "/var/lib/stolon-backups/c1",
        "WALG_PREVENT_WAL_OVERWRITE": "true",
    }
    assert list(doc) == sorted(doc)


def test_config_document_for_s3_with_credentials() -> None:
    settings = parse_settings(
        {**S3, "s3Endpoint": "http://127.0.0.1:9000", "s3ForcePathStyle": True, "compression": "lzma",
         "config": {"WALG_UPLOAD_CONCURRENCY": "2"}}
    )  # fmt: skip
    doc = config_document(
        settings,
        Path("/data"),
        [
            ("envFile", {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret"}),
            ("keeper", {"AWS_REGION": "us-east-1"}),
        ],
    )
    assert doc == {
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_ENDPOINT": "http://127.0.0.1:9000",
        "AWS_REGION": "us-east-1",
        "AWS_S3_FORCE_PATH_STYLE": "true",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "PGDATA": "/data",
        "WALG_COMPRESSION_METHOD": "lzma",
        "WALG_PREVENT_WAL_OVERWRITE": "true",
        "WALG_S3_PREFIX": "s3://backups/c1",
        "WALG_UPLOAD_CONCURRENCY": "2",
    }


@pytest.mark.parametrize(
    ("raw", "credentials", "words"),
    [
        (
            FILE,
            [("envFile x", {"WALG_FILE_PREFIX": "/elsewhere"})],
            "envFile x sets WALG_FILE_PREFIX: the storage",
        ),
        (FILE, [("envFile x", {"WALG_GS_PREFIX": "gs://b"})], "sets WALG_GS_PREFIX: the storage"),
        (FILE, [("envFile x", {"PGPASSWORD": "pw"})], "sets PGPASSWORD: the keeper gives"),
        (FILE, [("envFile x", {"WALG_PREVENT_WAL_OVERWRITE": "false"})], "sets WALG_PREVENT_WAL_OVERWRITE"),
        ({**S3, "s3Region": "a"}, [("envFile x", {"AWS_REGION": "b"})], "set by backup.settings.s3Region"),
        (
            {**FILE, "config": {"WALG_UPLOAD_CONCURRENCY": "2"}},
            [("envFile x", {"WALG_UPLOAD_CONCURRENCY": "3"})],
            "also set by backup.settings.config.WALG_UPLOAD_CONCURRENCY",
        ),
        (
            S3,
            [("envFile x", {"AWS_ACCESS_KEY_ID": "a"}), ("keeper env", {"AWS_ACCESS_KEY_ID": "b"})],
            "keeper env sets AWS_ACCESS_KEY_ID: also set by envFile x",
        ),
    ],
)
def test_config_document_conflicts(
    raw: dict[str, Any], credentials: list[tuple[str, dict[str, str]]], words: str
) -> None:
    with pytest.raises(BackupConfigError) as e:
        config_document(parse_settings(raw), Path("/data"), credentials)
    assert words in str(e.value)
    assert "remove it from there" in str(e.value)


def _ctx(work_dir: Path) -> BackupContext:
    return BackupContext(
        cluster_name="c1",
        pgdata=Path("/var/lib/pg/data"),
        pg_bin_dir=Path("/usr/lib/postgresql/15/bin"),
        pg_major=15,
        os_user=OSUser.current(),
        work_dir=work_dir,
    )


@pytest.mark.parametrize(
    ("walg", "work_dir", "archive", "restore"),
    [
        (
            None,
            "/var/lib/stolon/keeper/backup/archive",
            "wal-g --config /var/lib/stolon/keeper/backup/archive/walg.json wal-push %p",
            "wal-g --config /var/lib/stolon/keeper/backup/archive/walg.json wal-fetch %f %p",
        ),
        (
            "/opt/wal g/wal-g",
            "/data/100%/backup",
            "'/opt/wal g/wal-g' --config /data/100%%/backup/walg.json wal-push %p",
            "'/opt/wal g/wal-g' --config /data/100%%/backup/walg.json wal-fetch %f %p",
        ),
        (
            "/opt/it's/wal-g",
            "/w",
            "'/opt/it'\"'\"'s/wal-g' --config /w/walg.json wal-push %p",
            "'/opt/it'\"'\"'s/wal-g' --config /w/walg.json wal-fetch %f %p",
        ),
    ],
)
def test_rendered_commands(walg: str | None, work_dir: str, archive: str, restore: str) -> None:
    raw: dict[str, Any] = dict(FILE)
    if walg:
        raw["walgPath"] = walg
    method = WalgMethod(raw)
    ctx = _ctx(Path(work_dir))
    assert archive_command(method.archive_command(ctx)) == archive
    assert restore_command(method.restore_command(ctx)) == restore


@pytest.mark.parametrize(
    "name", ["STKEEPER_PG_SU_PASSWORD", "PGPASSWORD", "HOME", "STOLONCTL_STORE_ENDPOINTS"]
)
def test_env_from_keeper_names_only_storage_credentials(name: str) -> None:
    """The spec (readable and writable by more people) can't copy the keeper's own secrets."""
    with pytest.raises(BackupConfigError, match=f"{name} is not a storage credential"):
        parse_settings({**FILE, "envFromKeeper": [name]})
