#!/usr/bin/env bash
# The main job on the embedded default: throwaway PostgreSQL + local S3 server,
# seed tenants, back up with the job's real command, wipe, restore with the
# production script, print the verified report. Installs what it needs first.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/drill.sh [--pg-major 15|16|17|18] [--s3 moto|rgw|rgw-https] [--tenants N] [--rows N]
                       [--output DIR] [--keep]

Runs the backup/restore drill of the runbook's CI guardrail on this machine:
  1. starts a throwaway PostgreSQL server (default 18, embedded) and a local S3 server
     (moto; --s3 rgw or rgw-https: Ceph RGW, a real S3 implementation, over http or https)
  2. seeds synthetic tenants (RLS policies, grants, sequences, an application role)
  3. backs up with `agent-bom-backup backup`, the CronJob's command
  4. wipes the database
  5. restores with deploy/ops/restore-postgres-backup.sh BACKUP_URI RESTORE_POSTGRES_URL AWS_REGION
  6. prints the verified restore report (JSON copy in drill-output/restore-report.json)
Tools (Python venv, PostgreSQL, moto; Ceph RGW with --s3 rgw*) are installed on first use.
USAGE
}

if [[ ${1:-} == "-h" || ${1:-} == "--help" ]]; then
    usage
    exit 0
fi

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
components=(python postgres)
previous=""
for arg in "$@"; do
    if [[ $arg == --s3=rgw* || ($previous == --s3 && $arg == rgw*) ]]; then
        components+=(rgw)
    fi
    previous=$arg
done
"$REPO_ROOT/scripts/bootstrap.sh" --quiet "${components[@]}"
exec "${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}/venv/bin/python" "$REPO_ROOT/scripts/drill.py" "$@"
