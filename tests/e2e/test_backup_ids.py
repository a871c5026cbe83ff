"""Backup ids are names in start order (issue 27, item 5): a run whose second is used takes
the next free one and overwrites nothing, also when the objects there are an old release's
(no claim object); old ids (the golden backups of 0.1.0 and 0.2.0) list and prune beside
new ones. Two runs started in the same second: tests/reliability (concurrent-backups-same-second)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from agent_bom_backup.manifest import backup_id_for
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
OCCUPIED_SECONDS = 6


def test_a_run_passes_over_seconds_an_old_release_used(s3: MotoServer, bucket: str,
                                                        source15: postgres.Database) -> None:
    """Dump, roles and manifest at the next seconds' ids and no claim (what releases before
    the claim wrote): the run neither refuses nor writes there; it lands after them (at the
    first free second, or its own start if that is later)."""
    client = s3.client()
    start = int(time.time())
    occupied = {}
    for offset in range(OCCUPIED_SECONDS):
        backup_id = backup_id_for(datetime.fromtimestamp(start + offset, timezone.utc))
        for suffix in (".dump", ".roles.sql", ".manifest.json"):
            key = f"{cli.PREFIX}/{backup_id}{suffix}"
            occupied[key] = f"old release {backup_id}{suffix}".encode()
            client.put_object(Bucket=bucket, Key=key, Body=occupied[key])
    run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source15.url))
    new_key = run.uri.removeprefix(f"s3://{bucket}/")
    first_free = f"{cli.PREFIX}/{backup_id_for(datetime.fromtimestamp(start + OCCUPIED_SECONDS, timezone.utc))}.dump"
    assert (run.returncode, new_key, {k: buckets.get_object(client, bucket, k) for k in occupied}) == (
        0, max(first_free, new_key), occupied), str(run)


def test_golden_backups_list_and_prune_beside_a_new_one(s3: MotoServer, bucket: str,
                                                        source15: postgres.Database) -> None:
    client = s3.client()
    golden_ids = []
    for directory in sorted(p for p in GOLDEN.iterdir() if p.is_dir()):
        (manifest,) = directory.glob("*.manifest.json")
        golden_ids.append(manifest.name.removesuffix(".manifest.json"))
        for path in directory.iterdir():
            client.put_object(Bucket=bucket, Key=f"{cli.PREFIX}/{path.name}", Body=path.read_bytes())
    new = cli.take_backup(s3, bucket, source15.url)
    env = cli.job_env(s3.endpoint_url, bucket)
    listed = json.loads(cli.run_cli(["list", "--json"], env).stdout)["backups"]
    pruned = cli.run_cli(["prune", "--keep-days", "0", "--keep-last", "1", "--yes"], env)
    remaining = {k.rsplit("/", 1)[-1].split(".", 1)[0] for k in buckets.object_keys(client, bucket)}
    assert ([(b["backup_id"], b["state"]) for b in listed], pruned.returncode, remaining) == (
        [(new.manifest["backup_id"], "complete")] + [(i, "complete") for i in reversed(golden_ids)], 0,
        {new.manifest["backup_id"]}), pruned.stdout + pruned.stderr
