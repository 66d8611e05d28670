"""envFile -> AWS shared credentials/config files (no tools needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from stolon_backup_barman.credentials import aws_files, env_prefix, load_env_file

from stolon.backup.base import BackupConfigError
from stolon.postgres.runas import OSUser

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalr/K7MDENG+bPxRfi"}


@pytest.mark.parametrize(
    ("values", "credentials", "config"),
    [
        (KEYS, ["aws_access_key_id = AKIDEXAMPLE", "aws_secret_access_key = wJalr/K7MDENG+bPxRfi"], []),
        (
            {**KEYS, "AWS_DEFAULT_REGION": "eu-west-3"},
            ["aws_access_key_id = AKIDEXAMPLE"],
            ["region = eu-west-3"],
        ),
        ({**KEYS, "AWS_REGION": "us-east-2"}, [], ["region = us-east-2"]),
        ({**KEYS, "AWS_SESSION_TOKEN": "tok%en"}, ["aws_session_token = tok%en"], []),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, [], ["region = eu-west-1"]),
        ({}, [], []),
    ],
)
def test_files_from_values(values: dict[str, str], credentials: list[str], config: list[str]) -> None:
    files = aws_files(values, "/etc/s3.env")
    cred_lines = files.credentials.splitlines()
    conf_lines = files.config.splitlines()
    assert cred_lines[0] == "[default]" and conf_lines[0] == "[default]"
    for line in credentials:
        assert line in cred_lines
    for line in config:
        assert line in conf_lines
    assert "AKIDEXAMPLE" not in repr(files)
    if "AWS_SECRET_ACCESS_KEY" in values:
        assert values["AWS_SECRET_ACCESS_KEY"] in files.secrets
    if "AWS_SESSION_TOKEN" in values:
        assert values["AWS_SESSION_TOKEN"] in files.secrets


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"AWS_ACCESS_KEY_ID": "a"}, "but not AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": "s"}, "but not AWS_ACCESS_KEY_ID"),
        ({"AWS_SESSION_TOKEN": "t"}, "AWS_SESSION_TOKEN without"),
        ({**KEYS, "PGPASSWORD": "x"}, "sets PGPASSWORD, which the barman method does not use"),
        ({**KEYS, "AWS_DEFAULT_REGION": ""}, "AWS_DEFAULT_REGION is empty"),
    ],
)
def test_refused_values_name_the_variable_not_the_value(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(BackupConfigError) as e:
        aws_files(values, "/etc/s3.env")
    message = str(e.value)
    assert message.startswith("backup.settings.envFile: ")
    assert fragment in message
    assert "\n" not in message
    for secret in ("wJalr/K7MDENG+bPxRfi", "AKIDEXAMPLE"):
        assert secret not in message


def test_env_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "s3.env"
    f.write_text("export AWS_ACCESS_KEY_ID=AKIDEXAMPLE\nAWS_SECRET_ACCESS_KEY='wJalr/K7MDENG+bPxRfi'\n# c\n")
    os.chmod(f, 0o644)
    with pytest.raises(BackupConfigError) as e:
        load_env_file(f, OSUser.current())
    assert "chmod 600" in str(e.value) and "backup.settings.envFile" in str(e.value)
    os.chmod(f, 0o600)
    files = load_env_file(f, OSUser.current())
    assert "aws_secret_access_key = wJalr/K7MDENG+bPxRfi" in files.credentials.splitlines()


def test_missing_env_file(tmp_path: Path) -> None:
    with pytest.raises(BackupConfigError) as e:
        load_env_file(tmp_path / "nope.env", OSUser.current())
    assert "backup.settings.envFile" in str(e.value) and "cannot read" in str(e.value)


def test_env_prefix_holds_only_paths_and_unsets_inherited_aws_variables() -> None:
    argv = env_prefix(Path("/var/lib/stolon/backup/archive"))
    assert argv[0] == "/usr/bin/env"
    assert argv[-2:] == [
        "AWS_SHARED_CREDENTIALS_FILE=/var/lib/stolon/backup/archive/aws-credentials",
        "AWS_CONFIG_FILE=/var/lib/stolon/backup/archive/aws-config",
    ]
    unset = [argv[i + 1] for i, a in enumerate(argv) if a == "-u"]
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
    ):
        assert name in unset
