"""Upstream agent-bom's PostgreSQL schema, built by upstream's own Alembic migrations.

The migrations are data beside the project, never copied into it:
``../shared/reference/upstream-agent-bom-postgres/`` (its README says how they run). The
tool venv comes from ``scripts/bootstrap.sh upstream`` (``.tools/upstream-venv``, hashed
lock ``locks/upstream-schema.txt``). Alembic needs the migrations importable as
``deploy.supabase.postgres``: they are copied into a scratch tree with the three
``__init__.py`` files upstream's repository has.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .pgcluster import PgCluster
from .tools import MissingToolError, repo_root, tools_dir

#: beside the project; AGENT_BOM_UPSTREAM_SCHEMA_DIR points elsewhere (e.g. from a git worktree)
REFERENCE_DIR = Path(os.environ.get("AGENT_BOM_UPSTREAM_SCHEMA_DIR")
                     or repo_root().parent / "shared" / "reference" / "upstream-agent-bom-postgres")
#: the revision before ``20260819_01_tenant_binding_authority`` added the signing-keys table
BEFORE_KEYS_REVISION = "20260818_01"
KEYS_TABLE = "public.agent_bom_tenant_binding_keys"
MAINTENANCE_ROLE = "agent_bom_maintenance"
#: the session setting upstream's abom_rls_bypass() honours for members of agent_bom_rls_maintenance
BYPASS_SETTING = "app.bypass_rls=1"
TENANTS = ("tenant-alpha", "tenant-beta", "tenant-gamma")
_MIGRATIONS = Path("deploy") / "supabase" / "postgres"


def reference_missing() -> str | None:
    """Why the reference is unusable (None when it is there)."""
    if not (REFERENCE_DIR / _MIGRATIONS / "alembic.ini").is_file():
        return (f"upstream agent-bom's schema is not at {REFERENCE_DIR} (expected beside the project as "
                "../shared/reference/upstream-agent-bom-postgres/)")
    return None


def alembic_binary() -> Path:
    path = tools_dir() / "upstream-venv" / "bin" / "alembic"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingToolError("upstream's migration venv (alembic)", path, "upstream")
    return path


def migrations_tree(scratch: Path) -> Path:
    """A tree under ``scratch`` from which ``deploy.supabase.postgres`` imports."""
    tree = scratch / "upstream-agent-bom"
    if not (tree / _MIGRATIONS / "alembic.ini").is_file():
        shutil.copytree(REFERENCE_DIR / _MIGRATIONS, tree / _MIGRATIONS)
        for package in (tree / "deploy", tree / "deploy" / "supabase", tree / _MIGRATIONS):
            (package / "__init__.py").touch()
    return tree


def build_schema(cluster: PgCluster, database: str, scratch: Path, revision: str = "head",
                 url: str | None = None) -> None:
    """Run upstream's migrations up to ``revision`` on ``database`` as the superuser, or as the
    role of ``url`` (as on RDS: an admin that owns the database, ``LOGIN CREATEDB CREATEROLE``;
    it creates the trusted extensions pgcrypto and pg_trgm itself). Upstream's baseline runs
    ``ALTER ROLE ... NOSUPERUSER`` on its roles when they exist, which only a superuser may: a
    non-superuser builds only the cluster's first such database."""
    tree = migrations_tree(scratch)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "PYTHONPATH": str(tree), "ALEMBIC_DATABASE_URL": url or cluster.superuser_url(database)}
    result = subprocess.run([str(alembic_binary()), "-c", str(_MIGRATIONS / "alembic.ini"), "upgrade", revision],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"upstream's migrations to {revision} failed (exit {result.returncode}):\n"
                           f"{result.stderr[-3000:]}")


def seed(cluster: PgCluster, database: str, rows_per_tenant: int = 20) -> dict[str, int]:
    """Teams and scan jobs for a few tenants (and one signing key where the table exists);
    returns scan_jobs rows per tenant."""
    statements = []
    for tenant in TENANTS:
        statements.append(f"INSERT INTO teams (team_id, name, slug) VALUES ('{tenant}', '{tenant}', '{tenant}')")
        statements.append(
            "INSERT INTO scan_jobs (job_id, team_id, status, created_at, data) "
            f"SELECT '{tenant}-' || g, '{tenant}', 'done', '2026-08-20T00:00:00Z', '{{}}'::jsonb "
            f"FROM generate_series(1, {rows_per_tenant}) g")
    statements.append(
        "DO $$ BEGIN IF to_regclass('public.agent_bom_tenant_binding_keys') IS NOT NULL THEN "
        "INSERT INTO public.agent_bom_tenant_binding_keys (key_id, key_material) "
        "VALUES (repeat('a', 64), decode(repeat('00', 32), 'hex')); END IF; END $$")
    statements.append("ANALYZE")
    cluster.run_sql("; ".join(statements), database)
    return {tenant: rows_per_tenant for tenant in TENANTS}


def maintenance_url(cluster: PgCluster, database: str, password: str) -> str:
    """Give upstream's maintenance login role ``password``; its URL for ``database``."""
    cluster.run_sql(f"ALTER ROLE {MAINTENANCE_ROLE} PASSWORD '{password}'", database)
    return cluster.url(database, MAINTENANCE_ROLE, password)
