"""PostgreSQL control layer driven by the keeper: binaries, data directory, process,
generated configuration, state queries, replication tooling.

See ``stolon/postgres/README.md`` for the design choices that differ from Go Stolon.
"""

from stolon.postgres.binaries import PgBinaries, PgVersion
from stolon.postgres.credentials import AuthMethod, Credentials
from stolon.postgres.datadir import LocalRole
from stolon.postgres.errors import (
    CommandError,
    CommandTimeoutError,
    DataDirError,
    InstanceRunningError,
    NotReadyError,
    PostgresError,
    QueryError,
    QueryTimeoutError,
    StartError,
    StopError,
)
from stolon.postgres.hba import SUReplAccessMode, build_hba
from stolon.postgres.instance import Instance, InstanceConfig
from stolon.postgres.parameters import MANAGED_PARAMETERS, ParameterInputs, build_parameters
from stolon.postgres.recovery import (
    NO_RECOVERY,
    ArchiveRecoverySettings,
    RecoveryConfig,
    RecoveryMode,
    RecoveryTargetSettings,
    StandbySettings,
    build_recovery_config,
    internal_standby_config,
)
from stolon.postgres.replication import SourceServer, basebackup, rewind
from stolon.postgres.runas import OSUser, resolve_pg_os_user

__all__ = [
    "MANAGED_PARAMETERS",
    "NO_RECOVERY",
    "ArchiveRecoverySettings",
    "AuthMethod",
    "CommandError",
    "CommandTimeoutError",
    "Credentials",
    "DataDirError",
    "Instance",
    "InstanceConfig",
    "InstanceRunningError",
    "LocalRole",
    "NotReadyError",
    "OSUser",
    "ParameterInputs",
    "PgBinaries",
    "PgVersion",
    "PostgresError",
    "QueryError",
    "QueryTimeoutError",
    "RecoveryConfig",
    "RecoveryMode",
    "RecoveryTargetSettings",
    "SUReplAccessMode",
    "SourceServer",
    "StandbySettings",
    "StartError",
    "StopError",
    "basebackup",
    "build_hba",
    "build_parameters",
    "build_recovery_config",
    "internal_standby_config",
    "resolve_pg_os_user",
    "rewind",
]
