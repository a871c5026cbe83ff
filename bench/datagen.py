"""Bulk control-plane data for the benchmark, generated inside the server.

The schema, roles and row-level security come from ``scripts/devstack/seed.py`` (the same
shape the tests and the drill use); this module only makes it big: ``audit_log`` rows
with JSON payloads shaped like real audit events (request metadata, a resource, a list
of findings, a free-text detail), spread over several tenants with a skew, plus an
extra index. Rows are made by ``INSERT ... SELECT generate_series`` in batches, so the
client sends a few hundred bytes per batch and the server does the work.

Payloads mix repeated vocabularies with random identifiers in a few long string values,
so a custom-format dump behaves like the issue's reference database (590 MB uncompressed,
96 MB at gzip:6, gzip:6 ~3 x slower than gzip:1): about 6 x smaller at gzip:6.

    python bench/datagen.py --scale 100MB --url postgresql://...   (standalone use)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))

from devstack.seed import (
    APP_ROLE,
    OWNER_ROLE,
    READONLY_ROLE,
    SCHEMA_SQL,
    SECURITY_SQL,
    create_roles,
)

MB = 1000 * 1000
#: bumped whenever the generated data changes (cached databases are rebuilt)
GENERATOR_VERSION = 2
TENANTS = (
    "team-alpha", "team-bravo", "team-charlie", "team-delta",
    "team-echo", "team-foxtrot", "team-golf", "team-hotel",
)
#: share of audit rows per tenant (skewed: a few large tenants, a long tail)
TENANT_WEIGHTS = (0.30, 0.22, 0.15, 0.11, 0.08, 0.06, 0.05, 0.03)
CALIBRATION_ROWS = 5_000
BATCH_ROWS = 50_000

EXTRA_SQL = """
CREATE INDEX audit_log_action_created ON audit_log (action, created_at);
"""

# One audit event per g; parameters: tenant, first and last sequence number ('%%' is SQL's
# modulo). Long string values in a few keys, like the reference database: there
# pg_dump at gzip:6 is ~3 x slower than without compression and ~6 x smaller.
AUDIT_INSERT = """
INSERT INTO audit_log (team_id, actor, action, payload, created_at)
SELECT %(tenant)s,
       'user-' || (g * 7919 %% 211) || '@example.com',
       (ARRAY['login','scan.start','scan.finish','export','policy.update','key.rotate',
              'member.invite','finding.suppress'])[1 + g %% 8],
       jsonb_build_object(
         'event_id', md5(g::text || random()::text),
         'request', (ARRAY['GET','POST','PUT','DELETE'])[1 + g %% 4] || ' /api/v1/'
                    || (ARRAY['scans','agents','policies','findings','keys'])[1 + g %% 5] || '/'
                    || (g * 104729 %% 1000003) || ' from 10.' || (g %% 13) || '.' || (g * 31 %% 251) || '.'
                    || (g * 17 %% 253) || ' ua='
                    || (ARRAY['agent-bom-cli/0.42.1 (linux; amd64)',
                              'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0',
                              'agent-bom-sdk-python/1.8.0 CPython/3.12',
                              'terraform-provider-agentbom/0.9.3'])[1 + g %% 4],
         'resource', jsonb_build_object(
             'type', (ARRAY['scan','agent','policy','finding','api_key'])[1 + g %% 5],
             'id', substr(md5(random()::text), 1, 20)),
         'summary', 'policy ' || (ARRAY['baseline','strict','pci','soc2'])[1 + g %% 4]
             || ' evaluated for repository github.com/org-' || (g %% 97) || '/service-' || (g %% 31)
             || ': ' || (g %% 97) || ' packages scanned, ' || (g %% 13) || ' findings ('
             || (SELECT string_agg('CVE-20' || (19 + (g + i) %% 6) || '-' || ((g * 13 + i * 7717) %% 48000)
                                   || ' in ' || (ARRAY['openssl','glibc','zlib','requests','urllib3','log4j-core',
                                                       'lodash','protobuf','jackson-databind','curl'])[1 + (g + i) %% 10]
                                   || ' ' || (1 + i %% 3) || '.' || ((g + i) %% 20) || '.' || (i * 3 %% 10)
                                   || ' severity ' || (ARRAY['low','medium','high','critical'])[1 + (g * i) %% 4],
                                   '; ')
                 FROM generate_series(1, 1 + g %% 4) i)
             || '); decision ' || (ARRAY['allow','deny','review'])[1 + g %% 3] || ' by rule r-' || (g %% 53)
             || ', trace ' || substr(md5(random()::text), 1, 24),
         'latency_ms', (random() * 900)::int,
         'ok', g %% 5 <> 0),
       timestamptz '2025-01-01 00:00:00+00' + (g %% 7776000) * interval '1 second'
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
"""


@dataclass(frozen=True)
class GeneratedData:
    database: str
    target_bytes: int
    database_bytes: int
    audit_rows: int
    tenant_rows: dict[str, int]
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.database,
            "target_bytes": self.target_bytes,
            "database_bytes": self.database_bytes,
            "audit_rows": self.audit_rows,
            "tenant_rows": self.tenant_rows,
            "seconds": round(self.seconds, 1),
            "generator_version": GENERATOR_VERSION,
        }


def parse_scale(text: str) -> int:
    """``100MB`` / ``1GB`` / ``20mb`` -> bytes (decimal units, like the issue's figures)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b)\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"scale {text!r}: use e.g. 20MB, 100MB or 1GB")
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = {"kb": 1000, "mb": MB, "gb": 1000 * MB, "kib": 1024, "mib": 1024**2, "gib": 1024**3}[unit]
    return int(number * factor)


def scale_label(nbytes: int) -> str:
    if nbytes >= 1000 * MB and nbytes % (1000 * MB) == 0:
        return f"{nbytes // (1000 * MB)}GB"
    return f"{round(nbytes / MB)}MB"


def _database_size(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def _insert_audit(conn: psycopg.Connection, tenant: str, first: int, count: int) -> None:
    conn.execute(AUDIT_INSERT, {"tenant": tenant, "first": first, "last": first + count - 1})


def generate(admin_url: str, database: str, target_bytes: int, log=print) -> GeneratedData:  # type: ignore[no-untyped-def]
    """Create ``database`` (dropped first if it exists) and fill it to ~``target_bytes``.

    ``admin_url`` is a superuser conninfo/URL to any database of the cluster.
    """
    started = time.monotonic()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        create_roles(admin)
    db_url = psycopg.conninfo.make_conninfo(admin_url, dbname=database)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(sql.Identifier(OWNER_ROLE)))
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))
            conn.execute(SCHEMA_SQL)
            conn.execute(EXTRA_SQL)
            conn.execute(SECURITY_SQL.format(app=APP_ROLE, readonly=READONLY_ROLE, owner=OWNER_ROLE))
            conn.execute("INSERT INTO settings VALUES ('retention_days', '90'), ('region', 'bench')")
            for index, tenant in enumerate(TENANTS):
                conn.execute("INSERT INTO teams (team_id, name) VALUES (%s, %s)", (tenant, tenant.title()))
                conn.execute(
                    "INSERT INTO api_keys (team_id, key_hash, scopes) SELECT %s, md5(%s || g), '{scan,read}' "
                    "FROM generate_series(1, %s) g",
                    (tenant, tenant, 5 + 3 * index),
                )
                conn.execute(
                    "INSERT INTO scan_jobs (team_id, status, target, findings) "
                    "SELECT %s, (ARRAY['queued','running','done','failed'])[1 + g %% 4], "
                    "'github.com/org/repo-' || g, g %% 17 FROM generate_series(1, %s) g",
                    (tenant, 200 * (len(TENANTS) - index)),
                )
        # calibrate bytes per audit row, then fill tenant by tenant in batches
        base = _database_size(conn)
        _insert_audit(conn, TENANTS[0], 1, CALIBRATION_ROWS)
        per_row = max(1.0, (_database_size(conn) - base) / CALIBRATION_ROWS)
        total_rows = max(CALIBRATION_ROWS, int((target_bytes - base) / per_row))
        wanted = {t: max(1, int(total_rows * w)) for t, w in zip(TENANTS, TENANT_WEIGHTS)}
        done = {t: 0 for t in TENANTS}
        done[TENANTS[0]] = CALIBRATION_ROWS
        next_seq = CALIBRATION_ROWS + 1
        last_log = time.monotonic()
        for tenant in TENANTS:
            while done[tenant] < wanted[tenant]:
                count = min(BATCH_ROWS, wanted[tenant] - done[tenant])
                _insert_audit(conn, tenant, next_seq, count)
                next_seq += count
                done[tenant] += count
                if time.monotonic() - last_log > 10:
                    last_log = time.monotonic()
                    log(f"datagen: {sum(done.values())}/{sum(wanted.values())} audit rows")
        conn.execute("VACUUM (ANALYZE) audit_log")
        conn.execute("CHECKPOINT")
        size = _database_size(conn)
        rows = {t: int(n) for t, n in conn.execute(
            "SELECT team_id, count(*) FROM audit_log GROUP BY team_id ORDER BY team_id").fetchall()}
    return GeneratedData(
        database=database, target_bytes=target_bytes, database_bytes=size,
        audit_rows=sum(rows.values()), tenant_rows=rows, seconds=time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=parse_scale, default=parse_scale("100MB"), help="e.g. 20MB, 100MB, 1GB")
    parser.add_argument("--url", required=True, help="superuser URL or conninfo of the cluster")
    parser.add_argument("--database", default="agent_bom_bench")
    args = parser.parse_args(argv)
    data = generate(args.url, args.database, args.scale)
    print(data.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
