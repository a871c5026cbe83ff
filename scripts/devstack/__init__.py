"""The development stack: throwaway PostgreSQL servers, local S3 servers (moto, Ceph RGW),
an OCI registry, the job image, the chart rendered with helm, generated doc pages.

Used by the README's drill (``scripts/drill.py``), the benchmarks (``bench/``) and the
test suite alike; nothing here is test code. Everything drives real programs that
``scripts/bootstrap.sh`` installs; :mod:`devstack.tools` resolves their paths.

Import it with ``scripts/`` on ``sys.path`` (pytest's ``pythonpath`` setting does that
for the tests): ``from devstack.pgcluster import PgCluster``.
"""
