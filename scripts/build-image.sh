#!/usr/bin/env bash
# Build the agent-bom-backup job image (image/Dockerfile, repository root as context).
#
# With docker (when `docker info` works) this is a plain `docker build` on the
# Dockerfile's default base image. Without docker it uses podman and, when they are
# missing, installs podman, runc and debootstrap with apt-get, then creates a Debian
# trixie base image with debootstrap from the Debian mirror configured in /etc/apt (once;
# cached as localhost/debian:trixie-minbase).
#
# The build is skipped when the image under --tag was built from the same inputs
# (image/**, pyproject.toml, .dockerignore, build arguments, base image): their hash is
# stored in the image label io.agent-bom.backup.inputs-sha256.
#
# The last lines on stdout describe the result, one key=value per line (tag, id,
# engine, engine_cmd, containers_conf); everything else goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${REPO_ROOT}/.tools/podman"
HASH_LABEL="io.agent-bom.backup.inputs-sha256"
LOCAL_BASE="localhost/debian:trixie-minbase"
SUITE="trixie"

TAG="localhost/agent-bom-backup:dev"
ENGINE="${AGENT_BOM_BACKUP_ENGINE:-auto}"
BASE_IMAGE=""
PG_MAJORS=""
PGDG_HOST=""
DEBIAN_MIRROR="${DEBIAN_MIRROR:-}"
CA_BUNDLE=""
VERSION=""
REVISION=""
FORCE=0
PULL=0
NO_CACHE=0
REFRESH_BASE=0

usage() {
  cat <<EOF
Usage: scripts/build-image.sh [options]

Build the agent-bom-backup job image from image/Dockerfile (context: the repository root).
Skips the build when the image under --tag already holds the same inputs.

Options:
  --tag TAG             image tag (default: ${TAG})
  --engine ENGINE       auto, podman or docker (default: auto = docker when 'docker info'
                        works, else podman; env AGENT_BOM_BACKUP_ENGINE)
  --base-image IMAGE    base image (default: docker: the Dockerfile's debian:trixie-slim;
                        podman: ${LOCAL_BASE}, made with debootstrap if missing)
  --pg-majors "M ..."   also install postgresql-client-M for these majors from the
                        PostgreSQL project's apt repository (PGDG=true; needs internet)
  --pgdg-host HOST      host of that repository (a mirror; default: the one Debian's
                        postgresql-common setup script names)
  --debian-mirror URL   Debian archive mirror for debootstrap and for apt in the build
                        (default for podman: the one in /etc/apt; env DEBIAN_MIRROR)
  --ca-bundle FILE      CA bundle pip trusts in the build, passed as a build secret
                        (default: \$PIP_CERT, else /etc/ssl/certs/ca-certificates.crt)
  --version VERSION     org.opencontainers.image.version (default: pyproject.toml's)
  --revision REV        org.opencontainers.image.revision (default: git HEAD; not part
                        of the cache key)
  --pull                pull a newer base image (docker/podman --pull) and rebuild
  --refresh-base        podman: recreate ${LOCAL_BASE} with debootstrap
  --no-cache            build every layer anew (no layer cache): with --pull or
                        --refresh-base, today's Debian and PyPI packages (the weekly
                        guardrail's fresh build)
  --force               rebuild even when the inputs are unchanged
  -h, --help            show this help

Result (stdout): tag=, id=, engine=, engine_cmd=, containers_conf= lines.
EOF
}

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] error: %s\n' "$*" >&2; exit 1; }

need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag) need_value "$@"; TAG="$2"; shift 2 ;;
    --tag=*) TAG="${1#*=}"; shift ;;
    --engine) need_value "$@"; ENGINE="$2"; shift 2 ;;
    --engine=*) ENGINE="${1#*=}"; shift ;;
    --base-image) need_value "$@"; BASE_IMAGE="$2"; shift 2 ;;
    --base-image=*) BASE_IMAGE="${1#*=}"; shift ;;
    --pg-majors) need_value "$@"; PG_MAJORS="$2"; shift 2 ;;
    --pg-majors=*) PG_MAJORS="${1#*=}"; shift ;;
    --pgdg-host) need_value "$@"; PGDG_HOST="$2"; shift 2 ;;
    --pgdg-host=*) PGDG_HOST="${1#*=}"; shift ;;
    --debian-mirror) need_value "$@"; DEBIAN_MIRROR="$2"; shift 2 ;;
    --debian-mirror=*) DEBIAN_MIRROR="${1#*=}"; shift ;;
    --ca-bundle) need_value "$@"; CA_BUNDLE="$2"; shift 2 ;;
    --ca-bundle=*) CA_BUNDLE="${1#*=}"; shift ;;
    --version) need_value "$@"; VERSION="$2"; shift 2 ;;
    --version=*) VERSION="${1#*=}"; shift ;;
    --revision) need_value "$@"; REVISION="$2"; shift 2 ;;
    --revision=*) REVISION="${1#*=}"; shift ;;
    --pull) PULL=1; shift ;;
    --no-cache) NO_CACHE=1; shift ;;
    --refresh-base) REFRESH_BASE=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

case "$ENGINE" in
  auto|podman|docker) ;;
  *) die "--engine must be auto, podman or docker, got '${ENGINE}'" ;;
esac
for major in $PG_MAJORS; do
  case "$major" in
    ''|*[!0-9]*) die "--pg-majors takes major versions such as \"15 16\", got '${major}'" ;;
  esac
done

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

as_root() {
  if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    die "'$*' needs root (run as root or install sudo)"
  fi
  "${SUDO[@]}" "$@"
}

# Serialise bootstrap and builds from this checkout (tests in parallel sessions share the cache).
mkdir -p "${REPO_ROOT}/.tools"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${REPO_ROOT}/.tools/build-image.lock"
  flock 9
fi

# ---------------------------------------------------------------------------------------
# Engine

docker_works() {
  command -v docker >/dev/null 2>&1 || return 1
  if command -v timeout >/dev/null 2>&1; then
    timeout 30 docker info >/dev/null 2>&1
  else
    docker info >/dev/null 2>&1
  fi
}

if [ "$ENGINE" = "auto" ]; then
  if docker_works; then ENGINE=docker; else ENGINE=podman; fi
fi

ENGINE_CMD=()
CONTAINERS_CONF_FILE=""

ensure_podman() {
  local packages=() cmd
  for cmd in podman runc; do
    command -v "$cmd" >/dev/null 2>&1 || packages+=("$cmd")
  done
  if [ -z "$BASE_IMAGE" ] || [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
    command -v debootstrap >/dev/null 2>&1 || packages+=(debootstrap)
  fi
  if [ "${#packages[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 \
      || die "podman is missing and there is no apt-get to install ${packages[*]}; install them or use --engine docker"
    log "installing ${packages[*]} with apt-get"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >&2 \
      || die "apt-get could not install ${packages[*]}"
  fi
  # crun fails on some cgroup setups; runc works everywhere podman runs here.
  # The default ulimits podman applies cannot be set in unprivileged nested containers.
  if [ -n "${CONTAINERS_CONF:-}" ]; then
    CONTAINERS_CONF_FILE="$CONTAINERS_CONF"
  else
    mkdir -p "$TOOLS_DIR"
    CONTAINERS_CONF_FILE="${TOOLS_DIR}/containers.conf"
    printf '[containers]\ndefault_ulimits = []\n' > "${CONTAINERS_CONF_FILE}.tmp.$$"
    mv -f "${CONTAINERS_CONF_FILE}.tmp.$$" "$CONTAINERS_CONF_FILE"
  fi
  export CONTAINERS_CONF="$CONTAINERS_CONF_FILE"
  ENGINE_CMD=(podman --runtime runc)
  "${ENGINE_CMD[@]}" info >/dev/null 2>&1 || die "podman does not work here: $("${ENGINE_CMD[@]}" info 2>&1 | tail -n 3)"
}

if [ "$ENGINE" = "docker" ]; then
  docker_works || die "docker is not usable here ('docker info' fails); use --engine podman"
  ENGINE_CMD=(docker)
else
  ensure_podman
fi

engine() { "${ENGINE_CMD[@]}" "$@"; }

# ---------------------------------------------------------------------------------------
# Debian mirror from the host's apt sources (one-line and deb822 formats)

apt_source_uris() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -n -E 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n'
  done
}

host_mirror() {  # $1: debian or debian-security
  apt_source_uris | grep -E "^[a-z+]+://[^[:space:]]*/$1/?\$" | head -n 1 | sed -E 's#/$##' || true
}

if [ -z "$DEBIAN_MIRROR" ] && [ "$ENGINE" = "podman" ]; then
  DEBIAN_MIRROR="$(host_mirror debian)"
fi

# ---------------------------------------------------------------------------------------
# Base image (podman): debootstrap once, cache as ${LOCAL_BASE}

create_local_base() {
  local security rootfs old_base_id release_date
  [ -n "$DEBIAN_MIRROR" ] \
    || die "no Debian mirror found in /etc/apt; pass --debian-mirror URL (or --base-image IMAGE)"
  security="$(host_mirror debian-security)"
  mkdir -p "$TOOLS_DIR"
  rootfs="$(mktemp -d "${TOOLS_DIR}/rootfs.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "as_root rm -rf '${rootfs}'" EXIT
  log "creating ${LOCAL_BASE} with debootstrap (${SUITE}, minbase, ${DEBIAN_MIRROR})"
  if ! as_root debootstrap --variant=minbase "$SUITE" "$rootfs" "$DEBIAN_MIRROR" \
      >"${TOOLS_DIR}/debootstrap.log" 2>&1; then
    tail -n 20 "${TOOLS_DIR}/debootstrap.log" >&2
    die "debootstrap failed (log: ${TOOLS_DIR}/debootstrap.log)"
  fi
  # What the base is: the date of the suite's Release file debootstrap installed from (the
  # Debian archive serves only the current versions, so this date and the package list
  # printed after the build are the record; see docs/releasing.md, "Dependency locks").
  release_date="$(as_root sh -c "sed -n 's/^Date: //p' '${rootfs}'/var/lib/apt/lists/*Release" 2>/dev/null \
    | head -n 1 || true)"
  log "base: Debian ${SUITE} as of ${release_date:-an unknown date} (Release file)"
  # Slim it the way the official -slim images are: no package lists or caches, no docs
  # (copyright files stay), man pages or translations.
  as_root find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  as_root find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  as_root find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  {
    printf 'deb %s %s main\n' "$DEBIAN_MIRROR" "$SUITE"
    printf 'deb %s %s-updates main\n' "$DEBIAN_MIRROR" "$SUITE"
    if [ -n "$security" ]; then printf 'deb %s %s-security main\n' "$security" "$SUITE"; fi
  } | as_root tee "${rootfs}/etc/apt/sources.list" >/dev/null
  old_base_id="$(engine image inspect --format '{{.Id}}' "$LOCAL_BASE" 2>/dev/null || true)"
  as_root tar -C "$rootfs" -c . | engine import --change 'CMD ["/bin/bash"]' \
    --change "LABEL io.agent-bom.backup.base.debian-release-date=\"${release_date:-unknown}\"" \
    - "$LOCAL_BASE" >&2
  as_root rm -rf "$rootfs"
  trap - EXIT
  if [ -n "$old_base_id" ]; then engine image rm "$old_base_id" >/dev/null 2>&1 || true; fi
}

BASE_ID=""
if [ "$ENGINE" = "podman" ] && { [ -z "$BASE_IMAGE" ] || [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; }; then
  BASE_IMAGE="$LOCAL_BASE"
  if [ "$REFRESH_BASE" -eq 1 ] || ! engine image exists "$LOCAL_BASE"; then
    base_start=$SECONDS
    create_local_base
    log "base image ready in $((SECONDS - base_start)) s"
  fi
  BASE_ID="$(engine image inspect --format '{{.Id}}' "$LOCAL_BASE")"
fi

# ---------------------------------------------------------------------------------------
# Build arguments and the cache key

if [ -z "$VERSION" ]; then
  VERSION="$(sed -n -E 's/^version[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' "${REPO_ROOT}/pyproject.toml" | head -n 1)"
  VERSION="${VERSION:-0.0.0-dev}"
fi
if [ -z "$REVISION" ]; then
  REVISION="$(git -C "$REPO_ROOT" rev-parse --verify -q HEAD 2>/dev/null || true)"
fi
if [ -z "$CA_BUNDLE" ]; then
  if [ -n "${PIP_CERT:-}" ] && [ -f "${PIP_CERT}" ]; then
    CA_BUNDLE="$PIP_CERT"
  elif [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
  fi
fi
[ -z "$CA_BUNDLE" ] || [ -r "$CA_BUNDLE" ] || die "--ca-bundle ${CA_BUNDLE} is not readable"

BUILD_ARGS=(--build-arg "VERSION=${VERSION}")
if [ -n "$BASE_IMAGE" ]; then BUILD_ARGS+=(--build-arg "BASE_IMAGE=${BASE_IMAGE}"); fi
if [ -n "$DEBIAN_MIRROR" ]; then BUILD_ARGS+=(--build-arg "DEBIAN_MIRROR=${DEBIAN_MIRROR}"); fi
if [ -n "${PIP_INDEX_URL:-}" ]; then BUILD_ARGS+=(--build-arg "PIP_INDEX=${PIP_INDEX_URL}"); fi
if [ -n "$PG_MAJORS" ]; then
  dirs=""
  # shellcheck disable=SC2086  # split the list on purpose
  for major in $(printf '%s\n' $PG_MAJORS 17 | sort -n -u); do
    dirs="${dirs:+${dirs}:}/usr/lib/postgresql/${major}/bin"
  done
  case " $PG_MAJORS " in *" 18 "*) ;; *) dirs="${dirs}:/opt/pg/18/bin" ;; esac
  BUILD_ARGS+=(--build-arg PGDG=true --build-arg "PGDG_MAJORS=${PG_MAJORS}" --build-arg "PG_BIN_DIRS=${dirs}")
  if [ -n "$PGDG_HOST" ]; then BUILD_ARGS+=(--build-arg "PGDG_HOST=${PGDG_HOST}"); fi
fi

if command -v sha256sum >/dev/null 2>&1; then SHA256=(sha256sum); else SHA256=(shasum -a 256); fi

inputs_hash() {
  {
    printf 'engine=%s\nbase=%s\nbase-id=%s\n' "$ENGINE" "$BASE_IMAGE" "$BASE_ID"
    printf 'arg=%s\n' "${BUILD_ARGS[@]}"
    cd "$REPO_ROOT"
    find image pyproject.toml .dockerignore -type f \
      ! -path '*/__pycache__/*' ! -name '*.py[cod]' ! -path '*.egg-info/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 "${SHA256[@]}"
  } | "${SHA256[@]}" | cut -d ' ' -f 1
}
HASH="$(inputs_hash)"

report() {
  local id
  id="$(engine image inspect --format '{{.Id}}' "$TAG")"
  log "image ${TAG} (${id})"
  printf 'tag=%s\nid=%s\nengine=%s\nengine_cmd=%s\ncontainers_conf=%s\n' \
    "$TAG" "$id" "$ENGINE" "${ENGINE_CMD[*]}" "$CONTAINERS_CONF_FILE"
}

if [ "$FORCE" -eq 0 ] && [ "$PULL" -eq 0 ] && [ "$NO_CACHE" -eq 0 ] && engine image inspect "$TAG" >/dev/null 2>&1; then
  current="$(engine image inspect --format "{{ index .Config.Labels \"${HASH_LABEL}\" }}" "$TAG" 2>/dev/null || true)"
  if [ "$current" = "$HASH" ]; then
    log "${TAG} is up to date (inputs ${HASH:0:12}); --force rebuilds"
    report
    exit 0
  fi
fi

# ---------------------------------------------------------------------------------------
# Build

BUILD=(build --file "${REPO_ROOT}/image/Dockerfile" --tag "$TAG" --label "${HASH_LABEL}=${HASH}"
       --build-arg "REVISION=${REVISION}" "${BUILD_ARGS[@]}")
if [ -n "$CA_BUNDLE" ]; then BUILD+=(--secret "id=pip_ca,src=${CA_BUNDLE}"); fi
if [ "$PULL" -eq 1 ] && [ "$BASE_IMAGE" != "$LOCAL_BASE" ]; then BUILD+=(--pull); fi
if [ "$NO_CACHE" -eq 1 ]; then BUILD+=(--no-cache); fi
if [ "$ENGINE" = "podman" ]; then BUILD+=(--network host); fi

previous_id="$(engine image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
log "building ${TAG} with ${ENGINE} (base: ${BASE_IMAGE:-Dockerfile default}; version ${VERSION})"
build_start=$SECONDS
engine "${BUILD[@]}" "$REPO_ROOT" >&2 || die "image build failed (see above)"
log "built in $((SECONDS - build_start)) s"
# What the image holds, printed and kept: every Debian package and every Python distribution
# of /opt/venv (the latter installed from image/requirements.lock with --require-hashes).
INSTALLED_LIST="${TOOLS_DIR}/installed-$(printf '%s' "$TAG" | tr -c 'A-Za-z0-9._-' '_').txt"
RUN_OPTS=(run --rm)
if [ "$ENGINE" = "podman" ]; then RUN_OPTS+=(--network host); fi
mkdir -p "$TOOLS_DIR"
{
  printf '# %s: Debian packages (dpkg-query -W)\n' "$TAG"
  # shellcheck disable=SC2016  # dpkg-query's own format fields, not shell expansions
  engine "${RUN_OPTS[@]}" --entrypoint dpkg-query "$TAG" -W -f '${Package}=${Version}\n'
  printf '# %s: Python distributions in /opt/venv\n' "$TAG"
  engine "${RUN_OPTS[@]}" --entrypoint /opt/venv/bin/python "$TAG" -c \
    'import importlib.metadata as m; print("\n".join(sorted(d.name + "==" + d.version for d in m.distributions())))'
} >"${INSTALLED_LIST}.tmp" || die "could not list what ${TAG} holds"
mv -f "${INSTALLED_LIST}.tmp" "$INSTALLED_LIST"
log "installed in ${TAG} (kept in ${INSTALLED_LIST}):"
sed 's/^/[build-image]   /' "$INSTALLED_LIST" >&2
# Drop the image this tag pointed to before, unless something still uses it.
current_id="$(engine image inspect --format '{{.Id}}' "$TAG")"
if [ -n "$previous_id" ] && [ "$previous_id" != "$current_id" ]; then
  engine image rm "$previous_id" >/dev/null 2>&1 || true
fi
# podman keeps each build's builder stage as an untagged image: keep the newest (the
# layer cache of the next build) and drop the older ones.
if [ "$ENGINE" = "podman" ]; then
  engine images --filter dangling=true --filter "label=io.agent-bom.backup.stage=builder" \
      --format '{{.CreatedAt}}|{{.ID}}' 2>/dev/null | sort -r | tail -n +2 | cut -d '|' -f 2 \
    | while read -r stale_id; do engine image rm "$stale_id" >/dev/null 2>&1 || true; done
fi
report
