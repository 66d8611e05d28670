"""AWS credentials for the barman-cloud tools, from a ``KEY=VALUE`` file on the host.

``envFile`` names a file (mode 0600, read with :func:`stolon.backup.files.read_env_file`)
holding the usual AWS variables. The tools never get them as environment variables or
arguments: the method writes an AWS shared credentials file and an AWS config file into
its work directory (0600, PostgreSQL's OS user) and runs every tool as::

    env -u AWS_ACCESS_KEY_ID ... AWS_SHARED_CREDENTIALS_FILE=<work>/aws-credentials
        AWS_CONFIG_FILE=<work>/aws-config barman-cloud-... args

so argv and the rendered ``archive_command`` hold only paths. The ``-u`` options drop AWS
variables inherited from the keeper's environment, which boto3 would otherwise prefer over
the files (they make the file authoritative).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stolon.backup.base import BackupConfigError
from stolon.backup.files import read_env_file
from stolon.postgres.runas import OSUser

ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"
REGION_KEYS = ("AWS_DEFAULT_REGION", "AWS_REGION")
ACCEPTED = (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, *REGION_KEYS)

CREDENTIALS_FILE = "aws-credentials"
CONFIG_FILE = "aws-config"

#: inherited variables that would take precedence over (or mix with) the files
OVERRIDDEN_ENV = (
    ACCESS_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    *REGION_KEYS,
)

_WHAT = "backup.settings.envFile"


@dataclass(frozen=True)
class AwsFiles:
    """The content of the two files (``repr`` hides it: it holds the secret key)."""

    credentials: str
    config: str

    def __repr__(self) -> str:
        return "AwsFiles(<hidden>)"

    @property
    def secrets(self) -> list[str]:
        """Values to scrub from any tool output."""
        out = []
        for line in self.credentials.splitlines():
            key, sep, value = line.partition(" = ")
            if sep and key in ("aws_secret_access_key", "aws_session_token"):
                out.append(value)
        return out


def load_env_file(path: Path, owner: OSUser) -> AwsFiles:
    """The AWS files for ``envFile`` (which must belong to ``owner``, the tools' OS user)."""
    return aws_files(read_env_file(str(path), _WHAT, owner=owner), str(path))


def aws_files(values: Mapping[str, str], source: str) -> AwsFiles:
    """The shared credentials and config files for ``values`` (read from ``source``).

    One-line errors name the file and the variable, never a value.
    """
    unknown = sorted(set(values) - set(ACCEPTED))
    if unknown:
        raise BackupConfigError(
            f"{_WHAT}: {source} sets {', '.join(unknown)}, which the barman method does not use"
            f" (it reads {', '.join(ACCEPTED)})"
        )
    for key, value in values.items():
        if not value:
            raise BackupConfigError(f"{_WHAT}: {key} is empty in {source}")
    has_key, has_secret = ACCESS_KEY in values, SECRET_KEY in values
    if has_key != has_secret:
        missing = SECRET_KEY if has_key else ACCESS_KEY
        raise BackupConfigError(f"{_WHAT}: {source} sets one of {ACCESS_KEY}/{SECRET_KEY} but not {missing}")
    if SESSION_TOKEN in values and not has_key:
        raise BackupConfigError(f"{_WHAT}: {source} sets {SESSION_TOKEN} without {ACCESS_KEY}/{SECRET_KEY}")
    cred = ["[default]"]
    if has_key:
        cred.append(f"aws_access_key_id = {values[ACCESS_KEY]}")
        cred.append(f"aws_secret_access_key = {values[SECRET_KEY]}")
    if SESSION_TOKEN in values:
        cred.append(f"aws_session_token = {values[SESSION_TOKEN]}")
    conf = ["[default]"]
    region = next((values[k] for k in REGION_KEYS if k in values), "")
    if region:
        conf.append(f"region = {region}")
    return AwsFiles(credentials="\n".join(cred) + "\n", config="\n".join(conf) + "\n")


def env_prefix(work_dir: Path) -> list[str]:
    """``env`` argv that points the AWS SDK at the files in ``work_dir`` and drops the
    inherited AWS variables that would win over them."""
    argv = ["/usr/bin/env"]
    for name in OVERRIDDEN_ENV:
        argv += ["-u", name]
    argv.append(f"AWS_SHARED_CREDENTIALS_FILE={work_dir / CREDENTIALS_FILE}")
    argv.append(f"AWS_CONFIG_FILE={work_dir / CONFIG_FILE}")
    return argv
