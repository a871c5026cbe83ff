"""Phase 1, **plan** (read-only): every check that needs no change, in order of cost, and
the typed :class:`RestorePlan` ``--dry-run`` prints and the report records.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import agecrypt, dbstate, pgroles
from ..catalog import ARCHIVED_CLASSES, BackupSource, BackupStatus, resolve
from ..errors import ConfigError, PreflightError, RefusedError, StorageError, VerifyError
from ..log import event, get_logger
from ..manifest import BackupKeys, Manifest
from ..pgclients import PgClient, discover, select_restore_client
from ..pgconn import ConnInfo
from ..resources import cpu_count
from ..roles import Grantor, RolePlan, RoleScope, parse_globals, plan_roles
from ..rolesfile import reached_roles, RolesFile
from ..safety import safety_storage
from ..sessions import check_sessions
from ..storage import Storage
from .config import (SCRATCH_HEADROOM, TRANSACTION_TIMEOUT_ERROR, RestoreConfig, _scratch,
                     default_operator)
from .privileges import _check_extensions, _check_privileges, _owner_access
from .target import _inspect_target, _refuse_unsafe_target, TargetInfo


@dataclass
class RestorePlan:
    """Everything the restore will do, decided before it changes anything."""

    backup_id: str
    backup_uri: str
    manifest_format: int
    dump_key: str
    dump_size: int
    dump_sha256: str
    target: str
    target_database: str
    target_server_version: str
    target_objects: int
    restore_role: str
    restore_role_kind: str
    wipe: bool
    safety_backup_dir: str | None
    pg_restore_version: str
    jobs: int
    no_owner: bool
    no_privileges: bool
    phased: bool
    tolerate_transaction_timeout: bool
    roles_to_create: list[str]
    role_attributes_dropped: dict[str, list[str]]
    memberships_to_grant: list[str]
    owners: dict[str, str]  # owner role -> how the restore role acts as it
    rls_counting: str
    sequence_check: str
    tables: int
    tenants: int
    scratch_dir: str
    scratch_free_bytes: int
    skipped_backups: list[str] = field(default_factory=list)
    #: age recipients of a client-encrypted backup (the identity was proven in the plan)
    encrypted_to: list[str] = field(default_factory=list)
    #: format 3: the recorded owner the target database is given before pg_restore
    database_owner: str | None = None
    #: owners of objects in public given CREATE on it (the database's owner could not be set)
    public_grants: list[str] = field(default_factory=list)
    database_state: str = ""
    #: other sessions on the target when planned, and whether CONNECT is revoked for the change
    sessions: list[str] = field(default_factory=list)
    close_door: bool = False
    #: what the archive needs from the target (archivecheck.py), known once it was read
    archive_steps: list[str] = field(default_factory=list)
    no_tablespaces: bool = False

    def steps(self) -> list[str]:
        steps = [f"download {self.dump_key} ({self.dump_size} bytes) and verify SHA-256 {self.dump_sha256[:16]}...",
                 f"read the archive's table of contents with pg_restore {self.pg_restore_version} --list"]
        if self.encrypted_to:
            steps.insert(1, "decrypt it with the age identity (it opened the roles object; recipients "
                         f"{', '.join(self.encrypted_to)}) into the scratch directory and verify the plaintext SHA-256")
        steps += self.archive_steps
        if self.roles_to_create:
            steps.append(f"create missing roles from the stored roles object: {', '.join(self.roles_to_create)}")
        for role, dropped in self.role_attributes_dropped.items():
            steps.append(f"create role {role} without {', '.join(dropped)} (the restore role may not grant them)")
        if self.memberships_to_grant:
            steps.append(f"grant {self.restore_role} membership in {', '.join(self.memberships_to_grant)} "
                         "(to set the owners of restored objects)")
        if self.close_door:
            steps.append(f"revoke CONNECT on {self.target_database} from every role but {self.restore_role}"
                         + (f", end {len(self.sessions)} other session(s): {'; '.join(self.sessions)}"
                            if self.sessions else "") + " (granted back when the restore ends)")
        if self.wipe:
            if self.safety_backup_dir:
                steps.append(f"take a safety pg_dump of {self.target_database} into {self.safety_backup_dir}")
            steps.append(f"drop every user schema in {self.target_database} ({self.target_objects} objects, "
                         "with large objects, event triggers and publications)")
        if self.database_owner:
            steps.append(f"make {self.database_owner} the owner of database {self.target_database} (as on the source)")
        if self.public_grants:
            steps.append(f"grant CREATE on schema public to {', '.join(self.public_grants)} (owners of objects in it; "
                         "the database's recorded owner cannot be set)")
        flags = " ".join(f for f, on in (("--no-owner", self.no_owner), ("--no-privileges", self.no_privileges)) if on)
        passes = (" in three passes (schemas and their privileges; objects and data; row-level security on)"
                  if self.phased else "")
        steps.append(f"pg_restore {self.pg_restore_version} --jobs={self.jobs} {flags}".rstrip() + passes)
        if self.tolerate_transaction_timeout:
            steps.append(f"tolerate only '{TRANSACTION_TIMEOUT_ERROR}' from its SET transaction_timeout = 0 "
                         "(a newer pg_restore into an older server)")
        if self.database_state:
            steps.append(self.database_state)
        steps.append(f"verify {self.tables} tables, {self.tenants} tenants and the schema fingerprint "
                     f"(row-level security: {self.rls_counting}; sequences: {self.sequence_check})")
        return steps

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = self.steps()
        return data


@dataclass
class FoundBackup:
    """The backup the source names, resolved through the catalog."""

    storage: Storage
    keys: BackupKeys
    manifest: Manifest
    #: newer backups --allow-older passed over
    skipped: list[BackupStatus]


@dataclass
class Findings:
    """What planning has found so far, in the order it finds it. A refusal leaves the
    findings up to that point; the report is assembled from them (reporting.py), never
    written into while planning."""

    #: the scratch space checked, then the backup resolved (its dump object checked next)
    scratch_parent: Path | None = None
    backup: FoundBackup | None = None
    #: the target inspected (refusals of an unsafe target follow)
    target: TargetInfo | None = None
    #: the roles to create and grant, when any
    role_plan: RolePlan | None = None
    #: the pg_restore chosen (the scratch space is checked after it)
    client: PgClient | None = None
    plan: RestorePlan | None = None


@dataclass
class _Decisions:
    """What the plan decided, besides roles: the change to the target, the scratch space."""

    wipe: bool
    close_door: bool
    safety_backup_dir: str | None
    #: the recorded owner the target database is given (None: not settable, or none)
    database_owner: str | None
    public_grants: list[str]
    scratch_free_bytes: int
    #: a scratch restore (verify --deep without a superuser): database-level state left out
    scratch: bool


@dataclass
class _Roles:
    """The plan's decisions on roles: what to create and grant, how each owner is acted as."""

    plan: RolePlan | None
    stored: RolesFile | None
    self_grants: list[str]
    how: dict[str, str]


def plan_restore(config: RestoreConfig, found: Findings) -> RestorePlan:
    """Every check that needs no change, in order of cost; the typed plan. Raises the
    refusal or failure of the first check that fails; ``found`` holds what was found."""
    conn_info = ConnInfo.parse(config.target_url, what="restore target URL")
    found.scratch_parent = _scratch_parent(config)
    backup = found.backup = _find_backup(config, BackupSource.parse(config.source, config.storage))
    manifest = backup.manifest
    _check_dump_object(backup.storage, backup.keys, manifest)
    agecrypt.require_identity(backup.storage.get_bytes, manifest, config.identity_file)

    scratch = _scratch(config)
    database_owner = _recorded_owner(config, manifest) if not scratch else None
    owners = [] if config.no_owner else list(manifest.referenced_roles.get("owners", []))
    if database_owner is not None and database_owner not in owners:
        owners.append(database_owner)
    target = found.target = _inspect_target(config, conn_info, owners)
    wipe, close_door = _check_target(config, manifest, target)
    roles = _decide_roles(config, backup, target, owners, scratch)
    found.role_plan = roles.plan
    owner_settable = database_owner is not None and (target.role.superuser or (
        target.role.database_owner and target.role.createdb))
    public_grants = _check_privileges(manifest, target, roles.stored, wipe, config,
                                      database_owner if owner_settable else None)
    _check_extensions(manifest, target, wipe)
    found.client = select_restore_client(discover(config.pg_bin_dirs, config.pg_bin_dirs_only),
                                         manifest.client.pg_dump_major, target.major, manifest.client.compression,
                                         conn_info.sslmode)
    decided = _Decisions(
        wipe=wipe, close_door=close_door,
        safety_backup_dir=(_safety_location(config, backup.storage, backup.keys)
                           if wipe and config.safety_backup else None),
        database_owner=database_owner if owner_settable else None, public_grants=public_grants,
        scratch_free_bytes=_check_scratch_space(found.scratch_parent, manifest), scratch=scratch)
    found.plan = _make_plan(config, found, roles, decided)
    return found.plan


def _find_backup(config: RestoreConfig, source: BackupSource) -> FoundBackup:
    storage = Storage(source.storage)
    resolved = resolve(storage, source, allow_older=config.allow_older)
    found = FoundBackup(storage, resolved.keys, resolved.manifest, resolved.skipped)
    event(get_logger(), "restoring backup", uri=storage.config.uri(found.keys.dump),
          operator=config.operator or default_operator())
    return found


def _recorded_owner(config: RestoreConfig, manifest: Manifest) -> str | None:
    """The database owner format 3 recorded, when the restore gives it (not the source's
    administrator, not with --no-owner)."""
    record = manifest.database
    if record is None or config.no_owner or record.owner == dbstate.ADMINISTRATOR:
        return None
    return record.owner


def _check_target(config: RestoreConfig, manifest: Manifest, target: TargetInfo) -> tuple[bool, bool]:
    """Refusals of an unsafe target and of a change the restore role may not make; whether
    the restore wipes the target and whether it closes the door (revokes CONNECT)."""
    _refuse_unsafe_target(config, manifest, target)
    check_sessions(target.sessions, database=target.info.database, restore_role=target.role.name,
                   terminate=config.terminate_sessions)
    wipe = config.clean and bool(target.objects)
    close_door = wipe or config.terminate_sessions
    if close_door and not (target.role.superuser or target.role.database_owner):
        raise RefusedError(
            f"restore role {target.role.name} may not revoke CONNECT on database {target.info.database} "
            f"(owned by {target.role.database_owner_name}): other sessions could write while it is replaced",
            hint="restore as the database's owner (or a member of it) or a superuser",
        )
    if wipe and target.undroppable:
        raise RefusedError(
            f"--clean must drop what restore role {target.role.name} may not: {', '.join(target.undroppable[:5])}"
            + (" ..." if len(target.undroppable) > 5 else ""),
            hint="restore into a new database, or have its owner (or a superuser) drop these first",
        )
    return wipe, close_door


def _decide_roles(config: RestoreConfig, backup: FoundBackup, target: TargetInfo, owners: list[str],
                  scratch: bool) -> _Roles:
    manifest = backup.manifest
    roles_file = _roles_file(backup.storage, manifest, config.identity_file)
    needed = _needed_roles(manifest, roles_file, config, scratch)
    missing = sorted(needed - target.roles)
    stored = _stored_roles(manifest, target, missing, config, roles_file)
    grantor = Grantor(target.role.name, target.major, target.role.superuser, target.role.createrole,
                      target.role.createdb, target.role.bypassrls, target.role.replication)
    self_grants, how = _owner_access(target, owners, missing, grantor)
    role_plan = None
    if stored is not None or missing or self_grants:
        scope = RoleScope(reached=needed if not (config.no_privileges or scratch) else set(),
                          source_database=manifest.source.database, target_database=target.info.database)
        role_plan = plan_roles(missing, stored or {}, grantor, target.roles, self_grants, scope)
    return _Roles(role_plan, stored, self_grants, how)


def _check_scratch_space(scratch_parent: Path, manifest: Manifest) -> int:
    free = scratch_free_bytes(scratch_parent)
    needed = manifest.dump.size + (manifest.dump.plaintext_size or 0)  # an encrypted dump: both, while decrypting
    if free < needed + SCRATCH_HEADROOM:
        raise PreflightError(
            f"scratch directory {scratch_parent} has {free} bytes free; the dump needs {needed} "
            "plus 16 MiB of headroom",
            hint="point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at a larger volume",
        )
    return free


def _make_plan(config: RestoreConfig, found: Findings, roles: _Roles, decided: _Decisions) -> RestorePlan:
    """The plan from what was found and decided."""
    assert found.backup is not None and found.target is not None and found.client is not None
    manifest, target, client = found.backup.manifest, found.target, found.client
    forced = [line for line in manifest.schema_fingerprint.get("row_security", []) if line.endswith("forced=true")]
    return RestorePlan(
        backup_id=found.backup.keys.backup_id,
        backup_uri=found.backup.storage.config.uri(found.backup.keys.dump),
        manifest_format=manifest.format_version,
        dump_key=manifest.dump.key,
        dump_size=manifest.dump.size,
        dump_sha256=manifest.dump.sha256,
        target=target.conn_info.display(),
        target_database=target.info.database,
        target_server_version=target.info.version,
        target_objects=len(target.objects),
        restore_role=target.role.name,
        restore_role_kind=_role_kind(target.role),
        wipe=decided.wipe,
        safety_backup_dir=decided.safety_backup_dir,
        pg_restore_version=client.version,
        jobs=max(1, config.jobs or cpu_count()),
        no_owner=config.no_owner,
        no_privileges=config.no_privileges,
        phased=not target.role.superuser,
        tolerate_transaction_timeout=client.major >= 17 and target.major < 17,
        roles_to_create=[c.name for c in roles.plan.create] if roles.plan else [],
        role_attributes_dropped=roles.plan.dropped if roles.plan else {},
        memberships_to_grant=list(roles.self_grants),
        owners=roles.how,
        rls_counting=_rls_counting(target.role, forced),
        sequence_check=("the source's recorded state" if manifest.sequences is not None
                        else "format 1 manifest: at or past max(column), ascending only"),
        tables=len(manifest.tables),
        tenants=len(manifest.tenant_totals()),
        scratch_dir=str(found.scratch_parent),
        scratch_free_bytes=decided.scratch_free_bytes,
        skipped_backups=[s.backup_id for s in found.backup.skipped],
        encrypted_to=list(manifest.encryption.recipients) if manifest.encryption else [],
        database_state=(_database_state_step(manifest) if not decided.scratch else
                        "not applied (a scratch restore: database-level state is not compared)"),
        database_owner=decided.database_owner,
        public_grants=decided.public_grants,
        sessions=[s.describe() for s in target.sessions],
        close_door=decided.close_door,
    )



def _scratch_parent(config: RestoreConfig) -> Path:
    path = Path(config.scratch_dir or tempfile.gettempdir())
    if not path.is_dir():
        raise ConfigError(
            f"scratch directory {path} does not exist or is not a directory",
            hint="create it, or point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at an existing volume",
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"scratch directory {path} is not writable",
            hint="point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at a writable volume",
        )
    return path


def _check_dump_object(storage: Storage, keys: BackupKeys, manifest: Manifest) -> None:
    uri = storage.config.uri(keys.dump)
    head = storage.head(keys.dump)
    if head.get("StorageClass") in ARCHIVED_CLASSES and 'ongoing-request="false"' not in head.get("Restore", ""):
        raise StorageError(
            f"{uri} is in {head['StorageClass']} and must be restored from the archive first",
            hint="aws s3api restore-object --bucket ... --key ... --restore-request Days=2; retry when it completes",
        )
    if int(head["ContentLength"]) != manifest.dump.size:
        raise VerifyError(
            f"{uri} is {head['ContentLength']} bytes but its manifest says {manifest.dump.size}: truncated or replaced",
            hint="restore another backup",
        )


def _roles_file(storage: Storage, manifest: Manifest, identity_file: str | None) -> RolesFile | None:
    """The backup's roles object, checked against its manifest and parsed as data: a
    statement pg_dumpall does not write refuses the restore here, before any change."""
    if manifest.roles is None:
        return None
    data = storage.get_bytes(manifest.roles.key)
    if hashlib.sha256(data).hexdigest() != manifest.roles.sha256:
        raise VerifyError(f"roles object {storage.config.uri(manifest.roles.key)} does not match its manifest",
                          hint="restore another backup")
    return parse_globals(agecrypt.roles_plaintext(data, manifest, identity_file).decode())


def _needed_roles(manifest: Manifest, roles_file: RolesFile | None, config: RestoreConfig, scratch: bool) -> set[str]:
    """The roles the restore needs: those the archive names and, unless privileges are
    left out, every role its memberships reach (by the roles object's graph; format 3
    adds the reach recorded at backup)."""
    seeds = set(manifest.roles_needed(owners=not config.no_owner, privileges=not config.no_privileges,
                                      database=not scratch))
    if config.no_privileges or scratch or roles_file is None:
        return seeds
    edges = [(m.role, m.member) for m in roles_file.memberships]
    privileged = {name for name, role in roles_file.roles.items() if role.privileged}
    return reached_roles(seeds, edges, privileged) | seeds


def _database_state_step(manifest: Manifest) -> str:
    if manifest.database is None:
        return (f"manifest format {manifest.format_version} does not record the database's own state (owner, ACL, "
                "settings, role settings, memberships): not restored, not verified")
    return ("apply the database's recorded state to the target database: connection limit, comment, ACL, "
            f"settings, role settings; verify them and the memberships among {len(manifest.database.reached_roles)} "
            "roles the archive reaches")


def _stored_roles(manifest: Manifest, target: TargetInfo, missing: list[str], config: RestoreConfig,
                  roles_file: RolesFile | None) -> RolesFile | None:
    """The parsed roles object when the restore may use it (refusals when roles are
    missing and may not be created)."""
    role = target.role
    if missing and not config.create_missing_roles:
        raise RefusedError(
            f"the target server lacks roles the backup names: {', '.join(missing)}",
            hint="create them, or pass --create-missing-roles to create them from the stored roles object "
            "(or --no-owner --no-privileges for a scratch copy)",
        )
    if missing and not (role.superuser or role.createrole):
        raise RefusedError(
            f"the target server lacks roles the backup names: {', '.join(missing)}, and restore role {role.name} "
            "may not create roles (no CREATEROLE)",
            hint="restore as the instance's admin role (CREATEROLE; rds_superuser, cloudsqlsuperuser, "
            "azure_pg_admin), or have it create these roles first",
        )
    if roles_file is None and missing:
        raise RefusedError(f"roles {', '.join(missing)} are missing and this backup has no roles object")
    return roles_file


def _role_kind(role: pgroles.RestoreRole) -> str:
    if role.superuser:
        return "superuser"
    if role.createrole:
        return "CREATEROLE admin" + ("" if role.bypassrls else " without BYPASSRLS")
    if role.database_owner:
        return "database owner"
    return "role"


def _rls_counting(role: pgroles.RestoreRole, forced: list[str]) -> str:
    if role.sees_every_row:
        return "superuser or BYPASSRLS sees every row"
    if forced:
        return (f"as the tables' owner, FORCE lifted on {len(forced)} table(s) inside the counting transaction "
                "and rolled back")
    return "as the tables' owner (no table forces row-level security)"


def scratch_free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _safety_location(config: RestoreConfig, storage: Storage, keys: BackupKeys) -> str:
    if config.safety_backup_to_bucket:
        return safety_storage(storage.config, keys.prefix).uri(safety_storage(storage.config, keys.prefix).prefix + "/")
    return str(_safety_dir(config))


def _safety_dir(config: RestoreConfig) -> Path:
    return Path(config.safety_backup_dir or os.path.join(os.getcwd(), "agent-bom-safety-backups"))
