"""Exit codes and the exceptions that carry them.

One table, documented in docs/exit-codes.md (a test keeps the two in sync).
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
    REFUSED = 8  # a safety refusal: non-empty target, live source without approval, missing roles
    RESTORE = 9  # pg_restore failed
    STALE = 10  # check: newest complete backup too old, or none
    INTERRUPTED = 143  # SIGTERM/SIGINT: upload aborted, nothing left behind


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


class StaleBackupError(BackupError):
    exit_code = ExitCode.STALE


class Interrupted(BackupError):
    exit_code = ExitCode.INTERRUPTED
