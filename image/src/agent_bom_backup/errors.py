"""Exit codes and the exceptions that carry them.

One table, documented in docs/configuration.md#exit-codes (generated from it by
scripts/gen_docs.py; a test keeps the two in sync).
click itself exits 2 on usage errors.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1  # a bug: unexpected exception (traceback at debug level)
    USAGE = 2  # click: bad option or argument
    CONFIG = 3  # invalid configuration or option combination
    PREFLIGHT = 4  # database/bucket unreachable, wrong region, RLS would filter, no fitting client
    DUMP = 5  # pg_dump / pg_dumpall failed
    STORAGE = 6  # S3 error during upload, download, list or delete
    VERIFY = 7  # checksum, size, manifest, row count or fingerprint mismatch; incomplete backup
    REFUSED = 8  # a safety refusal: non-empty target, live source without approval, missing roles, id taken, encryption unconfirmed
    RESTORE = 9  # a restore step failed before the target was changed (target untouched)
    STALE = 10  # check: newest complete backup too old, or none
    CHANGED = 11  # restore: failed after changing the target (the report says what and how to go back)
    INCOMPLETE = 12  # restore: data verified, but items the backup recorded were not restored (listed with statements)
    INTERRUPTED = 143  # SIGTERM/SIGINT: upload aborted, nothing left behind


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "unexpected internal error (a bug; rerun with --log-level debug for the traceback)",
    ExitCode.USAGE: "bad command-line usage (unknown option, missing argument)",
    ExitCode.CONFIG: "invalid configuration or option combination (e.g. no bucket, unknown compression)",
    ExitCode.PREFLIGHT: "a precondition failed before any work: database or bucket unreachable, wrong region, "
    "no fitting pg_dump/pg_restore, row-level security would filter the backup, scratch disk too small",
    ExitCode.DUMP: "pg_dump or pg_dumpall failed (upload aborted, no object left)",
    ExitCode.STORAGE: "S3 error while uploading, downloading, listing or deleting (multipart upload aborted)",
    ExitCode.VERIFY: "verification failed: checksum/size mismatch, missing or foreign manifest, restored rows or "
    "schema differ from the manifest, no complete backup; a backup under --enable-row-security whose policies hid "
    "rows (no manifest written)",
    ExitCode.REFUSED: "a safety refusal, nothing changed: a table the backup role may not read (backup), "
    "non-empty target without --clean/--confirm-target, live "
    "source without --approval, missing roles or extensions, owners the restore role cannot act as, "
    "`restore latest` whose newest backup is unreadable or archived (--allow-older), backup id taken by another "
    "run on a store that ignores If-None-Match (or no free second within a minute), requested encryption not "
    "confirmed by the store",
    ExitCode.RESTORE: "a restore step failed before the target database was changed (creating roles, reading the "
    "archive's table of contents, the wipe's transaction): the target database is untouched",
    ExitCode.STALE: "check: the newest complete backup is older than --max-age, or there is none",
    ExitCode.CHANGED: "restore failed after changing the target (pg_restore error or signal, verification "
    "mismatch, lost connection): the message names the cause, what was changed and how to go back (the safety "
    "dump's pg_restore command, or restore again with --clean)",
    ExitCode.INCOMPLETE: "restore: the data is verified, but items the backup recorded (database settings or "
    "privileges, role settings, memberships) could not be restored by the restore role; the report lists each "
    "under \"not restored\" with the statement a platform admin runs",
    ExitCode.INTERRUPTED: "stopped by SIGTERM/SIGINT (e.g. activeDeadlineSeconds); multipart upload aborted",
}


class BackupError(Exception):
    """An expected failure: one clear line for the operator and an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(BackupError):
    exit_code = ExitCode.CONFIG


class PreflightError(BackupError):
    exit_code = ExitCode.PREFLIGHT


class DumpError(BackupError):
    exit_code = ExitCode.DUMP


class StorageError(BackupError):
    exit_code = ExitCode.STORAGE


class VerifyError(BackupError):
    exit_code = ExitCode.VERIFY


class RefusedError(BackupError):
    exit_code = ExitCode.REFUSED


class RestoreError(BackupError):
    exit_code = ExitCode.RESTORE


class IncompleteError(BackupError):
    """A restore whose data verified but that lists items it could not restore."""

    exit_code = ExitCode.INCOMPLETE


class ChangedError(BackupError):
    """A restore failed after it changed the target: wraps the underlying failure."""

    exit_code = ExitCode.CHANGED

    def __init__(self, cause: BackupError, *, changes: list[str], recovery: str) -> None:
        super().__init__(
            f"failed after changing the target: {cause}; changed: {'; '.join(changes)}; to go back: {recovery}"
        )
        self.cause = cause
        self.changes = list(changes)
        self.recovery = recovery


class Interrupted(BackupError):
    exit_code = ExitCode.INTERRUPTED
