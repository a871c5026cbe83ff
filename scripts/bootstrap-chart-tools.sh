#!/usr/bin/env bash
# Install the chart toolchain's extras, cached under .tools/:
#   .tools/npm/      @bitnami/readme-generator-for-helm (the chart README's values table)
#   .tools/checkov/  checkov in its own venv (optional, large; scans the rendered chart)
#
# checkov lives in a venv of its own because it pins packages (e.g. packaging<24) that
# conflict with the test venv's pytest. Helm and the test venv come from scripts/bootstrap.sh,
# which calls this script. Everything is installed from the package registries through their
# ordinary clients (npm, pip); reruns are fast (stamp files).
set -euo pipefail

readonly README_GENERATOR_PKG="@bitnami/readme-generator-for-helm@2.7.2"
readonly CHECKOV_SPEC="checkov>=3.2,<4"

usage() {
    cat <<'EOF'
Usage: scripts/bootstrap-chart-tools.sh [--with-checkov] [-q|--quiet] [-h|--help]

Install the chart tools under .tools/ (or $AGENT_BOM_TOOLS_DIR):
  .tools/npm/node_modules/.bin/readme-generator   always (needs node and npm)
  .tools/checkov/bin/checkov                      with --with-checkov (or
                                                  AGENT_BOM_WITH_CHECKOV=1)

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
# log, die, run_logged, stamps
# shellcheck source=lib/bootstrap-common.sh
source "$REPO_ROOT/scripts/lib/bootstrap-common.sh"


install_readme_generator() {
    local prefix="$TOOLS_DIR/npm"
    if stamp_matches chart-npm "$README_GENERATOR_PKG" && [[ -x "$prefix/node_modules/.bin/readme-generator" ]]; then
        log "readme-generator-for-helm is current"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm is required for $README_GENERATOR_PKG (apt-get install npm)"
    log "npm install $README_GENERATOR_PKG into $prefix"
    mkdir -p "$prefix"
    run_logged npm-readme-generator npm install --prefix "$prefix" --no-audit --no-fund --no-save "$README_GENERATOR_PKG"
    [[ -x "$prefix/node_modules/.bin/readme-generator" ]] || die "readme-generator missing after npm install"
    write_stamp chart-npm "$README_GENERATOR_PKG"
}

install_checkov() {
    local venv="$TOOLS_DIR/checkov"
    if stamp_matches chart-checkov "$CHECKOV_SPEC" && [[ -x "$venv/bin/checkov" ]]; then
        log "checkov is current"
        return 0
    fi
    log "pip install $CHECKOV_SPEC into $venv (large, once)"
    run_logged checkov-venv python3 -m venv "$venv"
    run_logged checkov-pip "$venv/bin/python" -m pip install --quiet "$CHECKOV_SPEC"
    [[ -x "$venv/bin/checkov" ]] || die "checkov missing after pip install"
    write_stamp chart-checkov "$CHECKOV_SPEC"
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
