"""Stream a synthetic dump through the backup's uploader under a memory budget, in a
process of its own, and print the outcome as one JSON line.

    python tests/e2e/stream_upload.py ENDPOINT BUCKET KEY BYTES BUDGET FIRST_PART GROWTH_INTERVAL

The dump is BYTES zero bytes read from /dev/zero the way the backup reads pg_dump's pipe
(``readinto`` into the part buffers: no copies), through the same path as the backup
(``parts.PartReader`` reading ahead, ``storage.StreamUploader``). Credentials come from
the environment. tests/e2e/test_memory_budget.py runs it and samples its memory.
"""

from __future__ import annotations

import json
import resource
import sys

from agent_bom_backup.parts import PartReader, PartSchedule, fill_with, plan_upload
from agent_bom_backup.resources import MemoryBudget
from agent_bom_backup.storage import StorageConfig, StreamUploader, make_client


def main(argv: list[str]) -> int:
    endpoint, bucket, key, size, budget, first_part, growth_interval = argv
    config = StorageConfig(bucket=bucket, region="us-east-1", endpoint_url=endpoint, path_style=True)
    schedule = PartSchedule(int(first_part), int(growth_interval))
    uploader = StreamUploader(make_client(config), config, key, plan_upload(schedule, 4, MemoryBudget(int(budget), "test")))
    zeros = open("/dev/zero", "rb", buffering=0)  # noqa: SIM115 - read until the process ends
    remaining = int(size)

    def readinto(view: memoryview) -> int:
        nonlocal remaining
        count = zeros.readinto(view[: min(len(view), remaining)]) if remaining else 0
        remaining -= count
        return count

    parts = PartReader(uploader.plan, fill_with(readinto=readinto))
    result = uploader.upload(parts=parts)
    largest = max(uploader.plan.schedule.size(n) for n in range(1, result.parts + 1))
    print(json.dumps({
        "size": result.size, "sha256": result.sha256, "parts": result.parts, "largest_part": largest,
        "buffer_bytes": uploader.plan.buffer_bytes, "buffer_peak": parts.buffers.peak,
        "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
