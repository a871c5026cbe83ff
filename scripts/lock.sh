#!/usr/bin/env bash
# Refresh the dependency locks from the package registries and print what changed.
#
#   Python (uv pip compile --universal --generate-hashes; no index URL is written):
#     locks/uv.txt                  uv itself (from locks/uv.in)
#     locks/dev.txt                 .tools/venv: pyproject.toml, every extra, the build backend
#     locks/checkov.txt             .tools/checkov (from locks/checkov.in)
#     image/requirements.lock       the job image: dependencies + pg18, wheels only, as dev.txt
#     image/build-requirements.lock the job image's build backend, as dev.txt
#     locks/upstream-schema.txt     .tools/upstream-venv: Alembic & co. (locks/upstream-schema.in)
#     locks/upstream-schema-nodeps.txt  agent-bom 0.102.0 for its migrations, no dependencies
#     every one constrained by locks/constraints.txt where it applies
#   npm (npm install --package-lock-only; no registry URL is written):
#     locks/npm/*/package-lock.json from locks/npm/*/package.json
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/lock.sh [--keep | --check] [--only python|npm] [-h|--help]

Re-resolve every lock (Python: locks/*.txt, image/*.lock; npm: locks/npm/*/package-lock.json)
and print one line per changed package ("LOCK: name old -> new", "+ name new", "- name old").
Then run scripts/bootstrap.sh to install what the locks now say.

Modes:
  (default)   upgrade: every package to the newest version the inputs allow
              (pyproject.toml ranges, locks/constraints.txt, locks/*.in, locks/npm/*/package.json)
  --keep      keep every pin that still fits the inputs; add or drop only what the inputs
              changed (after a merge that added a dependency)
  --check     like --keep, but write nothing: exit 1 when a lock is not what its inputs
              give (CI runs this; needs the registries)

Options:
  --only python|npm   refresh only those locks
  -h, --help          show this help

Environment: AGENT_BOM_TOOLS_DIR as for scripts/bootstrap.sh (uv comes from .tools/uv).
EOF
}

die() {
    printf 'lock: error: %s\n' "$*" >&2
    exit 1
}
log() { printf 'lock: %s\n' "$*" >&2; }

MODE=upgrade
ONLY=all
while [[ $# -gt 0 ]]; do
    case $1 in
    --keep) MODE=keep ;;
    --check) MODE=check ;;
    --only)
        [[ $# -ge 2 ]] || die "--only needs python or npm"
        ONLY=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
    shift
done
case $ONLY in all | python | npm) ;; *) die "--only takes python or npm, got '$ONLY'" ;; esac

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}
LOCKS_PY=(python3 "$REPO_ROOT/scripts/devstack/locks.py")
cd "$REPO_ROOT"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OLD=$WORK/old
NEW=$WORK/new
mkdir -p "$OLD" "$NEW"
# Both trees start as today's locks: OLD for the report, NEW as the resolvers' preferences.
for tree in "$OLD" "$NEW"; do
    tar -C "$REPO_ROOT" -cf - locks image/requirements.lock image/build-requirements.lock \
        2>/dev/null | tar -C "$tree" -xf - || true
    mkdir -p "$tree/locks" "$tree/image"
done

lock_python() {
    local uv="$TOOLS_DIR/uv/bin/uv" upgrade=() build
    "$REPO_ROOT/scripts/bootstrap.sh" -q uv
    [[ -x $uv ]] || die "uv is missing after scripts/bootstrap.sh uv"
    [[ $MODE == upgrade ]] && upgrade=(--upgrade)
    build=$("${LOCKS_PY[@]}" build-requirements)
    compile() { # compile OUT ARGS...: one lock, paths in annotations relative to the repository
        local out=$1
        shift
        log "uv pip compile -> ${out#"$NEW"/}"
        "$uv" pip compile --quiet --universal --generate-hashes --no-emit-index-url \
            --custom-compile-command scripts/lock.sh "${upgrade[@]}" --output-file "$out" "$@" ||
            die "uv pip compile failed for ${out#"$NEW"/}"
    }
    # no pyproject.toml behind these two: their lowest Python is the host's (Debian 12's 3.11)
    compile "$NEW/locks/uv.txt" locks/uv.in --python-version 3.11
    printf '%s\n' "$build" |
        compile "$NEW/locks/dev.txt" pyproject.toml - --all-extras --constraint locks/constraints.txt
    compile "$NEW/locks/checkov.txt" locks/checkov.in --python-version 3.11
    # The image takes the versions the tests ran with: the dev lock is its constraint.
    compile "$NEW/image/requirements.lock" pyproject.toml --extra pg18 --only-binary :all: \
        --no-annotate --constraint "$NEW/locks/dev.txt"
    printf '%s\n' "$build" |
        compile "$NEW/image/build-requirements.lock" - --only-binary :all: --no-annotate \
            --constraint "$NEW/locks/dev.txt"
    # the test tool venv that builds upstream agent-bom's schema (scripts/bootstrap.sh upstream)
    compile "$NEW/locks/upstream-schema.txt" locks/upstream-schema.in --python-version 3.11
    compile "$NEW/locks/upstream-schema-nodeps.txt" locks/upstream-schema-nodeps.in --python-version 3.11 --no-deps
    (cd "$NEW" && "${LOCKS_PY[@]}" stamp locks/uv.txt locks/dev.txt locks/checkov.txt \
        image/requirements.lock image/build-requirements.lock \
        locks/upstream-schema.txt locks/upstream-schema-nodeps.txt)
}

lock_npm() {
    local dir name
    command -v npm >/dev/null 2>&1 || die "npm is required (apt-get install npm)"
    for dir in "$REPO_ROOT"/locks/npm/*/; do
        name=$(basename "$dir")
        [[ -f $dir/package.json ]] || continue
        [[ $MODE == upgrade ]] && rm -f "$NEW/locks/npm/$name/package-lock.json"
        log "npm install --package-lock-only -> locks/npm/$name/package-lock.json"
        (cd "$NEW/locks/npm/$name" &&
            npm install --package-lock-only --ignore-scripts --omit-lockfile-registry-resolved \
                --no-audit --no-fund >"$WORK/npm-$name.log" 2>&1) ||
            { cat "$WORK/npm-$name.log" >&2; die "npm could not lock locks/npm/$name"; }
    done
}

[[ $ONLY == npm ]] || lock_python
[[ $ONLY == python ]] || lock_npm

"${LOCKS_PY[@]}" diff "$OLD" "$NEW"

# the files the resolvers wrote
mapfile -t written < <(cd "$NEW" && find locks image -type f \( -name '*.txt' -o -name '*.lock' \
    -o -name package-lock.json \) ! -name constraints.txt | LC_ALL=C sort)
stale=()
for file in "${written[@]}"; do
    if [[ $file == */package-lock.json && -f $REPO_ROOT/$file ]]; then
        # npm releases format a lock differently; what counts is what it installs
        "${LOCKS_PY[@]}" npm-same "$NEW/$file" "$REPO_ROOT/$file" || stale+=("$file")
    else
        cmp -s "$NEW/$file" "$REPO_ROOT/$file" || stale+=("$file")
    fi
done
if [[ $MODE == check ]]; then
    if [[ ${#stale[@]} -gt 0 ]]; then
        die "out of date with their inputs: ${stale[*]} (run scripts/lock.sh --keep and commit)"
    fi
    log "every lock is current"
    exit 0
fi
for file in "${stale[@]}"; do
    cp "$NEW/$file" "$REPO_ROOT/$file"
done
if [[ ${#stale[@]} -gt 0 ]]; then
    log "rewrote ${stale[*]}; scripts/bootstrap.sh installs them"
else
    log "no lock changed"
fi
