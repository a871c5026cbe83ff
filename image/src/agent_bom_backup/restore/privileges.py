"""Part of the plan: what a restore role that is not a superuser needs to create the
backup's objects and give them their owners (roles it acts as, CREATE on schemas,
extensions it may create). Each check returns what to do or refuses.
"""

from __future__ import annotations

import re

from ..errors import RefusedError
from ..manifest import Manifest
from ..roles import Grantor, StoredRole
from ..rolesfile import RolesFile
from .config import RestoreConfig
from .target import TargetInfo


def _owner_access(target: TargetInfo, owners: list[str], missing: list[str],
                  grantor: Grantor) -> tuple[list[str], dict[str, str]]:
    """How the restore role will act as each owner role (pg_restore's ALTER ... OWNER TO
    needs it), the memberships to grant for that, or a refusal naming the GRANT a
    platform admin must run."""
    role = target.role
    how: dict[str, str] = {}
    grants: list[str] = []
    blocked: list[str] = []
    for owner in owners:
        access = target.access.get(owner)
        if role.superuser:
            how[owner] = "superuser"
        elif owner == role.name:
            how[owner] = "is the restore role"
        elif owner in missing:
            how[owner] = f"created by {role.name}, then granted to it"
            grants.append(owner)
        elif access is not None and access.can_set and access.inherits:
            how[owner] = f"{role.name} is a member"
        elif access is not None and target.major < 16 and role.createrole and not access.superuser and role.inherit:
            how[owner] = f"granted to {role.name} (CREATEROLE)"
            grants.append(owner)
        elif access is not None and target.major >= 16 and access.admin:
            how[owner] = f"granted to {role.name} (it has ADMIN on the role)"
            grants.append(owner)
        else:
            blocked.append(owner)
    if blocked:
        statement = "; ".join(grantor.self_grant(owner) for owner in blocked)
        raise RefusedError(
            f"restore role {role.name} cannot act as {', '.join(blocked)}, which own(s) objects in the backup: "
            "pg_restore could not give the restored objects their owners",
            hint=f"a platform admin runs: {statement}; or restore as a superuser, or with --no-owner "
            "--no-privileges for a scratch copy",
        )
    return grants, how


def _check_privileges(manifest: Manifest, target: TargetInfo, stored: RolesFile | None, wipe: bool,
                      config: RestoreConfig, database_owner: str | None = None) -> list[str]:
    """What a non-superuser needs to create the backup's objects and give them their owners.
    ``database_owner``: the recorded owner the target database gets before pg_restore
    (then ``public``'s CREATE is its). Returns the owners of objects in ``public`` the
    restore gives CREATE on it when the database's owner cannot be set (a database the
    restore role owns: it may grant it), instead of refusing."""
    role = target.role
    if role.superuser:
        return []
    fingerprint = manifest.schema_fingerprint
    schemas = {line.split(" ", 1)[1] for line in fingerprint.get("schemas", [])}
    problems = []
    if schemas - {"public"} and not role.create_on_database:
        problems.append(f"it may not create schemas in database {target.info.database} (no CREATE on it)")
    in_public = any(_schema_of(line) == "public" for line in fingerprint.get("owners", []))
    if in_public and not (role.database_owner if wipe else target.create_on_public):
        problems.append("it may not create objects in schema public"
                        + (" (the wipe recreates it owned by the database owner)" if wipe else ""))
    public_grants: list[str] = []
    if not config.no_owner:
        owner = database_owner or role.database_owner_name
        for problem in _owners_without_create(manifest, stored.roles if stored else None, owner):
            name, schema = problem.removeprefix("owner ").split(" has no CREATE on schema ")
            if schema == "public" and database_owner is None and role.database_owner:
                public_grants.append(name)
            else:
                problems.append(problem)
    if problems:
        raise RefusedError(
            f"restore role {role.name} (not a superuser) cannot restore this backup faithfully: {'; '.join(problems)}",
            hint="restore into a database the restore role owns, as a superuser, or with --no-owner --no-privileges",
        )
    return public_grants


def _schema_of(owner_line: str) -> str | None:
    """The schema in a fingerprint ``owners`` line ('r public.t owner', 'function s.f(..) owner')."""
    kind, _, rest = owner_line.partition(" ")
    if kind == "schema":
        return None
    match = re.match(r'^("(?:[^"]|"")+"|[^."]+)\.', rest)
    return match.group(1) if match else None


def _owners_without_create(manifest: Manifest, stored: dict[str, StoredRole] | None,
                           database_owner: str) -> list[str]:
    """Owner roles of objects in a schema they may not create in (by the backup's grants,
    the memberships in its roles object, and ``public`` belonging to the target
    database's owner): PostgreSQL lets only a superuser give such a role an object there."""
    fingerprint = manifest.schema_fingerprint
    schema_owner = {"public": "pg_database_owner"}
    for line in fingerprint.get("owners", []):
        if line.startswith("schema "):
            name, _, owner = line[len("schema "):].rpartition(" ")
            schema_owner[name] = owner
    grants = set(fingerprint.get("grants", []))

    def roles_of(role: str) -> set[str]:
        seen, todo = {role, "PUBLIC"}, [role]
        while todo:
            current = (stored or {}).get(todo.pop())
            for parent in current.member_of if current else []:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        if database_owner in seen:
            seen.add("pg_database_owner")
        return seen

    problems = set()
    for line in fingerprint.get("owners", []):
        schema = _schema_of(line)
        if schema is None:
            continue
        owner = line.rpartition(" ")[2]
        roles = roles_of(owner)
        if schema_owner.get(schema) in roles or any(f"schema {schema} {r} CREATE" in grants for r in roles):
            continue
        problems.add(f"owner {owner} has no CREATE on schema {schema}")
    return sorted(problems)


def _check_extensions(manifest: Manifest, target: TargetInfo, wipe: bool) -> None:
    missing = sorted(set(manifest.extensions) - set(target.extensions))
    if missing:
        raise RefusedError(
            f"the target server cannot install extensions the backup uses: {', '.join(missing)}",
            hint="install them on the target server (pg_available_extensions), then retry",
        )
    if target.role.superuser:
        return
    untrusted = sorted(
        name for name in manifest.extensions
        if not target.extensions[name].trusted
        and not (target.extensions[name].installed and (not wipe or target.extensions[name].schema == "pg_catalog"))
    )
    if untrusted:
        raise RefusedError(
            f"restore role {target.role.name} is not a superuser and extension(s) {', '.join(untrusted)} are not "
            "trusted: it may not create them",
            hint=f"a platform admin creates them in database {target.info.database} first (CREATE EXTENSION ...; "
            "on RDS/Azure allow-list them), then retry",
        )
