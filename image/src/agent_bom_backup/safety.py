"""The safety backup in the bucket: a backup like any other, of the database ``--clean``
replaces, taken by the backup code path (custom-format dump, roles object, manifest) under
``<prefix>/safety/``.

Going back is then ``agent-bom-backup restore s3://BUCKET/<prefix>/safety/agent-bom-ID.dump
--clean --confirm-target DB``: the same plan, wipe, phased pg_restore and verification
as any restore, so it works for the role that restored (a managed admin included) and
leaves nothing of the failed restore behind. When the restored backup was encrypted
(client-side age), the safety backup is encrypted to the same recipients (its dump and
roles objects are age files, its manifest records the encryption), so going back takes
``--identity FILE`` too. It outlives the process (the in-cluster
restore's pod is gone after the Job). The catalog lists only the backups directly under
the prefix (``Delimiter=/``), so ``latest`` and prune's keep-count never see these;
their expiry is a lifecycle rule on ``<prefix>/safety/`` (docs/runbook.md).

The target is quiet (CONNECT revoked, sessions.py) while this runs, so a role that does
not see every row (a managed admin without BYPASSRLS) first proves, inside one
transaction with FORCE lifted and rolled back, that the policies hide no row from it;
the backup it then takes under row security is complete.
"""

from __future__ import annotations

from dataclasses import replace

from .backup import BackupConfig, run_backup
from .pgconn import ConnInfo
from .storage import StorageConfig

#: the sub-prefix of safety backups, under the backup prefix
SAFETY_PREFIX = "safety"


def safety_storage(storage: StorageConfig, backup_prefix: str) -> StorageConfig:
    """The storage configuration of the safety backups beside the backup restored."""
    return replace(storage, prefix=f"{backup_prefix.strip('/')}/{SAFETY_PREFIX}")


def backup_to_bucket(target: ConnInfo, storage: StorageConfig, *, sees_every_row: bool, lock_wait_timeout_s: int,
                     pg_bin_dirs: tuple[str, ...], pg_bin_dirs_only: bool, encrypt_to: tuple[str, ...] = ()) -> str:
    """Back up the target into ``storage`` with the backup code path, encrypted to the
    age recipients ``encrypt_to`` when there are any; its dump's URI."""
    manifest = run_backup(BackupConfig(
        database_url=target.url(), storage=storage, lock_wait_timeout_s=lock_wait_timeout_s,
        enable_row_security=not sees_every_row, pg_bin_dirs=pg_bin_dirs, pg_bin_dirs_only=pg_bin_dirs_only,
        encrypt_to=encrypt_to,
    ))
    return storage.uri(manifest.dump.key)


def go_back_command(uri: str, database: str, approval: str | None, identity_file: str | None = None,
                    encrypted: bool = False) -> str:
    """The restore that puts the safety backup back (the target URL in the environment);
    an encrypted one needs the identity that opened the backup restored."""
    identity = f" --identity {identity_file or '<IDENTITY FILE>'}" if encrypted else ""
    return (f"AGENT_BOM_RESTORE_POSTGRES_URL=<target URL> agent-bom-backup restore {uri} --clean "
            f"--confirm-target {database} --approval {approval or '<INCIDENT-ID>'}{identity}")
