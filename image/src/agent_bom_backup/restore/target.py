"""The restore target as inspected before any change, and the refusals of an unsafe one
(the live source without an approval, a non-empty target without ``--clean``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import pgcatalog, pgroles
from ..errors import ConfigError, PreflightError, RefusedError
from ..log import event, get_logger
from ..manifest import Manifest
from ..pgconn import ConnInfo, probe_server_major, SessionSettings
from ..sessions import Session, settled_sessions
from .config import RestoreConfig


@dataclass
class TargetInfo:
    conn_info: ConnInfo
    major: int
    session: SessionSettings
    info: pgcatalog.ServerInfo
    objects: list[str]
    role: pgroles.RestoreRole
    roles: set[str]
    access: dict[str, pgroles.RoleAccess]
    extensions: dict[str, pgcatalog.ExtensionInfo]
    undroppable: list[str]
    create_on_public: bool
    sessions: list[Session] = field(default_factory=list)


def _inspect_target(config: RestoreConfig, conn_info: ConnInfo, owners: list[str]) -> TargetInfo:
    major = probe_server_major(conn_info)
    session = SessionSettings(server_major=major, lock_timeout_ms=config.lock_wait_timeout_s * 1000)
    with conn_info.connect(session) as conn:
        objects = pgcatalog.user_objects(conn)
        row = conn.execute("SELECT COALESCE((SELECT has_schema_privilege(oid, 'CREATE') FROM pg_namespace "
                           "WHERE nspname = 'public'), false)").fetchone()
        return TargetInfo(
            conn_info=conn_info,
            major=major,
            session=session,
            info=pgcatalog.server_info(conn),
            objects=objects,
            role=pgroles.restore_role(conn),
            roles=pgroles.existing_roles(conn),
            access=pgroles.role_access(conn, owners),
            extensions=pgcatalog.extension_info(conn),
            undroppable=pgcatalog.undroppable_objects(conn) if config.clean and objects else [],
            create_on_public=bool(row[0]) if row else False,
            sessions=settled_sessions(conn),
        )


def _identity(info: pgcatalog.ServerInfo, conn_info: ConnInfo) -> tuple[str, str]:
    return (info.system_identifier or f"{conn_info.host}:{conn_info.params.get('port', '5432')}", info.database)


def _refuse_unsafe_target(config: RestoreConfig, manifest: Manifest, target: TargetInfo) -> None:
    target_id = _identity(target.info, target.conn_info)
    live = False
    if config.live_source_url:
        try:
            live_info = ConnInfo.parse(config.live_source_url, what="AGENT_BOM_POSTGRES_URL")
            with live_info.connect(SessionSettings()) as conn:
                live = _identity(pgcatalog.server_info(conn), live_info) == target_id
        except (PreflightError, ConfigError) as exc:
            event(get_logger(), "cannot compare the target with the live database (AGENT_BOM_POSTGRES_URL); "
                  "comparing with the backup's source instead", level=logging.WARNING, error=str(exc))
    if manifest.source.system_identifier and (manifest.source.system_identifier, manifest.source.database) == target_id:
        live = True
    if live and not config.approval:
        raise RefusedError(
            f"target {target.conn_info.display()} is the live source database of this backup",
            hint="restore into a staging database first; to restore over production pass --approval INCIDENT-ID "
            "once incident command approved the data-loss window",
        )
    if target.objects and not config.clean:
        shown = ", ".join(target.objects[:3]) + (" ..." if len(target.objects) > 3 else "")
        raise RefusedError(
            f"target database {target.info.database} is not empty ({len(target.objects)} objects: {shown})",
            hint=f"restore into an empty database, or pass --clean --confirm-target {target.info.database}",
        )
    if config.clean and target.objects and config.confirm_target != target.info.database:
        raise RefusedError(
            f"--clean would replace database {target.info.database} but --confirm-target is "
            f"{config.confirm_target or 'not set'}",
            hint=f"pass --confirm-target {target.info.database}",
        )
