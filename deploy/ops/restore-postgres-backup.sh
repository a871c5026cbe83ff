#!/usr/bin/env bash
# Restore an agent-bom control-plane backup (the runbook's "Restore Drill"):
#
#   deploy/ops/restore-postgres-backup.sh BACKUP_URI RESTORE_POSTGRES_URL AWS_REGION [OPTIONS...]
#
# A thin wrapper over `agent-bom-backup restore`. The target URL is handed on in the
# environment (AGENT_BOM_RESTORE_POSTGRES_URL), never in the CLI's argv, and this script
# never prints it. Runs the CLI from $AGENT_BOM_BACKUP_CLI, the job image
# ($AGENT_BOM_BACKUP_IMAGE), PATH or this checkout (bootstrapping it when needed).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: restore-postgres-backup.sh BACKUP_URI RESTORE_POSTGRES_URL AWS_REGION [OPTIONS...]

Restore a backup of the agent-bom control-plane database into RESTORE_POSTGRES_URL,
verify rows, tenant distribution and schema against the backup's manifest, and print
a report for the incident record. Nothing is changed before every check has passed
(--dry-run prints the plan). Works as a managed instance's admin (RDS/Aurora, Cloud SQL,
Azure: CREATEROLE, no superuser); see docs/runbook.md.

Arguments:
  BACKUP_URI            s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump,
                        s3://BUCKET/PREFIX/ (the newest complete backup there), or
                        latest (with AGENT_BOM_BACKUP_BUCKET and _PREFIX set)
  RESTORE_POSTGRES_URL  the target, postgresql://USER@HOST:PORT/DBNAME. Prefer a URL
                        without a password plus PGPASSWORD or PGPASSFILE: a password in
                        this argument is visible in this script's process arguments
                        until it starts the restore.
  AWS_REGION            region of the backup bucket

Options, passed on to `agent-bom-backup restore` (see its --help for all):
  --approval ID                     incident/approval id; required to restore over the
                                    live database (AGENT_BOM_POSTGRES_URL)
  --clean --confirm-target DBNAME   replace a non-empty target (a safety pg_dump of it
                                    is taken first unless --no-safety-backup)
  --create-missing-roles            create roles the target server lacks from the
                                    backup's roles object (login roles need a password;
                                    as a managed instance's admin, attributes it may not
                                    grant are left out and reported)
  --terminate-sessions              end other sessions on the target (REVOKE CONNECT
                                    from every role but the restore role, then
                                    pg_terminate_backend; granted back at the end)
                                    instead of refusing while they exist
  --allow-older                     with latest: if the newest backup is unreadable or
                                    archived, restore the newest complete one instead
  --no-owner --no-privileges        do not restore owners/grants (scratch copies only)
  --identity FILE                   age identity file (age-keygen's AGE-SECRET-KEY-1...
                                    lines) for a backup encrypted to age recipients;
                                    without it such a restore is refused (exit 8)
  --operator NAME                   who runs the restore (default: the OS user)
  --report PATH                     also write the report as JSON
  --dry-run                         run every check, print the plan, change nothing

Environment:
  AGENT_BOM_BACKUP_CLI              agent-bom-backup executable to run
  AGENT_BOM_BACKUP_IMAGE            run this job image instead (podman or docker; set
                                    AGENT_BOM_BACKUP_CONTAINER_ENGINE to choose). It sees
                                    the current directory (keep --report and
                                    --safety-backup-dir paths under it) and ~/.aws,
                                    read-only (AWS_PROFILE and SSO logins work)
  AGENT_BOM_BACKUP_ENDPOINT_URL     S3-compatible endpoint (plus _PATH_STYLE, _CA_BUNDLE)
  AWS_ACCESS_KEY_ID, AWS_PROFILE, ...  the identity that reads the bucket
  AGENT_BOM_POSTGRES_URL            the live database (restoring over it needs --approval)
  AGENT_BOM_RESTORE_IDENTITY_FILE   age identity file, as --identity (mounted read-only
                                    into the job image)

Exit codes: 0 verified (or dry run), 2 usage, 3 configuration, 4 preflight,
6 storage, 7 verification failed (nothing restored), 8 refused, 9 a restore step failed
before the target was changed, 11 failed after changing the target (the message says what
changed and how to go back), 143 interrupted. The target is untouched for every code but 11.
EOF
}

die() {
    printf 'restore-postgres-backup: error: %s\n' "$*" >&2
    exit 1
}

usage_error() {
    printf 'restore-postgres-backup: error: %s\n\n' "$*" >&2
    usage >&2
    exit 2
}

# No command substitution or pipe before the exec below: a forked subshell would carry
# this script's arguments (the URL) in its own argv.
case ${BASH_SOURCE[0]} in
*/*) REPO_ROOT=${BASH_SOURCE[0]%/*}/../.. ;;
*) REPO_ROOT=../.. ;;
esac
CLI=""

# find_cli: set CLI to the agent-bom-backup to run (empty when the job image is used).
find_cli() {
    if [[ -n ${AGENT_BOM_BACKUP_CLI:-} ]]; then
        [[ -x $AGENT_BOM_BACKUP_CLI ]] || type -P "$AGENT_BOM_BACKUP_CLI" >/dev/null ||
            die "AGENT_BOM_BACKUP_CLI=$AGENT_BOM_BACKUP_CLI is not executable"
        CLI=$AGENT_BOM_BACKUP_CLI
        return 0
    fi
    [[ -n ${AGENT_BOM_BACKUP_IMAGE:-} ]] && return 0
    if type -P agent-bom-backup >/dev/null; then
        CLI=agent-bom-backup
        return 0
    fi
    local venv=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}/venv
    if [[ ! -x $venv/bin/agent-bom-backup ]]; then
        [[ -x $REPO_ROOT/scripts/bootstrap.sh ]] ||
            die "agent-bom-backup not found: install it (pipx install agent-bom-backup, or uv tool install agent-bom-backup), set AGENT_BOM_BACKUP_CLI, or set AGENT_BOM_BACKUP_IMAGE to run the job image"
        printf 'restore-postgres-backup: installing agent-bom-backup into %s (scripts/bootstrap.sh python)\n' "$venv" >&2
        "$REPO_ROOT/scripts/bootstrap.sh" -q python >&2
        [[ -x $venv/bin/agent-bom-backup ]] || die "scripts/bootstrap.sh python did not install $venv/bin/agent-bom-backup"
    fi
    CLI=$venv/bin/agent-bom-backup
}

# run_image ARGS...: run `agent-bom-backup ARGS...` in the job image. Variables are passed
# by name (--env NAME), so their values never appear in the engine's argv. The current
# directory is mounted at the same path, so a relative --report lands here.
run_image() {
    local engine=${AGENT_BOM_BACKUP_CONTAINER_ENGINE:-}
    if [[ -z $engine ]]; then
        if type -P podman >/dev/null; then
            engine=podman
        elif type -P docker >/dev/null; then
            engine=docker
        else
            die "AGENT_BOM_BACKUP_IMAGE is set but neither podman nor docker is installed"
        fi
    fi
    local -a run_args=(run --rm --network host --user "$UID:${GROUPS[0]}"
        --volume "$PWD:$PWD" --workdir "$PWD")
    local name
    for name in "${!AGENT_BOM_@}" "${!AWS_@}" "${!PG@}"; do
        case $name in
        AGENT_BOM_BACKUP_IMAGE | AGENT_BOM_BACKUP_CONTAINER_ENGINE | AGENT_BOM_BACKUP_CLI) ;;
        *) run_args+=(--env "$name") ;;
        esac
    done
    if [[ -n ${PGPASSFILE:-} && -f $PGPASSFILE ]]; then
        run_args+=(--volume "$PGPASSFILE:$PGPASSFILE:ro")
    fi
    # (a relative path is under the current directory, which is mounted already)
    if [[ ${AGENT_BOM_RESTORE_IDENTITY_FILE:-} == /* && -f $AGENT_BOM_RESTORE_IDENTITY_FILE ]]; then
        run_args+=(--volume "$AGENT_BOM_RESTORE_IDENTITY_FILE:$AGENT_BOM_RESTORE_IDENTITY_FILE:ro")
    fi
    # The AWS CLI's files, read-only, where the image's HOME (/tmp) looks for them: profiles
    # and SSO logins (AWS_PROFILE, `aws sso login` first) work in the image as on the host.
    if [[ -n ${HOME:-} && -d $HOME/.aws ]]; then
        run_args+=(--volume "$HOME/.aws:/tmp/.aws:ro")
    fi
    for name in AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE; do
        if [[ -n ${!name:-} && -f ${!name} ]]; then
            run_args+=(--volume "${!name}:${!name}:ro")
        fi
    done
    exec "$engine" "${run_args[@]}" "$AGENT_BOM_BACKUP_IMAGE" agent-bom-backup "$@"
}

main() {
    local arg
    for arg in "${@:1:3}"; do
        if [[ $arg == -h || $arg == --help ]]; then
            usage
            exit 0
        fi
    done
    [[ $# -ge 3 ]] || usage_error "expected BACKUP_URI RESTORE_POSTGRES_URL AWS_REGION, got $# argument(s)"
    for arg in "${@:1:3}"; do
        [[ $arg != -* ]] || usage_error "options go after the three arguments (got '$arg' among them)"
    done
    local backup_uri=$1 region=$3
    [[ -n $backup_uri ]] || usage_error "BACKUP_URI is empty"
    [[ -n $2 ]] || usage_error "RESTORE_POSTGRES_URL is empty"
    [[ -n $region ]] || usage_error "AWS_REGION is empty"

    export AGENT_BOM_RESTORE_POSTGRES_URL=$2
    export AGENT_BOM_BACKUP_REGION=$region AWS_REGION=$region AWS_DEFAULT_REGION=$region
    shift 3

    find_cli
    if [[ -z $CLI ]]; then
        run_image restore "$backup_uri" "$@"
    fi
    exec "$CLI" restore "$backup_uri" "$@"
}

main "$@"
