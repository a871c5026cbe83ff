"""What a restore is asked to do (:class:`RestoreConfig`) and the constants its phases share.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field

from ..catalog import BackupSource
from ..storage import DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD, StorageConfig

TRANSACTION_TIMEOUT_ERROR = 'unrecognized configuration parameter "transaction_timeout"'
TRANSACTION_TIMEOUT_QUERY_ERROR = f"could not execute query: ERROR:  {TRANSACTION_TIMEOUT_ERROR}"
TRANSACTION_TIMEOUT_STATEMENT = "Command was: SET transaction_timeout = 0;"
SCRATCH_HEADROOM = 16 * 1024 * 1024
#: seconds between "downloading" and "restoring" progress lines
DOWNLOAD_PROGRESS_INTERVAL_S = 5
RESTORE_PROGRESS_INTERVAL_S = 10


@dataclass(frozen=True)
class RestoreConfig:
    source: str
    target_url: str = field(repr=False)
    storage: StorageConfig
    live_source_url: str | None = field(default=None, repr=False)
    clean: bool = False
    confirm_target: str | None = None
    approval: str | None = None
    operator: str | None = None
    create_missing_roles: bool = False
    no_owner: bool = False
    no_privileges: bool = False
    #: parallel pg_restore jobs; None: the CPUs this process may use (resources.cpu_count)
    jobs: int | None = None
    #: objects at least this large download in parallel ranges; None: one stream
    parallel_download_threshold: int | None = DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD
    dry_run: bool = False
    safety_backup: bool = True
    safety_backup_dir: str | None = None
    scratch_dir: str | None = None
    pg_bin_dirs: tuple[str, ...] = ()
    pg_bin_dirs_only: bool = False
    lock_wait_timeout_s: int = 300
    allow_older: bool = False
    #: end other sessions on the target (REVOKE CONNECT, pg_terminate_backend) instead of refusing
    terminate_sessions: bool = False
    #: the safety backup goes to the bucket under <prefix>/safety/ (safety.py), not a local file
    safety_backup_to_bucket: bool = False
    report_path: str | None = None
    purpose: str = "restore"  # or "verify --deep"
    #: age identity file for a backup encrypted to age recipients (agecrypt)
    identity_file: str | None = None


def source_storage(config: StorageConfig, source: str) -> StorageConfig:
    """The storage a source names (:class:`catalog.BackupSource`, which the restore parses once)."""
    return BackupSource.parse(source, config).storage


def _scratch(config: RestoreConfig) -> bool:
    """``verify --deep`` without a superuser (``--no-owner --no-privileges``): the
    database's own state is neither applied nor compared (a requested omission, not
    "not restored"). With a superuser it restores, and compares, everything."""
    return config.purpose != "restore" and (config.no_owner or config.no_privileges)


def default_operator() -> str:
    try:
        return os.environ.get("AGENT_BOM_RESTORE_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
