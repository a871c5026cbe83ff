"""Test helpers: running the CLI, buckets, fault-injecting S3 proxy.

The servers themselves (PostgreSQL, S3, the job image) are the development stack in
``scripts/devstack`` (imported as ``devstack``), shared with the drill and the benchmarks.
"""
