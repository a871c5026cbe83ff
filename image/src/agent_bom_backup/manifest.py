"""The manifest: a JSON object written next to the dump *after* it, as the commit marker.

A dump without its manifest is incomplete by definition. Object names:

    <prefix>/agent-bom-YYYYMMDDTHHMMSSZ.dump            the pg_dump custom-format archive
    <prefix>/agent-bom-YYYYMMDDTHHMMSSZ.roles.sql       pg_dumpall --globals-only --no-role-passwords
    <prefix>/agent-bom-YYYYMMDDTHHMMSSZ.manifest.json   this manifest (written last)
    <prefix>/agent-bom-YYYYMMDDTHHMMSSZ.claim           written first, conditionally: takes the
                                                        backup id so two runs never share it
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, TypeVar

from .errors import VerifyError

FORMAT = "agent-bom-backup-manifest"
#: 2 added the source's sequence state (``sequences``) and the settings the snapshot was
#: inspected with (``inspection_settings``); readers accept every version up to this one
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
BACKUP_NAME_PREFIX = "agent-bom-"
DUMP_SUFFIX = ".dump"
ROLES_SUFFIX = ".roles.sql"
MANIFEST_SUFFIX = ".manifest.json"
CLAIM_SUFFIX = ".claim"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_BACKUP_NAME = re.compile(r"^agent-bom-(\d{8}T\d{6}Z)$")


def backup_id_for(moment: datetime) -> str:
    return BACKUP_NAME_PREFIX + moment.astimezone(timezone.utc).strftime(_STAMP_FORMAT)


def backup_time(backup_id: str) -> datetime | None:
    match = _BACKUP_NAME.match(backup_id)
    if not match:
        return None
    return datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=timezone.utc)


def join_key(prefix: str, name: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


class _ObjectKey:
    """``keys.dump``, ``keys.roles``, ...: the key of one of a backup's objects."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __get__(self, keys: BackupKeys, owner: type | None = None) -> str:
        return join_key(keys.prefix, keys.backup_id + self.suffix)


@dataclass(frozen=True)
class BackupKeys:
    """The object keys of one backup: dump, roles, manifest, and the claim that took its id."""

    prefix: str
    backup_id: str

    dump = _ObjectKey(DUMP_SUFFIX)
    roles = _ObjectKey(ROLES_SUFFIX)
    manifest = _ObjectKey(MANIFEST_SUFFIX)
    claim = _ObjectKey(CLAIM_SUFFIX)

    @property
    def id_prefix(self) -> str:
        """What every object key of this backup starts with (one listing finds them all)."""
        return join_key(self.prefix, self.backup_id)

    @classmethod
    def from_any_key(cls, key: str) -> "BackupKeys | None":
        """The backup a dump, roles, manifest or claim key belongs to (None if it is none of ours)."""
        prefix, _, name = key.rpartition("/")
        for suffix in (DUMP_SUFFIX, ROLES_SUFFIX, MANIFEST_SUFFIX, CLAIM_SUFFIX):
            if name.endswith(suffix):
                backup_id = name[: -len(suffix)]
                if _BACKUP_NAME.match(backup_id):
                    return cls(prefix=prefix, backup_id=backup_id)
        return None


@dataclass
class ObjectRecord:
    """An object as stored: ``size`` and ``sha256`` are the stored bytes' (the ciphertext's
    when the backup is encrypted: what ``verify`` checks without a key)."""

    key: str
    size: int
    sha256: str
    parts: int = 1
    #: encrypted backups only: the decrypted object's size and SHA-256 (what the restore
    #: checks after decryption, before pg_restore reads a byte)
    plaintext_size: int | None = None
    plaintext_sha256: str | None = None


@dataclass
class EncryptionRecord:
    """Client-side encryption of the dump and roles objects (None: not encrypted). Public
    metadata only: the recipients are public keys; no secret is ever in a manifest."""

    format: str  # "age": each object is a binary age file (age-encryption.org/v1)
    recipients: list[str]


@dataclass
class TableRecord:
    schema: str
    name: str
    rows: int
    tenants: dict[str, int] | None = None


@dataclass
class SourceRecord:
    database: str
    host: str
    server_version: str
    server_major: int
    system_identifier: str | None
    is_standby: bool
    replay_timestamp: str | None
    database_size: int
    backup_role: str


@dataclass
class ClientRecord:
    pg_dump_version: str
    pg_dump_major: int
    compression: str
    compression_note: str
    row_security: bool


@dataclass
class SequenceRecord:
    """A sequence's state in the source, read in the dump's snapshot before pg_dump starts
    (sequences are not transactional: pg_dump reads them later, so the archive holds this
    state or one further along)."""

    schema: str
    name: str
    increment: int
    last_value: int
    is_called: bool
    owned_by: str | None = None  # schema.table.column

    @property
    def next_value(self) -> int:
        """The value the next nextval() returns (ignoring cycling)."""
        return self.last_value + self.increment if self.is_called else self.last_value


R = TypeVar("R")


def _record(cls: type[R], data: Any) -> R:
    """``cls(**data)`` ignoring fields this release does not know (written by a newer one)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in dict(data).items() if k in known})


@dataclass
class Manifest:
    backup_id: str
    started_at: str
    finished_at: str
    snapshot_time: str
    dump: ObjectRecord
    roles: ObjectRecord | None
    source: SourceRecord
    client: ClientRecord
    tenant_column: str
    tables: list[TableRecord]
    schema_fingerprint: dict[str, list[str]]
    schema_fingerprint_sha256: str
    extensions: dict[str, str]
    referenced_roles: dict[str, list[str]]  # owners / grantees / policies -> role names
    storage: dict[str, Any] = field(default_factory=dict)
    tool_version: str = ""
    #: None in format 1 (not recorded): verification falls back to ``>= max(column)``
    sequences: list[SequenceRecord] | None = None
    #: the session settings the snapshot was inspected with (format 1: PostgreSQL's defaults)
    inspection_settings: dict[str, str] = field(default_factory=dict)
    #: client-side encryption (age); None: the objects are plaintext (formats 1 and 2 always)
    encryption: EncryptionRecord | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def data_loss_reference(self) -> str:
        """When the backed-up data was current: replay time on a standby, else the snapshot."""
        return self.source.replay_timestamp or self.snapshot_time

    def roles_needed(self, *, owners: bool = True, privileges: bool = True) -> list[str]:
        """Roles the target must have for the restore to reproduce what was dumped."""
        needed = set(self.referenced_roles.get("policies", []))
        if owners:
            needed.update(self.referenced_roles.get("owners", []))
        if privileges:
            needed.update(self.referenced_roles.get("grantees", []))
        return sorted(needed)

    def tenant_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for table in self.tables:
            for tenant, rows in (table.tenants or {}).items():
                totals[tenant] = totals.get(tenant, 0) + rows
        return dict(sorted(totals.items()))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, key: str = "manifest") -> "Manifest":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise VerifyError(f"manifest {key} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise VerifyError(f"{key} is not an agent-bom backup manifest")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(str(v) for v in READABLE_VERSIONS)
            raise VerifyError(
                f"manifest {key} has format version {version}; this tool reads versions {readable}",
                hint="use the agent-bom-backup release that wrote it, or a newer one",
            )
        try:
            sequences = data.get("sequences") if version >= 2 else None
            return cls(
                backup_id=data["backup_id"],
                started_at=data["started_at"],
                finished_at=data["finished_at"],
                snapshot_time=data["snapshot_time"],
                dump=_record(ObjectRecord, data["dump"]),
                roles=_record(ObjectRecord, data["roles"]) if data.get("roles") else None,
                source=_record(SourceRecord, data["source"]),
                client=_record(ClientRecord, data["client"]),
                tenant_column=data["tenant_column"],
                tables=[_record(TableRecord, t) for t in data["tables"]],
                schema_fingerprint=data["schema_fingerprint"],
                schema_fingerprint_sha256=data["schema_fingerprint_sha256"],
                extensions=data["extensions"],
                referenced_roles=data["referenced_roles"],
                storage=data.get("storage", {}),
                tool_version=data.get("tool_version", ""),
                sequences=[_record(SequenceRecord, s) for s in sequences] if sequences is not None else None,
                inspection_settings=dict(data.get("inspection_settings") or {}),
                encryption=_record(EncryptionRecord, data["encryption"]) if data.get("encryption") else None,
                format_version=int(version),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VerifyError(f"manifest {key} is missing or has a malformed field: {exc}") from None
