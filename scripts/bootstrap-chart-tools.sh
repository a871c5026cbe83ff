#!/usr/bin/env bash
# Install the chart toolchain's extras, cached under .tools/:
#   .tools/npm/      @bitnami/readme-generator-for-helm (the chart README's values table):
#                    npm ci of locks/npm/chart
#   .tools/checkov/  checkov in its own venv (optional, large; scans the rendered chart):
#                    exactly locks/checkov.txt (uv pip sync --require-hashes)
#
# checkov lives in a venv (and a lock) of its own because it pins packages that conflict
# with the test venv's. Helm, uv and the test venv come from scripts/bootstrap.sh, which calls
# this script. Everything is installed from the locks through the registries' ordinary
# clients; scripts/lock.sh refreshes the locks; reruns are fast (stamp files: a changed lock
# reinstalls).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bootstrap-chart-tools.sh [--with-checkov] [-q|--quiet] [-h|--help]

Install the chart tools under .tools/ (or $AGENT_BOM_TOOLS_DIR):
  .tools/npm/node_modules/.bin/readme-generator   always (needs node and npm;
                                                  npm ci of locks/npm/chart)
  .tools/checkov/bin/checkov                      with --with-checkov (or
                                                  AGENT_BOM_WITH_CHECKOV=1;
                                                  locks/checkov.txt, installed with
                                                  uv from scripts/bootstrap.sh uv)

Options:
  --with-checkov   also install checkov (a large install, about 300 MB)
  -q, --quiet      print only warnings and errors
  -h, --help       show this help
EOF
}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}
STAMP_DIR=$TOOLS_DIR/stamps
WITH_CHECKOV=${AGENT_BOM_WITH_CHECKOV:-0}
QUIET=0
BOOTSTRAP_NAME=bootstrap-chart-tools
# log, die, run_logged, stamps, lock_stamp, npm_ci
# shellcheck source=lib/bootstrap-common.sh
source "$REPO_ROOT/scripts/lib/bootstrap-common.sh"


install_readme_generator() {
    local prefix="$TOOLS_DIR/npm" want
    want=$(lock_stamp "$REPO_ROOT"/locks/npm/chart/{package.json,package-lock.json,.npmrc})
    if stamp_matches chart-npm "$want" && [[ -x "$prefix/node_modules/.bin/readme-generator" ]]; then
        log "readme-generator-for-helm is current"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm is required for locks/npm/chart (apt-get install npm)"
    npm_ci chart "$prefix"
    [[ -x "$prefix/node_modules/.bin/readme-generator" ]] || die "readme-generator missing after npm ci"
    write_stamp chart-npm "$want"
}

install_checkov() {
    local venv="$TOOLS_DIR/checkov" lock="$REPO_ROOT/locks/checkov.txt" uv="$TOOLS_DIR/uv/bin/uv" want
    want=$(lock_stamp "$lock")
    if stamp_matches chart-checkov "$want" && [[ -x "$venv/bin/checkov" ]]; then
        log "checkov is current"
        return 0
    fi
    "$REPO_ROOT/scripts/bootstrap.sh" -q uv
    export UV_PYTHON_DOWNLOADS=never
    log "uv pip sync --require-hashes locks/checkov.txt into $venv (large, once)"
    rm -rf "$venv"
    run_logged checkov-venv "$uv" venv --python "$(command -v python3)" "$venv"
    run_logged checkov-sync "$uv" pip sync --python "$venv/bin/python" --require-hashes \
        --build-constraints "$lock" "$lock"
    [[ -x "$venv/bin/checkov" ]] || die "checkov missing after installing locks/checkov.txt"
    write_stamp chart-checkov "$want"
}

main() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --with-checkov) WITH_CHECKOV=1 ;;
            -q | --quiet) QUIET=1 ;;
            -h | --help)
                usage
                return 0
                ;;
            *)
                usage >&2
                die "unknown argument: $1"
                ;;
        esac
        shift
    done
    mkdir -p "$TOOLS_DIR"
    install_readme_generator
    if [[ $WITH_CHECKOV == 1 ]]; then
        install_checkov
    else
        log "checkov not requested (--with-checkov); tests/chart/test_checkov.py will skip loudly"
    fi
}

main "$@"
