# shellcheck shell=bash
# Helpers shared by scripts/bootstrap.sh and scripts/bootstrap-chart-tools.sh (sourced, not run).
#
# The sourcing script sets, before calling any of them:
#   BOOTSTRAP_NAME   prefix of every message (e.g. "bootstrap")
#   TOOLS_DIR        the cache folder (.tools); logs go to $TOOLS_DIR/logs, stamps to $STAMP_DIR
#   STAMP_DIR        where component stamps live
#   QUIET            1: log prints nothing (warnings and errors still do)
#   REPO_ROOT        the checkout (npm_ci reads its locks/npm/)

APT_UPDATED=0

log() {
    if [[ ${QUIET:-0} -eq 0 ]]; then
        printf '%s: %s\n' "$BOOTSTRAP_NAME" "$*"
    fi
}
warn() { printf '%s: warning: %s\n' "$BOOTSTRAP_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$BOOTSTRAP_NAME" "$*" >&2
    exit 1
}

# run_logged NAME CMD...: run CMD with its output in $TOOLS_DIR/logs/NAME.log; on failure show
# the log's tail and die.
run_logged() {
    local name=$1
    shift
    local logfile="$TOOLS_DIR/logs/$name.log"
    mkdir -p "$TOOLS_DIR/logs"
    if ! "$@" >"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "$name failed (full log: $logfile)"
    fi
}

# stamp_matches NAME VALUE: whether component NAME was installed as VALUE (its stamp file).
stamp_matches() { [[ -f "$STAMP_DIR/$1" && "$(cat "$STAMP_DIR/$1")" == "$2" ]]; }
write_stamp() {
    mkdir -p "$STAMP_DIR"
    printf '%s' "$2" >"$STAMP_DIR/$1"
}

# lock_stamp FILE...: the stamp of a component installed from these lock files (a changed lock
# changes it, so the component reinstalls)
lock_stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

# npm_ci NAME DEST: install locks/npm/NAME (package.json, package-lock.json, .npmrc) into DEST
# with npm ci: exactly the locked versions, checked against their integrity hashes; no
# install scripts run. DEST is emptied first.
npm_ci() {
    local name=$1 dest=$2 file
    ensure_cmd npm npm
    rm -rf "$dest"
    mkdir -p "$dest"
    for file in package.json package-lock.json .npmrc; do
        cp "$REPO_ROOT/locks/npm/$name/$file" "$dest/$file"
    done
    log "npm ci locks/npm/$name"
    (cd "$dest" && run_logged "npm-$name" npm ci --ignore-scripts --no-audit --no-fund)
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "installing $1 needs root (apt-get); run as root or install it yourself"
}

deb_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

# apt_install [--no-install-recommends] PKG...: install the Debian packages that are missing;
# apt-get update at most once per run.
apt_install() {
    local missing=() pkg options=()
    if [[ ${1:-} == --no-install-recommends ]]; then
        options+=("$1")
        shift
    fi
    for pkg in "$@"; do
        deb_installed "$pkg" || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    need_root "${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        run_logged apt-update apt-get -o DPkg::Lock::Timeout=900 update
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    run_logged apt-install apt-get -o DPkg::Lock::Timeout=900 install -y "${options[@]}" "${missing[@]}"
}

# ensure_cmd COMMAND DEBIAN_PACKAGE...: install the packages when COMMAND is missing.
ensure_cmd() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is still missing after installing $*"
}
