"""Ceph RGW 16, a real S3 implementation, where it differs from AWS (issue 17): each
behaviour is first shown with boto3 alone, then what the job makes of it.

1. Requested encryption silently not applied: confirmed from the answers, or refused.
2. CompleteMultipartUpload answers an empty ETag: nothing depends on it.
3. ``If-None-Match: *`` honoured on PutObject, ignored on CompleteMultipartUpload: the
   backup id is taken by a conditional claim object instead (the run that loses it takes
   the next second).
4. GetBucketLocation answers the zonegroup (``default``): no AWS region, not a mismatch.
5. https + botocore's default aws-chunked uploads: ``411 MissingContentLength``.
6. Error bodies without ``<Message>``: every error line still says what to do.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import pytest
from agent_bom_backup.parts import MIN_PART_SIZE, PartSchedule, plan_upload
from agent_bom_backup.resources import memory_budget
from agent_bom_backup.storage import (
    StorageConfig,
    StreamUploader,
    make_client,
    multipart_etag,
    storage_error,
)
from botocore.exceptions import ClientError

from devstack.pgcluster import PgCluster
from devstack.rgw import ZONEGROUP_API_NAME, RgwServer
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from tests.support.stores import STORE_NAMES, Store, store_for

KEY = f"{cli.PREFIX}/agent-bom-20000101T000000Z.dump"


@pytest.fixture(scope="module")
def source(pg15: PgCluster) -> postgres.Database:
    return postgres.seeded_database(pg15, "rgwsrc")


@pytest.fixture
def rgw_bucket(rgw: RgwServer) -> Iterator[str]:
    with buckets.fresh_bucket(rgw, "abb-rgw") as name:
        yield name


def _https_env(rgw: RgwServer, bucket: str, database_url: str | None = None, **extra: str) -> dict[str, str]:
    return cli.job_env(rgw.https_endpoint_url, bucket, database_url, AGENT_BOM_BACKUP_CA_BUNDLE=str(rgw.ca_file),
                       **extra)


def _single_error(run: cli.Run) -> str:
    assert len(run.errors) == 1, str(run)
    return run.error_message


# ------------------------------------------------------------------ 1. encryption
def test_rgw_accepts_sse_s3_and_confirms_nothing(rgw: RgwServer, rgw_bucket: str) -> None:
    answer = rgw.client().put_object(Bucket=rgw_bucket, Key="probe", Body=b"x", ServerSideEncryption="AES256")
    head = rgw.client().head_object(Bucket=rgw_bucket, Key="probe")
    assert (answer.get("ServerSideEncryption"), head.get("ServerSideEncryption")) == (None, None)


@pytest.fixture(scope="module")
def unconfirmed(rgw: RgwServer, source: postgres.Database) -> Iterator[tuple[cli.Run, list[str], list[str]]]:
    """A backup asking for SSE-S3 (AES256), which RGW 16 accepts and does not apply."""
    with buckets.fresh_bucket(rgw, "abb-rgw-sse") as bucket:
        run = cli.backup(cli.job_env(rgw.endpoint_url, bucket, source.url, AGENT_BOM_BACKUP_SSE="AES256"))
        yield run, buckets.object_keys(rgw.client(), bucket), buckets.open_upload_keys(rgw.client(), bucket)


def test_unconfirmed_encryption_is_refused(unconfirmed: tuple[cli.Run, list[str], list[str]]) -> None:
    run, _, _ = unconfirmed
    assert run.returncode == 8, str(run)


def test_unconfirmed_encryption_error_says_what_and_what_to_do(
    unconfirmed: tuple[cli.Run, list[str], list[str]]
) -> None:
    message = _single_error(unconfirmed[0])
    assert message.startswith("the store did not confirm server-side encryption AES256 of s3://") and (
        "its PutObject answer names none" in message and "rgw crypt s3 kms backend" in message
        and "AGENT_BOM_BACKUP_SSE=none" in message), message


def test_unconfirmed_encryption_stops_before_any_upload(unconfirmed: tuple[cli.Run, list[str], list[str]]) -> None:
    _, keys, uploads = unconfirmed
    # the claim (the first write) was not confirmed: no dump, no upload, no manifest
    assert (buckets.without_claims(keys), len(buckets.claims(keys)), uploads) == ([], 1, [])


@pytest.fixture(scope="module")
def kms_backup(rgw: RgwServer, source: postgres.Database) -> Iterator[cli.Backup]:
    """SSE-KMS through RGW's testing KMS backend, over https: applied and confirmed."""
    with buckets.fresh_bucket(rgw, "abb-rgw-kms") as bucket:
        env = _https_env(rgw, bucket, source.url, AGENT_BOM_BACKUP_SSE="aws:kms",
                         AGENT_BOM_BACKUP_KMS_KEY_ID=rgw.kms_key_id)
        run = cli.backup(env, "--compression", "none", "--part-size", "5MiB")
        assert run.returncode == 0, str(run)
        key = run.uri.removeprefix(f"s3://{bucket}/")
        yield cli.Backup(bucket, key, buckets.read_manifest(rgw.client(tls=True), bucket, key), run)


def test_confirmed_kms_encryption_is_recorded(kms_backup: cli.Backup, rgw: RgwServer) -> None:
    confirmed = kms_backup.manifest["storage"]["encryption_confirmed"]
    assert (confirmed["mode"], confirmed["kms_key_id"]) == ("aws:kms", rgw.kms_key_id)


def test_rgw_confirms_the_dump_by_its_parts_not_its_completion(kms_backup: cli.Backup) -> None:
    parts = kms_backup.manifest["dump"]["parts"]
    objects = kms_backup.manifest["storage"]["encryption_confirmed"]["objects"]
    assert objects[kms_backup.key] == ["CreateMultipartUpload", f"UploadPart ({parts} of {parts})"]


def test_every_object_is_encrypted_with_the_key(kms_backup: cli.Backup, rgw: RgwServer) -> None:
    heads = [rgw.client().head_object(Bucket=kms_backup.bucket, Key=key)
             for key in (*kms_backup.keys, kms_backup.claim_key)]
    assert {(h.get("ServerSideEncryption"), h.get("SSEKMSKeyId")) for h in heads} == {("aws:kms", rgw.kms_key_id)}


def test_encryption_over_http_is_refused_by_rgw_with_a_clear_line(
    rgw: RgwServer, rgw_bucket: str, source: postgres.Database
) -> None:
    env = cli.job_env(rgw.endpoint_url, rgw_bucket, source.url, AGENT_BOM_BACKUP_SSE="aws:kms",
                      AGENT_BOM_BACKUP_KMS_KEY_ID=rgw.kms_key_id)
    with rgw.config("rgw_crypt_require_ssl", "true", restore="false"):
        run = cli.backup(env)
    message = _single_error(run)
    assert (run.returncode, "refused the write with server-side encryption aws:kms (InvalidRequest)" in message,
            "rgw crypt require ssl" in message, "None" in message) == (6, True, True, False), message


# ------------------------------------------------------------------ 2. empty ETag on completion
def _rgw_uploader(rgw: RgwServer, bucket: str) -> StreamUploader:
    config = StorageConfig(bucket=bucket, region="us-east-1", endpoint_url=rgw.endpoint_url, path_style=True)
    return StreamUploader(make_client(config), config, KEY, plan_upload(PartSchedule(MIN_PART_SIZE), 2, memory_budget()))


def test_rgw_completes_multipart_uploads_with_an_empty_etag(rgw: RgwServer, rgw_bucket: str) -> None:
    client = rgw.client()
    upload = client.create_multipart_upload(Bucket=rgw_bucket, Key=KEY)
    part = client.upload_part(Bucket=rgw_bucket, Key=KEY, UploadId=upload["UploadId"], PartNumber=1, Body=b"x")
    answer = client.complete_multipart_upload(Bucket=rgw_bucket, Key=KEY, UploadId=upload["UploadId"],
                                              MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    listed = client.list_objects_v2(Bucket=rgw_bucket, Prefix=KEY)["Contents"][0]["ETag"]
    assert (answer["ETag"], listed.strip('"')) == ("", multipart_etag([{"ETag": part["ETag"]}]))


def test_uploader_needs_no_etag_from_the_completion(rgw: RgwServer, rgw_bucket: str) -> None:
    data = os.urandom(MIN_PART_SIZE + 1000)
    result = _rgw_uploader(rgw, rgw_bucket).upload(io.BytesIO(data).read)
    stored = buckets.get_object(rgw.client(), rgw_bucket, KEY)
    assert (result.parts, result.sha256, buckets.sha256(stored)) == (2, buckets.sha256(data), buckets.sha256(data))


# ------------------------------------------------------------------ 3. If-None-Match
def test_rgw_honours_if_none_match_on_put_object(rgw: RgwServer, rgw_bucket: str) -> None:
    client = rgw.client()
    client.put_object(Bucket=rgw_bucket, Key="claim", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=rgw_bucket, Key="claim", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"


def test_rgw_ignores_if_none_match_on_complete_multipart_upload(rgw: RgwServer, rgw_bucket: str) -> None:
    client = rgw.client()
    for body in (b"first", b"second"):
        upload = client.create_multipart_upload(Bucket=rgw_bucket, Key=KEY)
        part = client.upload_part(Bucket=rgw_bucket, Key=KEY, UploadId=upload["UploadId"], PartNumber=1, Body=body)
        client.complete_multipart_upload(Bucket=rgw_bucket, Key=KEY, UploadId=upload["UploadId"], IfNoneMatch="*",
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert buckets.get_object(client, rgw_bucket, KEY) == b"second"  # overwritten despite If-None-Match


# two runs that start in the same second pick the same backup id: on both servers the claim
# decides who keeps it, the other run takes the next second, and both write a backup
def _start_at_next_second(offset: float = 0.05) -> None:
    time.sleep(1 - (time.time() % 1) + offset)


def _two_runs_at_once(env: dict[str, str]) -> list[cli.Run]:
    _start_at_next_second()
    jobs = [cli.Job([cli.executable(), "backup"], env) for _ in range(2)]
    return [job.wait() for job in jobs]


def _moved(run: cli.Run) -> bool:
    return any("was taken by another run" in line["message"] for line in run.log)


@pytest.mark.parametrize("store_name", [n for n in STORE_NAMES if n != "rgw-https"])
def test_two_runs_in_one_second_write_two_backups(
    store_name: str, request: pytest.FixtureRequest, source: postgres.Database
) -> None:
    store: Store = store_for(store_name, request)
    for _attempt in range(3):
        with store.bucket("abb-same-second") as bucket:
            runs = _two_runs_at_once(store.job_env(bucket, source.url))
            keys = buckets.object_keys(store.client(), bucket)
        if any(_moved(r) for r in runs):
            break  # else they straddled a second: again
    dumps = sorted(r.uri.removeprefix(f"s3://{bucket}/") for r in runs if r.returncode == 0)
    expected = sorted(k for key in dumps for k in (*buckets.backup_keys(key), buckets.claim_key(key)))
    assert ([r.returncode for r in runs], sum(_moved(r) for r in runs), len(set(dumps)), keys) == (
        [0, 0], 1, 2, expected), "\n".join(map(str, runs))


# ------------------------------------------------------------------ 4. GetBucketLocation
def test_rgw_reports_its_zonegroup_as_the_location(rgw: RgwServer, rgw_bucket: str) -> None:
    assert rgw.client().get_bucket_location(Bucket=rgw_bucket)["LocationConstraint"] == ZONEGROUP_API_NAME


def test_zonegroup_location_is_not_a_region_mismatch(rgw: RgwServer, rgw_bucket: str) -> None:
    run = cli.run_cli(["preflight", "--skip-database"], cli.job_env(rgw.endpoint_url, rgw_bucket))
    notes = [r["message"] for r in run.log if "is not an AWS region name" in r["message"]]
    assert (run.returncode, notes) == (0, [
        "preflight: the store reports the bucket's location as 'default', which is not an AWS region name "
        "(an S3-compatible store's zonegroup or location): not compared with us-east-1"]), str(run)


# ------------------------------------------------------------------ 5. https and checksums
def test_auto_checksums_back_up_over_https(rgw: RgwServer, rgw_bucket: str, source: postgres.Database) -> None:
    run = cli.backup(_https_env(rgw, rgw_bucket, source.url))
    assert run.returncode == 0, str(run)


def test_forced_when_supported_gets_411_and_a_clear_line(rgw: RgwServer, rgw_bucket: str, source: postgres.Database) -> None:
    run = cli.backup(_https_env(rgw, rgw_bucket, source.url, AGENT_BOM_BACKUP_CHECKSUM_MODE="when_supported"))
    message = _single_error(run)
    assert (run.returncode, "the store answered 411 MissingContentLength" in message,
            "set checksumMode to auto or when_required (AGENT_BOM_BACKUP_CHECKSUM_MODE)" in message) == (
        6, True, True), message


# ------------------------------------------------------------------ 6. errors without <Message>
def _rgw_errors(rgw: RgwServer, bucket: str) -> dict[str, ClientError]:
    """Real RGW error answers, one per kind, as botocore raises them."""
    client, found = rgw.client(), {}
    chunked = rgw.client(tls=True, checksum_mode="when_supported")
    client.put_object(Bucket=bucket, Key="taken", Body=b"x")
    attempts = {
        "NoSuchKey": lambda: client.get_object(Bucket=bucket, Key="missing"),
        "NoSuchBucket": lambda: client.list_objects_v2(Bucket=bucket + "-missing"),
        "PreconditionFailed": lambda: client.put_object(Bucket=bucket, Key="taken", Body=b"y", IfNoneMatch="*"),
        "NoSuchUpload": lambda: client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId="2~nope"),
        "MissingContentLength": lambda: chunked.put_object(Bucket=bucket, Key="chunked", Body=b"x"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except ClientError as exc:
            found[name] = exc
    return found


def test_rgw_errors_come_without_a_message(rgw: RgwServer, rgw_bucket: str) -> None:
    errors = _rgw_errors(rgw, rgw_bucket)
    assert {name: exc.response["Error"].get("Message") for name, exc in errors.items()} == {
        name: None for name in ("NoSuchKey", "NoSuchBucket", "PreconditionFailed", "NoSuchUpload",
                                "MissingContentLength")}


def test_every_error_line_says_what_failed_and_what_to_do(rgw: RgwServer, rgw_bucket: str) -> None:
    lines = {name: str(storage_error(exc, "reading", f"s3://{rgw_bucket}/key"))
             for name, exc in _rgw_errors(rgw, rgw_bucket).items()}
    unclear = {name: line for name, line in lines.items()
               if "None" in line or not line.startswith("reading failed") or not line.endswith(")")}
    assert (sorted(lines), unclear) == (
        ["MissingContentLength", "NoSuchBucket", "NoSuchKey", "NoSuchUpload", "PreconditionFailed"], {}), lines


def test_unknown_error_without_message_names_the_request_id(rgw: RgwServer, rgw_bucket: str) -> None:
    exc = _rgw_errors(rgw, rgw_bucket)["NoSuchUpload"]
    request_id = exc.response["ResponseMetadata"]["RequestId"]
    line = str(storage_error(exc, "aborting", f"s3://{rgw_bucket}/k"))
    assert line == (f"aborting failed for s3://{rgw_bucket}/k: the store answered 404 NoSuchUpload "
                    f"(look up request {request_id} in the store's log (the store gave no reason))")


def test_missing_bucket_on_rgw_is_one_clear_line(rgw: RgwServer, source: postgres.Database) -> None:
    bucket = buckets.unique_bucket_name("abb-rgw-missing")
    run = cli.restore(cli.job_env(rgw.endpoint_url, bucket), f"s3://{bucket}/{KEY}", source.url)
    message = _single_error(run)
    assert (run.returncode, message.startswith(f"checking for an existing object failed: bucket of s3://{bucket}/"),
            message.endswith(" does not exist (check the bucket name)")) == (6, True, True), message


def test_parts_carry_their_checksum_as_a_header_not_an_aws_chunked_trailer(rgw: RgwServer, rgw_bucket: str) -> None:
    """With request checksums on (AWS's own endpoints' default, forced here), the uploader
    sends each part's CRC32 itself: botocore would otherwise copy the part buffer into an
    io.BytesIO for an aws-chunked trailer (one more part in memory per part in flight), the
    body RGW over https answers with 411."""
    config = StorageConfig(bucket=rgw_bucket, region="us-east-1", endpoint_url=rgw.https_endpoint_url,
                           path_style=True, ca_bundle=str(rgw.ca_file), checksum_mode="when_supported")
    data = os.urandom(MIN_PART_SIZE + 1000)
    uploader = StreamUploader(make_client(config), config, KEY, plan_upload(PartSchedule(MIN_PART_SIZE), 2, memory_budget()))
    result = uploader.upload(io.BytesIO(data).read)
    assert (result.parts, buckets.sha256(buckets.get_object(rgw.client(), rgw_bucket, KEY))) == (2, buckets.sha256(data))
