#!/usr/bin/env bash
# The project's test command: install the tools (cached under .tools/), then run pytest.
#
#   scripts/test.sh                      the whole suite (tests/)
#   scripts/test.sh tests/test_support.py -k moto    any pytest arguments
#
# Exit code: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/test.sh [PYTEST_ARGS...]

Runs scripts/bootstrap.sh all (fast when cached), then .tools/venv/bin/python -m pytest
with PYTEST_ARGS (default: the whole suite under tests/). A run that collects no test
fails.

Environment:
  AGENT_BOM_TOOLS_DIR      as for scripts/bootstrap.sh
  AGENT_BOM_TEST_WORKERS   test processes side by side (pytest-xdist -n N --dist loadfile:
                           a test file's tests stay in one process, each process starts
                           its own servers); default 1: one process. Ignored when
                           PYTEST_ARGS choose -n themselves.
USAGE
}

if [[ ${1:-} == "-h" || ${1:-} == "--help" ]]; then
    usage
    exit 0
fi

workers=${AGENT_BOM_TEST_WORKERS:-1}
if ! [[ $workers =~ ^[1-9][0-9]*$ ]]; then
    echo "test.sh: error: AGENT_BOM_TEST_WORKERS must be a whole number from 1 up, got '$workers'" >&2
    exit 2
fi

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/bootstrap.sh" all

if [[ $# -eq 0 ]]; then
    set -- tests/
fi

parallel=()
if [[ $workers -gt 1 ]]; then
    chosen=0
    for arg in "$@"; do
        case $arg in
            -n | -n* | --numprocesses | --numprocesses=* | --dist | --dist=*) chosen=1 ;;
        esac
    done
    if [[ $chosen -eq 0 ]]; then
        parallel=(-n "$workers" --dist loadfile)
    fi
fi

status=0
"$TOOLS_DIR/venv/bin/python" -m pytest "${parallel[@]}" "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: error: pytest collected no tests (exit 5); treating that as a failure" >&2
    exit 1
fi
exit "$status"
