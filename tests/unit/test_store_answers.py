"""How the store's answers are read: which endpoints are AWS's own (checksums, locations),
and whether an answer confirms the requested server-side encryption. The servers' real
answers are exercised in tests/compat/test_ceph_rgw.py and tests/e2e/test_backup.py."""

import os

import pytest

from agent_bom_backup.errors import RefusedError
from agent_bom_backup.storage import (
    AWS_REGION_NAME,
    EncryptionCheck,
    StorageConfig,
    is_aws_endpoint,
    kms_key_matches,
    range_verdict,
)

ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
URI = "s3://bucket/agent-bom/postgres/agent-bom-20260101T000000Z.dump"
KEY = "agent-bom/postgres/agent-bom-20260101T000000Z.dump"


@pytest.mark.parametrize("url, aws", [
    ("https://s3.eu-west-1.amazonaws.com", True),
    ("https://bucket.vpce-0a1b2c3d.s3.us-east-1.vpce.amazonaws.com", True),
    ("https://s3.cn-north-1.amazonaws.com.cn", True),
    ("https://s3.dualstack.us-east-1.api.aws", True),
    ("https://storage.googleapis.com", False),
    ("https://acct.r2.cloudflarestorage.com", False),
    ("http://127.0.0.1:7480", False),
    ("https://amazonaws.com.example.org", False),
    (None, False),
])
def test_aws_endpoints_are_told_by_host_name(url: str | None, aws: bool) -> None:
    assert is_aws_endpoint(url) is aws


@pytest.mark.parametrize("mode, endpoint, effective", [
    ("auto", "https://s3.eu-west-1.amazonaws.com", "when_supported"),
    ("auto", "https://storage.googleapis.com", "when_required"),
    ("when_supported", "https://storage.googleapis.com", "when_supported"),
    ("when_required", "https://s3.eu-west-1.amazonaws.com", "when_required"),
])
def test_auto_checksums_follow_the_resolved_endpoint(mode: str, endpoint: str, effective: str) -> None:
    assert StorageConfig(bucket="b", checksum_mode=mode).checksum_mode_for(endpoint) == effective


@pytest.mark.parametrize("location, region", [
    ("us-east-1", True), ("eu-central-2", True), ("us-gov-west-1", True), ("cn-north-1", True),
    ("us-isob-east-1", True), ("default", False), ("auto", False), ("zg1", False), ("us-east", False),
])
def test_aws_region_names(location: str, region: bool) -> None:
    assert bool(AWS_REGION_NAME.match(location)) is region


@pytest.mark.parametrize("requested, answered, matches", [
    (KEY_ID, ARN, True),
    (ARN, ARN, True),
    (ARN, KEY_ID, True),
    ("alias/agent-bom-backups", ARN, True),
    (None, ARN, True),
    (KEY_ID, "arn:aws:kms:eu-west-1:111122223333:key/other", False),
    ("other-key", "agent-bom-test-key", False),
])
def test_kms_key_matching(requested: str | None, answered: str, matches: bool) -> None:
    assert kms_key_matches(requested, answered) is matches


def test_answer_naming_the_mode_confirms() -> None:
    check = EncryptionCheck("AES256")
    assert (check.answer(URI, KEY, "PutObject", {"ServerSideEncryption": "AES256"}), check.confirmed) == (
        True, {KEY: ["PutObject"]})


def test_silent_answer_does_not_confirm() -> None:
    assert EncryptionCheck("AES256").answer(URI, KEY, "PutObject", {"ETag": '"x"'}) is False


def test_kms_answer_without_a_key_does_not_confirm() -> None:
    assert EncryptionCheck("aws:kms", KEY_ID).answer(URI, KEY, "PutObject", {"ServerSideEncryption": "aws:kms"}) is False


def test_answer_naming_another_mode_is_refused() -> None:
    with pytest.raises(RefusedError, match="encrypted .* with AES256, not the requested aws:kms"):
        EncryptionCheck("aws:kms").answer(URI, KEY, "PutObject", {"ServerSideEncryption": "AES256",
                                                                  "SSEKMSKeyId": ARN})


def test_answer_naming_another_key_is_refused() -> None:
    with pytest.raises(RefusedError, match="with KMS key arn:aws:kms:eu-west-1:111122223333:key/other"):
        EncryptionCheck("aws:kms", KEY_ID).answer(
            URI, KEY, "PutObject", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": ARN.replace(KEY_ID, "other")})


def test_an_alias_is_recorded_as_the_key_the_store_named() -> None:
    check = EncryptionCheck("aws:kms", "alias/agent-bom-backups")
    check.answer(URI, KEY, "CreateMultipartUpload", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": ARN})
    assert check.record() == {"requested": "aws:kms", "mode": "aws:kms", "kms_key_id": ARN,
                              "objects": {KEY: ["CreateMultipartUpload"]}}


def test_objects_under_two_different_keys_are_refused() -> None:
    check = EncryptionCheck("aws:kms", "alias/agent-bom-backups")
    check.answer(URI, KEY, "PutObject", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": ARN})
    with pytest.raises(RefusedError, match="with KMS key .*/other, not"):
        check.answer(URI, KEY, "PutObject", {"ServerSideEncryption": "aws:kms",
                                             "SSEKMSKeyId": ARN.replace(KEY_ID, "other")})


def test_nothing_requested_confirms_without_recording() -> None:
    check = EncryptionCheck()
    assert (check.answer(URI, KEY, "PutObject", {}), check.record()) == (
        True, {"requested": "none", "mode": None, "kms_key_id": None, "objects": {}})


def test_unconfirmed_manifest_says_it_was_written() -> None:
    error = EncryptionCheck("AES256").unconfirmed("s3://b/p/agent-bom-20260101T000000Z.manifest.json", "PutObject")
    assert "the manifest was written: remove this backup with `agent-bom-backup prune`" in str(error)


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024 + 7], ids=["empty", "one-byte", "a-part"])
def test_the_part_checksum_is_the_one_botocore_would_send(size: int) -> None:
    from botocore.httpchecksum import Crc32Checksum

    from agent_bom_backup.storage import crc32_checksum

    data = bytearray(os.urandom(size))
    assert crc32_checksum(data) == Crc32Checksum().handle(bytes(data))


# -------------------------------------------------------- ranged downloads: the probe's verdict
START = 63 * 1024 * 1024


@pytest.mark.parametrize(("answered", "ranged_get_s", "cheap", "why"), [
    (f"bytes {START}-{START + 1024 * 1024 - 1}/{START + 1024 * 1024}", 0.02, True, ""),
    (f"bytes {START}-{START + 1024 * 1024 - 1}/{START + 1024 * 1024}", 0.5, False,
     "the store reads the whole object for a ranged GET"),
    ("", 0.02, False, "the store ignores ranged GETs"),
    (f"bytes 0-{START + 1024 * 1024 - 1}/{START + 1024 * 1024}", 0.02, False, "the store ignores ranged GETs"),
], ids=["cheap", "slower-than-a-head", "whole-object-answer", "other-range"])
def test_the_range_probe_judges_the_answer_and_its_time(answered: str, ranged_get_s: float, cheap: bool,
                                                        why: str) -> None:
    verdict = range_verdict(START, answered, {"head_seconds": 0.005, "ranged_get_seconds": ranged_get_s})
    assert (verdict.cheap, verdict.why) == (cheap, why)


def test_the_probe_knows_no_server_by_name() -> None:
    """No test-server special case ships: a store is judged by what it does, and the
    harness turns moto's ranged downloads off itself (devstack.s3server.MotoServer.JOB_ENV)."""
    from pathlib import Path

    import agent_bom_backup

    shipped = Path(agent_bom_backup.__file__).parent
    assert [str(p.relative_to(shipped)) for p in sorted(shipped.rglob("*.py")) if "Werkzeug" in p.read_text()] == []
