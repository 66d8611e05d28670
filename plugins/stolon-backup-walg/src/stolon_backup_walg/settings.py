"""The walg method's settings (``backup.settings`` in the cluster spec) and the WAL-G
configuration file made from them.

Settings hold no credentials (they are in the cluster data every component reads). Secrets
come from a ``KEY=VALUE`` file on each host (``envFile``, mode 0600) or from named
variables of the keeper's environment (``envFromKeeper``); :func:`config_document` merges
them with the settings into the JSON document WAL-G reads with ``--config`` (WAL-G reads
a config file through viper: its keys are the names of WAL-G's environment variables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stolon.backup.base import BackupConfigError
from stolon.backup.settings import Settings
from stolon_backup_walg import METHOD_NAME

KNOWN_SETTINGS = (
    "filePrefix",
    "s3Prefix",
    "s3Endpoint",
    "s3Region",
    "s3ForcePathStyle",
    "compression",
    "envFile",
    "envFromKeeper",
    "walgPath",
    "config",
)
#: WAL-G's ``WALG_COMPRESSION_METHOD`` values (zstd and brotli need a WAL-G built with them)
COMPRESSION_METHODS = ("lz4", "lzma", "zstd", "brotli", "none")
DEFAULT_COMPRESSION = "lz4"
DEFAULT_WALG = "wal-g"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_STORAGE_PREFIX = re.compile(r"WAL[EG]_[A-Z0-9]+_PREFIX")
_S3_PREFIX = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?")
#: libpq's connection variables: the keeper gives them per call (the running master)
_CONNECTION = frozenset(
    {"PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGDATABASE", "PGSERVICE",
     "PGSERVICEFILE", "WALG_CONFIG_PATH"}
)  # fmt: skip
_CREDENTIAL_WORDS = ("SECRET", "PASSWORD", "PASSPHRASE", "TOKEN", "ACCESS_KEY", "SAS_")


def looks_like_credential(name: str) -> bool:
    """A WAL-G setting whose value is a secret (``AWS_SECRET_ACCESS_KEY``, ``WALG_LIBSODIUM_KEY``,
    ``WALG_PGP_KEY``...): those go in the envFile, never in the cluster spec."""
    upper = name.upper()
    return any(w in upper for w in _CREDENTIAL_WORDS) or upper.endswith("_KEY")


@dataclass(frozen=True)
class WalgSettings:
    """Validated settings. Exactly one of ``file_prefix`` and ``s3_prefix`` is set."""

    file_prefix: Path | None = None
    s3_prefix: str = ""
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_force_path_style: bool | None = None
    compression: str = DEFAULT_COMPRESSION
    env_file: Path | None = None
    env_from_keeper: tuple[str, ...] = ()
    walg_path: str = DEFAULT_WALG
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def storage(self) -> str:
        """Where the repository is, for messages (no credentials in it)."""
        if self.file_prefix is not None:
            return f"file {self.file_prefix}"
        where = self.s3_prefix
        if self.s3_endpoint:
            where += f" at {self.s3_endpoint}"
        return where

    def controlled(self) -> dict[str, str]:
        """WAL-G settings the method's settings decide: ``{name: the setting deciding it}``."""
        out = {"WALG_COMPRESSION_METHOD": "compression", "WALG_PREVENT_WAL_OVERWRITE": "(always true)"}
        if self.s3_endpoint:
            out["AWS_ENDPOINT"] = "s3Endpoint"
        if self.s3_region:
            out["AWS_REGION"] = "s3Region"
        if self.s3_force_path_style is not None:
            out["AWS_S3_FORCE_PATH_STYLE"] = "s3ForcePathStyle"
        return out


def parse_settings(raw: Mapping[str, Any] | None) -> WalgSettings:
    """Read ``backup.settings`` strictly; :class:`BackupConfigError` names the key and the fix."""
    s = Settings(METHOD_NAME, raw, known=KNOWN_SETTINGS)
    file_prefix = s.abs_path("filePrefix")
    s3_prefix = s.string("s3Prefix")
    if file_prefix is None and not s3_prefix:
        raise BackupConfigError(
            f"{s.path}.filePrefix: the {METHOD_NAME} method needs a storage: set filePrefix (a directory,"
            ' e.g. "/var/lib/stolon-backups/c1") or s3Prefix (e.g. "s3://bucket/c1")'
        )
    if file_prefix is not None and s3_prefix:
        raise BackupConfigError(f"{s.path}.s3Prefix: set either filePrefix or s3Prefix, not both")
    if s3_prefix and not _S3_PREFIX.fullmatch(s3_prefix):
        raise BackupConfigError(
            f"{s.path}.s3Prefix: {s3_prefix!r} is not an S3 prefix: use s3://<bucket>[/<path>]"
        )
    s3_endpoint = s.string("s3Endpoint")
    s3_region = s.string("s3Region")
    force_path_style: bool | None = None
    if "s3ForcePathStyle" in s.raw:
        force_path_style = s.boolean("s3ForcePathStyle", default=False)
    if not s3_prefix:
        for key, given in (
            ("s3Endpoint", s3_endpoint),
            ("s3Region", s3_region),
            ("s3ForcePathStyle", force_path_style is not None),
        ):
            if given:
                raise BackupConfigError(f"{s.path}.{key}: only used with s3Prefix: remove it or set s3Prefix")
    if s3_endpoint and not s3_endpoint.startswith(("http://", "https://")):
        raise BackupConfigError(
            f"{s.path}.s3Endpoint: {s3_endpoint!r} is not a URL: use e.g. https://s3.example.com:9000"
        )
    compression = s.choice("compression", COMPRESSION_METHODS, default=DEFAULT_COMPRESSION)
    env_file = s.abs_path("envFile")
    walg = s.abs_path("walgPath")
    settings = WalgSettings(
        file_prefix=file_prefix,
        s3_prefix=s3_prefix,
        s3_endpoint=s3_endpoint,
        s3_region=s3_region,
        s3_force_path_style=force_path_style,
        compression=compression,
        env_file=env_file,
        env_from_keeper=_env_names(s, "envFromKeeper"),
        walg_path=str(walg) if walg is not None else DEFAULT_WALG,
        config={},
    )
    config = s.string_map("config")
    controlled = settings.controlled()
    for name in sorted(config):
        where = f"{s.path}.config.{name}"
        if not _SETTING_NAME.fullmatch(name):
            raise BackupConfigError(
                f"{where}: not a WAL-G setting name (upper case, e.g. WALG_UPLOAD_CONCURRENCY)"
            )
        if looks_like_credential(name):
            raise BackupConfigError(
                f"{where}: looks like a credential, which must not be in the cluster spec: put it in the envFile"
            )
        refused = _refusal(name, controlled)
        if refused:
            raise BackupConfigError(f"{where}: {refused}")
    return replace(settings, config=dict(config))


#: What ``envFromKeeper`` may name: storage credentials, never the keeper's own settings.
KEEPER_ENV_PREFIXES = ("AWS_", "WALG_", "GOOGLE_", "GCS_", "AZURE_", "OS_", "SWIFT_", "SSH_")


def _env_names(s: Settings, key: str) -> tuple[str, ...]:
    value = s.raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and _ENV_NAME.fullmatch(v) for v in value):
        raise BackupConfigError(
            f'{s.path}.{key}: must be a list of environment variable names, e.g. ["AWS_ACCESS_KEY_ID"]'
        )
    for name in value:
        if not name.startswith(KEEPER_ENV_PREFIXES):
            # the spec is readable and writable by more people than the keeper's environment:
            # it must not name the keeper's own secrets (STKEEPER_PG_SU_PASSWORD, PGPASSWORD...)
            raise BackupConfigError(
                f"{s.path}.{key}: {name} is not a storage credential: only variables starting with"
                f" {', '.join(KEEPER_ENV_PREFIXES)} may be copied from the keeper's environment"
            )
    return tuple(value)


def _refusal(name: str, controlled: Mapping[str, str]) -> str:
    """Why WAL-G setting ``name`` may not come from the config map or the credentials ("" if it may)."""
    if _STORAGE_PREFIX.fullmatch(name):
        return "the storage is chosen by backup.settings.filePrefix or s3Prefix"
    if name in _CONNECTION:
        return "the keeper gives WAL-G its PostgreSQL connection and data directory"
    if name in controlled:
        return f"set by backup.settings.{controlled[name]}"
    return ""


def config_document(
    settings: WalgSettings, pgdata: Path, credentials: Sequence[tuple[str, Mapping[str, str]]] = ()
) -> dict[str, str]:
    """The WAL-G configuration (setting name -> value) for ``--config``.

    ``credentials`` are ``(source, values)`` pairs (the envFile, the keeper's environment;
    ``source`` names it in errors). They may add any WAL-G setting except the storage, the
    connection, what the settings decide, and what another source or ``config`` sets.
    """
    doc: dict[str, str] = {}
    if settings.file_prefix is not None:
        doc["WALG_FILE_PREFIX"] = str(settings.file_prefix)
    else:
        doc["WALG_S3_PREFIX"] = settings.s3_prefix
        if settings.s3_endpoint:
            doc["AWS_ENDPOINT"] = settings.s3_endpoint
        if settings.s3_region:
            doc["AWS_REGION"] = settings.s3_region
        if settings.s3_force_path_style is not None:
            doc["AWS_S3_FORCE_PATH_STYLE"] = "true" if settings.s3_force_path_style else "false"
    doc["WALG_COMPRESSION_METHOD"] = settings.compression
    doc["WALG_PREVENT_WAL_OVERWRITE"] = "true"
    doc["PGDATA"] = str(pgdata)
    doc.update(settings.config)
    controlled = settings.controlled()
    given: dict[str, str] = {name: f"backup.settings.config.{name}" for name in settings.config}
    for source, values in credentials:
        for name in sorted(values):
            refused = _refusal(name, controlled)
            if not refused and name in given:
                refused = f"also set by {given[name]}"
            if refused:
                raise BackupConfigError(f"{source} sets {name}: {refused}; remove it from there")
            given[name] = source
            doc[name] = values[name]
    return dict(sorted(doc.items()))
