"""The rendered backup CronJob's pod, run in the job image as the kubelet would, pushes its
metrics to a real Pushgateway and pings its check with the URLs from the notify Secret
(values: metrics.pushgateway.url, notify.existingSecret): what the chart and the image
promise together, end to end."""

from __future__ import annotations

import os
import subprocess
import uuid
from typing import Any

import pytest

from devstack.jobimage import ContainerEngine
from devstack.pgcluster import PgCluster
from devstack.podrun import container_run
from devstack.pushgateway import HttpReceiver, Pushgateway
from devstack.s3server import MotoServer
from tests.chart.helm_render import CRONJOB_TEMPLATE, backup_values, pod_spec, render_chart
from tests.image.test_pod_spec import REGION, seeded_database
from tests.support import buckets

pytestmark = pytest.mark.image

TOKEN = f"pod-{uuid.uuid4().hex}"


def _pod(s3: MotoServer, bucket: str, image: str, gateway: Pushgateway) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    values = backup_values(
        image={"repository": repository, "tag": tag, "pullPolicy": "Never"},
        database={"existingSecret": "agent-bom-postgres"},
        destination={"bucket": bucket, "bucketRegion": REGION, "endpointUrl": s3.endpoint_url, "pathStyle": True,
                     "encryption": {"enabled": False, "kmsKeyId": ""},
                     "staticCredentials": {"enabled": True, "existingSecret": "agent-bom-backup-s3"}},
        metrics={"pushgateway": {"url": gateway.url}},
        notify={"existingSecret": "agent-bom-notify"},
    )
    (cronjob,) = render_chart(values, show_only=[CRONJOB_TEMPLATE])
    return pod_spec(cronjob)


def test_pod_pushes_and_pings_with_values_from_its_secret(
    pg15: PgCluster, s3: MotoServer, job_image: str, container_engine: ContainerEngine, gateway: Pushgateway,
    receiver: HttpReceiver,
) -> None:
    with buckets.fresh_bucket(s3, "abb-notify-pod") as bucket:
        database, _seeded = seeded_database(pg15)
        secrets = {
            "agent-bom-postgres": {"AGENT_BOM_POSTGRES_URL": pg15.superuser_url(database)},
            "agent-bom-backup-s3": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
            # one check per job: only the backup's key here, and the webhook
            "agent-bom-notify": {"backupPingUrl": f"{receiver.url}/ping/{TOKEN}",
                                 "webhookUrl": f"{receiver.url}/hook/{TOKEN}"},
        }
        run = container_run(_pod(s3, bucket, job_image, gateway), container_engine.command, secrets=secrets,
                            namespace="agent-bom")
        try:
            result = subprocess.run(run.argv, env={**os.environ, **container_engine.env, **run.env},
                                    capture_output=True, text=True, timeout=300)
        finally:
            run.cleanup()
    requests = [(r.method, r.path) for r in receiver.take()]
    pushed = {name for (name, labels), _value in gateway.samples().items()
              if ("cronjob", "agent-bom-control-plane-backup") in labels and ("namespace", "agent-bom") in labels}
    assert (result.returncode, requests, "agent_bom_backup_last_success_timestamp_seconds" in pushed,
            TOKEN in result.stderr + result.stdout) == (
        0, [("POST", f"/ping/{TOKEN}/start"), ("POST", f"/ping/{TOKEN}"), ("POST", f"/hook/{TOKEN}")], True, False), \
        result.stderr[-3000:]
