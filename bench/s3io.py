"""Plain boto3 transfers for the benchmark's floor and baseline measurements.

    python bench/s3io.py upload FILE KEY      limit B: boto3 upload_file of a local file
    python bench/s3io.py download KEY FILE    restore baseline: boto3 download_file

The endpoint, bucket and credentials come from the environment (BENCH_S3_ENDPOINT,
BENCH_S3_BUCKET, AWS_*). The client is configured like agent-bom-backup's own for a
custom endpoint (path-style, checksums ``when_required``) and uploads with its part size
and concurrency (BENCH_PART_SIZE bytes, BENCH_CONCURRENCY; default: the CLI's defaults),
so the comparison measures the transfer strategy, not different settings. Downloads use
one GET (BENCH_S3_DOWNLOAD=single) or boto3's parallel ranged GETs (``ranged``: 8 MiB
ranges, 10 threads, what ``aws s3 cp`` does). Prints one JSON line:
``{"seconds": <transfer time>, "cpu_s": <its CPU time>, "bytes": <size>}`` (the transfer
alone, without the interpreter's start-up and imports).
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3
from agent_bom_backup.parts import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MiB = 1024 * 1024
GiB = 1024 * MiB
#: one GET: boto3's download_file otherwise fetches ranges in parallel (even below
#: ``multipart_threshold``: it learns the size from the first ranged GET)
SINGLE_GET = TransferConfig(multipart_threshold=5 * GiB, multipart_chunksize=5 * GiB, max_concurrency=4)
RANGED_GETS = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=10)


def upload_config() -> TransferConfig:
    part = int(os.environ.get("BENCH_PART_SIZE") or DEFAULT_PART_SIZE)
    concurrency = int(os.environ.get("BENCH_CONCURRENCY") or DEFAULT_CONCURRENCY)
    return TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=concurrency)


def client():  # type: ignore[no-untyped-def]
    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=10,
    )
    return boto3.client("s3", endpoint_url=os.environ["BENCH_S3_ENDPOINT"], config=config)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("upload", "download"):
        print(__doc__, file=sys.stderr)
        return 2
    s3 = client()
    bucket = os.environ["BENCH_S3_BUCKET"]
    started, cpu_started = time.monotonic(), time.process_time()
    if argv[0] == "upload":
        path, key = argv[1], argv[2]
        s3.upload_file(path, bucket, key, Config=upload_config())
    else:
        key, path = argv[1], argv[2]
        ranged = os.environ.get("BENCH_S3_DOWNLOAD", "single") == "ranged"
        s3.download_file(bucket, key, path, Config=RANGED_GETS if ranged else SINGLE_GET)
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "bytes": os.path.getsize(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
