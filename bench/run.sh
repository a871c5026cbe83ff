#!/usr/bin/env bash
# One command for the whole benchmark: install what it needs, then run bench/run.py.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/run.sh [--quick] [--scale SIZE]... [--s3 moto|rgw]... [OPTIONS...]

Generates control-plane databases (default ~100MB and ~1GB), builds the job image,
starts PostgreSQL and the S3 servers (moto and Ceph RGW), and measures, per S3 server,
runner (the host CLI; the job image running the chart's rendered CronJob pod), compression
setting and repetition: pg_dump to /dev/null (limit A), the upload of the same bytes
alone (limit B), pg_dump to a file + aws s3 cp (the two-step peer, host), agent-bom-backup
backup, and the restore script vs. download + pg_restore -j 2, with peak RSS and CPU time
of every process tree.

Writes bench/results/<date>.json, <date>.md and <date>-*.png (see docs/performance.md).

  --quick             smoke mode: ~20MB, 1 repetition, moto, each runner's default plus
                      the two-step reference; files named <date>-quick
  --scale SIZE        database size, e.g. 100MB or 1GB (repeatable)
  --s3 SERVER         moto or rgw (repeatable; default both, --quick: moto)
  --no-image          the host CLI only (no container engine needed)
  --image TAG         use this job image instead of building this checkout's
  --reps N            repetitions per measurement (default 3)
  --settings LIST     compression settings, e.g. zstd:1,gzip:6,gzip:1,none
  --pg-major 15|18    server and host client major (default 15, Debian)
  --results-dir DIR   where results go (default bench/results)
  --work-dir DIR      cached cluster and scratch files (default bench/.work)
  --quiet-wait SECS   wait up to SECS before each command for other load to calm
                      down (default 4; --quick: 0)
  --regenerate        rebuild the generated databases
  --update-docs       put this run's summary into docs/performance.md
  --patched-src DIR   run the CLI from a patched copy of the package (host and image)
  --cli-env N=V       extra environment for the CLI (repeatable)
  -h, --help          this help (bench/run.py --help has the full list)

First run: scripts/bootstrap.sh installs PostgreSQL, the venv (.tools/venv), Helm and
podman (for the image) and Ceph (for --s3 rgw, where the bootstrap knows it); this script
adds the pyproject 'bench' extras (matplotlib, psutil, awscli) to that venv.
USAGE
}

# the bootstrap components this run needs: the image needs helm (the rendered pod spec)
# and podman; RGW needs Ceph
components=(python postgres)
image=1
quick=0
stores=""
previous=""
for arg in "$@"; do
    case $arg in
    -h | --help)
        usage
        exit 0
        ;;
    --no-image) image=0 ;;
    --quick) quick=1 ;;
    --s3=*) stores+=",${arg#--s3=}" ;;
    esac
    [[ $previous == --s3 ]] && stores+=",$arg"
    previous=$arg
done
[[ $image == 1 ]] && components+=(helm podman)
if [[ -z $stores && $quick == 0 ]] || [[ $stores == *rgw* ]]; then
    wants_rgw=1
else
    wants_rgw=0
fi

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}
PYTHON=$TOOLS_DIR/venv/bin/python

if [[ $wants_rgw == 1 ]]; then
    # a checkout without the RGW starter has no such component; run.py then says what is missing
    bootstrap_help=$("$REPO_ROOT/scripts/bootstrap.sh" --help)
    [[ $bootstrap_help == *$'\n  rgw '* ]] && components+=(rgw)
fi
"$REPO_ROOT/scripts/bootstrap.sh" -q "${components[@]}"

# the 'bench' extras of pyproject.toml: the bootstrap installs them from locks/dev.txt
mapfile -t BENCH_REQS < <("$PYTHON" - "$REPO_ROOT/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["optional-dependencies"]["bench"]))
PY
)
if ! "$PYTHON" - "${BENCH_REQS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        if not req.specifier.contains(version(req.name), prereleases=True):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
    echo "bench: error: ${BENCH_REQS[*]} not all in $TOOLS_DIR/venv: run scripts/bootstrap.sh python" \
        "(it installs locks/dev.txt, which holds the bench extra)" >&2
    exit 1
fi

cd "$REPO_ROOT"
exec "$PYTHON" "$REPO_ROOT/bench/run.py" "$@"
