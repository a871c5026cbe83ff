#!/usr/bin/env bash
# One command for the whole benchmark: install what it needs, then run bench/run.py.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/run.sh [--quick] [--scale SIZE]... [--reps N] [OPTIONS...]

Generates control-plane databases (default ~100MB and ~1GB), starts PostgreSQL and a
local S3 server (moto), and measures, per compression setting and repetition:
pg_dump to /dev/null (limit A), boto3 upload of the dump (limit B), pg_dump to a file
+ aws s3 cp (the two-step peer), agent-bom-backup backup, and agent-bom-backup restore
vs. download + pg_restore -j 2, with peak RSS of every process tree.

Writes bench/results/<date>.json, <date>.md and <date>-*.png (see docs/performance.md).

  --quick             smoke mode: ~20MB, 1 repetition, files named <date>-quick
  --scale SIZE        database size, e.g. 100MB or 1GB (repeatable)
  --reps N            repetitions per measurement (default 3)
  --settings LIST     compression settings, e.g. gzip:6,gzip:1,none
  --pg-major 15|18    server and client major (default 15, Debian)
  --results-dir DIR   where results go (default bench/results)
  --work-dir DIR      cached cluster and scratch files (default bench/.work)
  --quiet-wait SECS   wait up to SECS before each command for other load to calm
                      down (default 4; --quick: 0)
  --regenerate        rebuild the generated databases
  --update-docs       put this run's summary into docs/performance.md
  --patched-src DIR   run the CLI with PYTHONPATH=DIR (measure a patched package)
  -h, --help          this help (bench/run.py --help has the full list)

First run: scripts/bootstrap.sh installs PostgreSQL and the venv (.tools/venv); this
script adds the pyproject 'bench' extras (matplotlib, psutil, awscli) to that venv.
USAGE
}

for arg in "$@"; do
    if [[ $arg == "-h" || $arg == "--help" ]]; then
        usage
        exit 0
    fi
done

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${AGENT_BOM_TOOLS_DIR:-$REPO_ROOT/.tools}
PYTHON=$TOOLS_DIR/venv/bin/python

"$REPO_ROOT/scripts/bootstrap.sh" -q python postgres

# the 'bench' extras of pyproject.toml, installed only when one is missing
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
    echo "bench: installing ${BENCH_REQS[*]} into $TOOLS_DIR/venv" >&2
    "$PYTHON" -m pip install --quiet "${BENCH_REQS[@]}"
fi

cd "$REPO_ROOT"
exec "$PYTHON" "$REPO_ROOT/bench/run.py" "$@"
