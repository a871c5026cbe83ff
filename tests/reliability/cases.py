"""The failure-mode table: one row per fault, driving both the reliability tests
(tests/reliability/test_failure_modes.py) and docs/failure-modes.md
(tests/reliability/failure_modes_page.py; a test fails when the page is stale).

``message`` is the JSON error line's ``message`` exactly as the operator reads it, with
``<...>`` standing for the parts that vary (bucket, key, host, sizes); the tests match it
in full, so the page cannot drift from what the job prints. For the cases that end well
(exit 0) it is the info line that says so.

This module imports nothing but the standard library: the docs generator loads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    command: str  # backup | restore
    fault: str
    exit_code: int
    message: str
    action: str
    #: what is left in the bucket, when it is more than "nothing"
    leaves: str = ""

    def pattern(self) -> re.Pattern[str]:
        """``message`` as a regular expression: ``<...>`` matches any text."""
        parts = re.split(r"<[^<>]+>", self.message)
        return re.compile(".+?".join(re.escape(p) for p in parts), re.DOTALL)


STORAGE = "Object storage during a backup"
DATABASE = "The database during a backup"
RUNS = "Interruptions and overlapping runs"
RESTORE_INPUT = "Restore: what is restored, and where"
RESTORE_ROLE = "Restore: what the restore role may do (managed PostgreSQL)"
RESTORE_CHANGED = "Restore: a failure after the target was changed"
SCRATCH = "Restore: the scratch disk and the report"
CONFIGURATION = "Configuration"

DUMP_URI = "s3://<bucket>/<prefix>/agent-bom-<YYYYMMDDTHHMMSSZ>.dump"
DB = "postgresql://<user>@<host>:<port>/<database>"
#: the refusal of a restore over the backup's live source, however the target was recognised
LIVE_SOURCE = (f"target {DB} is the live source database of this backup (restore into a staging database "
               "first; to restore over production pass --approval INCIDENT-ID once incident command approved the "
               "data-loss window)")
LIVE_SOURCE_ACTION = "Restore into staging first; over production only with `--approval INCIDENT-ID`."
#: a manifest that describes another dump, however it got there
FOREIGN_MANIFEST = ("manifest s3://<bucket>/<prefix>/agent-bom-<stamp>.manifest.json describes <other key>, not "
                    "<this key> (the manifest was copied or renamed; do not trust this backup)")
FOREIGN_MANIFEST_ACTION = "Do not trust this backup; restore another one."

CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------------ object storage
    Case(
        id="s3-endpoint-killed-mid-upload",
        group=STORAGE, command="backup",
        fault="The S3 endpoint goes away while the dump is streaming (connections cut, new ones refused).",
        exit_code=6,
        message=f"uploading failed: <cannot reach|lost the connection to> the S3 endpoint for {DUMP_URI} (check endpointUrl, egress and that the store is up)",
        action="Check the endpoint, DNS and the NetworkPolicy egress; the next scheduled run retries. "
        "Nothing needs cleaning up by hand.",
        leaves="No object and no manifest. The open multipart upload cannot be aborted while the endpoint is "
        "down (a warning says so): the bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes it.",
    ),
    Case(
        id="s3-throttled-then-recovers",
        group=STORAGE, command="backup",
        fault="S3 answers `503 SlowDown` to some part uploads and `500 InternalError` to the completion, then recovers.",
        exit_code=0,
        message="backup complete",
        action="Nothing: botocore's standard retry mode retries with backoff (6 attempts per request, "
        "`AWS_MAX_ATTEMPTS` to change) and the backup completes.",
    ),
    Case(
        id="s3-errors-persist",
        group=STORAGE, command="backup",
        fault="S3 answers `503 SlowDown` to every part upload, retries included.",
        exit_code=6,
        message=f"uploading failed for {DUMP_URI}: the S3 endpoint answered 503 SlowDown on <n> attempts "
        "(Please reduce your request rate.) (the store is overloaded or failing; the next scheduled run "
        "retries, check the store's health if it persists)",
        action="Check the store's health and request rate (other writers on the prefix); the next scheduled "
        "run retries.",
    ),
    Case(
        id="bucket-missing",
        group=STORAGE, command="backup",
        fault="The configured bucket does not exist.",
        exit_code=4,
        message="bucket <bucket> does not exist (create it or fix destination.bucket)",
        action="Create the bucket or fix `controlPlane.backup.destination.bucket`.",
    ),
    Case(
        id="s3-denies-a-part-mid-upload",
        group=STORAGE, command="backup",
        fault="S3 refuses a part upload with `403 AccessDenied` after the first part was stored (the role's policy, "
        "its credentials or the KMS key policy changed while the backup ran).",
        exit_code=6,
        message=f"uploading failed: access denied to {DUMP_URI} (AccessDenied) "
        "(check the role's IAM policy (deploy/iam/) and the credentials in use)",
        action="Find what changed in the role's policy, its credentials or the KMS key policy "
        "(`deploy/iam/backup-role-policy.json` lists what the role needs); the next scheduled run retries.",
        leaves="The run's claim object (`<id>.claim`): `list` shows an incomplete backup, `prune` removes it. The "
        "multipart upload is aborted: no dump, no manifest, no open upload.",
    ),
    Case(
        id="wrong-region",
        group=STORAGE, command="backup",
        fault="The bucket is in eu-west-1; the job is configured for us-east-1.",
        exit_code=4,
        message="bucket <bucket> is in region eu-west-1, not us-east-1 "
        "(set destination.bucketRegion (AWS_REGION) to the bucket's region)",
        action="Set `controlPlane.backup.destination.bucketRegion` to the region named in the message.",
    ),
    Case(
        id="access-denied-no-permission",
        group=STORAGE, command="backup",
        fault="The job's identity has no S3 permission on the bucket (wrong role, missing policy).",
        exit_code=4,
        message="listing the prefix failed: access denied to s3://<bucket>/<prefix>/ (AccessDenied) "
        "(check the role's IAM policy (deploy/iam/) and the credentials in use)",
        action="Attach `deploy/iam/backup-role-policy.json` (bucket and prefix filled in) to the role "
        "the service account assumes; check the `eks.amazonaws.com/role-arn` annotation.",
    ),
    Case(
        id="access-denied-read-only",
        group=STORAGE, command="backup",
        fault="The job runs with a read-only identity (e.g. the restore role): preflight passes, the first write "
        "(the claim of the backup id) is denied.",
        exit_code=6,
        message="taking the backup id failed: access denied to s3://<bucket>/<prefix>/agent-bom-<stamp>.claim "
        "(AccessDenied) (check the role's IAM policy (deploy/iam/) and the credentials in use)",
        action="Give the job the backup role (`deploy/iam/backup-role-policy.json`), not the restore role.",
    ),
    Case(
        id="encryption-not-confirmed",
        group=STORAGE, command="backup",
        fault="Encryption is requested (`encryption.mode: AES256`) and the store accepts the header but does not "
        "apply it: its answers name no encryption (Ceph RGW 16, which has no SSE-S3; staged on RGW).",
        exit_code=8,
        message="the store did not confirm server-side encryption AES256 of "
        "s3://<bucket>/<prefix>/agent-bom-<stamp>.claim: its PutObject answer names none (nor does a HEAD of the "
        "object), so the object may be stored unencrypted; the backup stopped before its manifest was written "
        "(make the store apply it (Ceph RGW 16 has no SSE-S3: use aws:kms with `rgw crypt s3 kms backend`, over "
        "https or with `rgw crypt require ssl = false`), or set encryption.enabled: false "
        "(AGENT_BOM_BACKUP_SSE=none) if the store encrypts at rest by itself)",
        action="Make the store apply the encryption (Ceph RGW: SSE-KMS through a KMS backend, `encryption.mode: "
        "aws:kms` with its key id) or, when the store encrypts at rest by itself, set `encryption.enabled: false`. "
        "Every object's encryption is confirmed from the store's answers (PutObject, CreateMultipartUpload before a "
        "byte is sent, UploadPart, CompleteMultipartUpload; a HEAD where they are silent, which the backup role may "
        "not do) and recorded in the manifest (`storage.encryption_confirmed`).",
        leaves="The run's claim object (`<id>.claim`, a few bytes of JSON, no data): `list` shows an incomplete "
        "backup, `prune` removes it. No dump, no manifest, no open upload.",
    ),
    Case(
        id="encryption-refused-over-http",
        group=STORAGE, command="backup",
        fault="Encryption is requested through the plain-http endpoint of a store that refuses it there (Ceph "
        "RGW's default `rgw crypt require ssl = true`: `400 InvalidRequest` without a message; staged on RGW).",
        exit_code=6,
        message="taking the backup id failed for s3://<bucket>/<prefix>/agent-bom-<stamp>.claim: the store "
        "refused the write with server-side encryption aws:kms (InvalidRequest) (stores such as Ceph RGW refuse "
        "encryption over plain http (`rgw crypt require ssl`): use the store's https endpoint, or set "
        "encryption.enabled: false (AGENT_BOM_BACKUP_SSE=none) if it encrypts at rest by itself)",
        action="Point `destination.endpointUrl` at the store's https endpoint (with `caBundle` for a private CA).",
    ),
    Case(
        id="checksum-trailers-refused",
        group=STORAGE, command="backup",
        fault="`checksumMode: when_supported` is forced against a store that cannot take botocore's aws-chunked "
        "uploads with checksum trailers (Ceph RGW 16 over https: `411 MissingContentLength`; staged on RGW).",
        exit_code=6,
        message="taking the backup id failed for s3://<bucket>/<prefix>/agent-bom-<stamp>.claim: the store "
        "answered 411 MissingContentLength: it does not accept botocore's streamed (aws-chunked) uploads with "
        "checksum trailers (set checksumMode to auto or when_required (AGENT_BOM_BACKUP_CHECKSUM_MODE))",
        action="Leave `destination.checksumMode` at `auto` (`when_required` for every endpoint that is not AWS's "
        "own, however it is configured) or set `when_required`.",
    ),
    Case(
        id="location-is-a-zonegroup",
        group=STORAGE, command="backup",
        fault="The store reports the bucket's location as something that is no AWS region name (Ceph RGW: its "
        "zonegroup's API name, `default` on a stock cluster; staged on RGW).",
        exit_code=0,
        message="backup complete",
        action="Nothing: with an S3-compatible endpoint such a location is not compared with `bucketRegion`, and "
        "the preflight logs that it was not. A location that is an AWS region name is still compared.",
    ),
    # ------------------------------------------------------------------ database
    Case(
        id="database-unreachable",
        group=DATABASE, command="backup",
        fault="Nothing listens at the database URL's host and port.",
        exit_code=4,
        message=f"cannot connect to {DB}: connection failed: <libpq's reason> "
        "(check the URL, network policy, credentials and that the server is up)",
        action="Check the database Secret's URL, the NetworkPolicy egress and that PostgreSQL is up.",
    ),
    Case(
        id="database-wrong-password",
        group=DATABASE, command="backup",
        fault="The password in the database Secret is wrong.",
        exit_code=4,
        message=f"cannot connect to {DB}: connection failed: <...> password authentication failed for user "
        '"<user>" (check the URL, network policy, credentials and that the server is up)',
        action="Fix the password in the database Secret (the password itself is never printed).",
    ),
    Case(
        id="database-restarted-mid-dump",
        group=DATABASE, command="backup",
        fault="PostgreSQL restarts (fast shutdown) while pg_dump streams a large table.",
        exit_code=5,
        message="pg_dump lost its connection to the database (restart, failover or network): pg_dump: error: "
        '<pg_dump\'s first error line, e.g. Dumping the contents of table "blobs" failed: PQgetResult() failed.>',
        action="Nothing to clean up; rerun the backup (`kubectl create job --from=cronjob/...`) once the "
        "database is back, or wait for the next schedule.",
    ),
    Case(
        id="pg-dump-killed",
        group=DATABASE, command="backup",
        fault="pg_dump is killed (SIGKILL, e.g. the OOM killer) mid-stream. The pipe simply ends: the trap "
        "of completing a truncated object.",
        exit_code=5,
        message="pg_dump was killed by signal 9",
        action="Check the Pod's memory limit and events (OOMKilled); rerun. The truncated dump was never "
        "completed: pg_dump's exit status is checked before the upload is.",
    ),
    Case(
        id="pg-dump-fails-after-the-archive",
        group=DATABASE, command="backup",
        fault="pg_dump streams the whole archive and then exits 1 (an error it reports at the end). The stream "
        "looks complete; only the exit status says it is not.",
        exit_code=5,
        message="pg_dump exited with code 1: <pg_dump's first error line>",
        action="Read pg_dump's error in the message and fix its cause; rerun. The upload is completed only after "
        "pg_dump's exit status is checked, so the archive was never committed.",
        leaves="The run's claim object (`<id>.claim`): `list` shows an incomplete backup, `prune` removes it.",
    ),
    Case(
        id="pg-dumpall-fails",
        group=DATABASE, command="backup",
        fault="`pg_dumpall --globals-only` (the roles object) fails.",
        exit_code=5,
        message="pg_dumpall --globals-only failed: <pg_dumpall's first error line>",
        action="Read pg_dumpall's error in the message (a role that may not read the role catalog, a client that "
        "cannot reach the server) and fix it; rerun. The roles are read before anything is written, so nothing "
        "is left, not even a claim.",
    ),
    Case(
        id="table-the-backup-role-may-not-read",
        group=DATABASE, command="backup",
        fault="The backup role may not SELECT a table the dump needs (agent-bom >= 0.102 REVOKEs its "
        "tenant-binding signing keys from the maintenance identity).",
        exit_code=8,
        message="backup refused, nothing written: role <role> may not read 1 object the dump needs: table "
        "<schema.table> (owner <owner>). Choose one: (1) back up as a role that may read it (its owner or a "
        "member of the owner role); (2) GRANT SELECT ON <schema.table> TO <role> -- the backup then holds those "
        "secrets: encrypt it client-side (age, --encrypt-to) or use SSE-KMS with a key policy that limits who may "
        "decrypt; (3) leave it out: --exclude-table <schema.table> (repeatable; env "
        "AGENT_BOM_BACKUP_EXCLUDE_TABLES, one per line; chart controlPlane.backup.dump.excludeTables): its "
        "definition and data are not in the backup and a restore lists it as not restored, by configuration",
        action="Make the choice the message lists (docs/where-it-runs.md, \"agent-bom >= 0.102\", says which one "
        "upstream's users should make). Every such table is named at once, before pg_dump starts and before "
        "anything is written: a refusal, not retried by the podFailurePolicy.",
    ),
    Case(
        id="row-security-hides-rows",
        group=DATABASE, command="backup",
        fault="With `--enable-row-security`, the policies still hide some rows from the backup role under the "
        "configured bypass setting (here 50 of 1,000).",
        exit_code=7,
        message="row-level security hid rows from the backup (no manifest written, upload aborted): <schema.table> "
        "(<rows seen> rows seen, <live rows> live) (the configured bypass does not let this role see every "
        "tenant's rows: fix the session setting or the policies, or back up as a role with BYPASSRLS)",
        action="Fix the bypass (the session setting your policies honour, the role's membership) or back up as a "
        "role with BYPASSRLS. Each table's count in the snapshot is compared with the statistics' live rows, "
        "allowing only the inserts and deletes made during the backup (docs/limits.md has the blind spots).",
        leaves="The run's claim object (`<id>.claim`): `list` shows an incomplete backup, `prune` removes it.",
    ),
    # ------------------------------------------------------------------ runs
    Case(
        id="sigterm-mid-upload",
        group=RUNS, command="backup",
        fault="The job gets SIGTERM mid-upload (activeDeadlineSeconds, eviction, node drain) while a part "
        "upload hangs.",
        exit_code=143,
        message="received SIGTERM: stopped before completion",
        action="If it was the deadline, raise `activeDeadlineSeconds` or speed the dump up (compression level); "
        "the job exits within seconds (well inside the 30 s grace period), without waiting for the hung part.",
    ),
    Case(
        id="concurrent-backups-same-second",
        group=RUNS, command="backup",
        fault="Two backups start in the same second (a manual run during the schedule) and pick the same id.",
        exit_code=0,
        message="backup complete",
        action="Nothing: both backups are complete. Before uploading, each run takes its backup id with a "
        "conditional write of a small claim object (`<id>.claim`, `If-None-Match: *`), which every store tested "
        "here honours; the run that loses the claim takes the next free second (a warning names both ids; its "
        "manifest records the real start). Nothing is ever overwritten.",
    ),
    Case(
        id="claim-replaced-mid-upload",
        group=RUNS, command="backup",
        fault="Another run replaces this run's claim while it uploads (a store that ignores `If-None-Match` on "
        "PutObject let two runs of the same second take the same backup id).",
        exit_code=8,
        message=f"{DUMP_URI} is taken: another backup started in the same second and replaced this run's claim "
        "s3://<bucket>/<prefix>/agent-bom-<stamp>.claim (the store ignored If-None-Match); nothing of this run "
        "was completed (wait a second and retry; existing backups are never overwritten)",
        action="Nothing: the claim is checked again (its ETag in the listing) before the dump is completed, so the "
        "run whose claim stands completes and this one aborts its upload.",
        leaves="The other run's claim. Nothing of this run: its multipart upload is aborted.",
    ),
    Case(
        id="concurrent-backups-different-seconds",
        group=RUNS, command="backup",
        fault="Two backups overlap but start in different seconds.",
        exit_code=0,
        message="backup complete",
        action="Nothing: both backups are complete and valid (each dump matches its manifest).",
    ),
    # ------------------------------------------------------------------ restore input
    Case(
        id="restore-truncated-object",
        group=RESTORE_INPUT, command="restore",
        fault="The dump object is shorter than its manifest says.",
        exit_code=7,
        message=f"{DUMP_URI} is <n> bytes but its manifest says <n>: truncated or replaced "
        "(restore another backup)",
        action="Restore another backup (`agent-bom-backup list`); find out what rewrote the object "
        "(bucket versioning keeps the original).",
    ),
    Case(
        id="restore-corrupted-byte",
        group=RESTORE_INPUT, command="restore",
        fault="One byte of the dump object differs (same size).",
        exit_code=7,
        message=f"{DUMP_URI} does not match its manifest (size <n> vs <n>, sha256 <...> vs <...>): corrupted or "
        "truncated; the target was not touched (restore another backup)",
        action="Restore another backup; the checksum is verified before the database is touched.",
    ),
    Case(
        id="restore-roles-object-not-pg-dumpall",
        group=RESTORE_INPUT, command="restore",
        fault="The roles object holds a statement `pg_dumpall --globals-only --no-role-passwords` does not write "
        "(`CREATE ROLE backdoor LOGIN PASSWORD ...` after a GRANT on its line), its hash updated in the manifest.",
        exit_code=8,
        message="the backup's roles object is not what pg_dumpall writes: line <n>: unexpected text after the "
        "statement: CREATE ROLE backdoor LOGIN PASSWORD '<...>'; (nothing was changed; restore another backup, or "
        "create the roles by hand and restore with --no-owner --no-privileges)",
        action="Do not trust this backup: find out who rewrote the roles object and its manifest (bucket "
        "versioning keeps the originals); restore another backup. The roles object is parsed as data, never run.",
    ),
    Case(
        id="restore-missing-manifest",
        group=RESTORE_INPUT, command="restore",
        fault="The dump exists but its manifest does not (the job failed or is still running).",
        exit_code=7,
        message=f"backup {DUMP_URI} has no manifest: it is incomplete (the job failed or is still running) "
        "(restore another backup; run `agent-bom-backup list` to see complete ones)",
        action="Restore a complete backup (`agent-bom-backup list` marks incomplete ones).",
    ),
    Case(
        id="restore-foreign-manifest",
        group=RESTORE_INPUT, command="restore",
        fault="The manifest next to the dump describes another dump (copied or renamed).",
        exit_code=7,
        message=FOREIGN_MANIFEST, action=FOREIGN_MANIFEST_ACTION,
    ),
    Case(
        id="restore-newer-major",
        group=RESTORE_INPUT, command="restore",
        fault="A pg_dump 18 archive, and only PostgreSQL 15 client programs available.",
        exit_code=4,
        message="no pg_restore can read an archive written by pg_dump 18 (installed majors: 15) "
        "(install PostgreSQL 18 or newer client tools (Debian/Ubuntu: postgresql-client-18 from the PGDG apt "
        "repository; macOS: brew install postgresql@18) or name their bin folder with --pg-bin-dir)",
        action="Restore with the job image (it carries pg_restore 18) or install PostgreSQL 18 client programs.",
    ),
    Case(
        id="restore-nonexistent-uri",
        group=RESTORE_INPUT, command="restore",
        fault="The URI names a backup that does not exist (typo in the timestamp).",
        exit_code=7,
        message=f"no backup at {DUMP_URI} "
        "(check the timestamp; run `agent-bom-backup list`, or pass 'latest')",
        action="Copy the URI from `agent-bom-backup list`, or pass `latest`.",
    ),
    Case(
        id="restore-nonexistent-bucket",
        group=RESTORE_INPUT, command="restore",
        fault="The URI names a bucket that does not exist.",
        exit_code=6,
        message="checking for an existing object failed: bucket of s3://<bucket>/<key> does not exist "
        "(check the bucket name)",
        action="Fix the bucket name in the URI.",
    ),
    Case(
        id="restore-malformed-uri-single-slash",
        group=RESTORE_INPUT, command="restore",
        fault="A malformed URI: `s3:/x`.",
        exit_code=3,
        message="not an s3:// URI: 's3:/x' (use s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump or 'latest')",
        action="Pass `s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump`, `s3://BUCKET/PREFIX/` or `latest`.",
    ),
    Case(
        id="restore-malformed-uri-http",
        group=RESTORE_INPUT, command="restore",
        fault="An HTTP(S) URL instead of an s3:// URI.",
        exit_code=3,
        message="not an s3:// URI: '<url>' (use s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump or 'latest')",
        action="Pass the s3:// URI; a custom endpoint goes in `AGENT_BOM_BACKUP_ENDPOINT_URL`.",
    ),
    Case(
        id="restore-malformed-uri-no-bucket",
        group=RESTORE_INPUT, command="restore",
        fault="`s3://` with no bucket.",
        exit_code=3,
        message="malformed S3 URI 's3://': no valid bucket name",
        action="Pass a full s3:// URI.",
    ),
    Case(
        id="restore-not-a-backup",
        group=RESTORE_INPUT, command="restore",
        fault="The URI names an object that is not an agent-bom backup (`s3://bucket/not-a-backup.txt`).",
        exit_code=3,
        message="s3://<bucket>/not-a-backup.txt does not name an agent-bom backup "
        "(expected .../agent-bom-YYYYMMDDTHHMMSSZ.dump; run `agent-bom-backup list`)",
        action="Copy the URI from `agent-bom-backup list`.",
    ),
    Case(
        id="restore-access-denied",
        group=RESTORE_INPUT, command="restore",
        fault="The restore runs with the backup role's credentials, which cannot read backups.",
        exit_code=6,
        message="reading failed: access denied to s3://<bucket>/<prefix>/agent-bom-<stamp>.manifest.json "
        "(AccessDenied) (check the role's IAM policy (deploy/iam/) and the credentials in use)",
        action="Restore with the restore role (`deploy/iam/restore-role-policy.json`).",
    ),
    Case(
        id="restore-target-not-empty",
        group=RESTORE_INPUT, command="restore",
        fault="The target database already has tables, and no `--clean`.",
        exit_code=8,
        message="target database <database> is not empty (<n> objects: <names>) "
        "(restore into an empty database, or pass --clean --confirm-target <database>)",
        action="Restore into a new empty database, or pass `--clean --confirm-target DBNAME` (a safety dump of "
        "the target is taken first).",
    ),
    Case(
        id="restore-target-has-sessions",
        group=RESTORE_INPUT, command="restore",
        fault="Another client (the application, a psql) is connected to the target database, without "
        "`--terminate-sessions`: rows it writes during a `--clean` restore would be in neither the safety dump nor "
        "the restored database.",
        exit_code=8,
        message="<n> other session(s) on target database <database>: pid <pid> user <user> application <name> "
        "from <client> (<state>); nothing was changed (stop the application (scale it to 0) and retry, or pass "
        "--terminate-sessions (AGENT_BOM_RESTORE_TERMINATE_SESSIONS=true) to revoke CONNECT and end them for the "
        "restore)",
        action="Scale the application to 0 and retry, or pass `--terminate-sessions`: CONNECT is revoked from every "
        "role but the restore role, the sessions are ended, and CONNECT is granted back when the restore ends "
        "(docs/runbook.md, \"Sessions on the target\").",
    ),
    Case(
        id="restore-session-revoke-cannot-stop",
        group=RESTORE_INPUT, command="restore",
        fault="`--terminate-sessions`, and a superuser (or the restore role itself, or a member of it) is connected "
        "to the target: REVOKE CONNECT does not keep such a role out.",
        exit_code=8,
        message="--terminate-sessions cannot keep these sessions out of <database> (REVOKE CONNECT does not apply to "
        "them): pid <pid> user <user> application <name> from <client> (<state>) is a superuser; nothing was changed "
        "(end them yourself (stop the client, or a superuser runs pg_terminate_backend) and retry)",
        action="End those sessions yourself (or have a superuser run `pg_terminate_backend`), then retry.",
    ),
    Case(
        id="restore-live-source-without-approval",
        group=RESTORE_INPUT, command="restore",
        fault="The target is the live database the backup was taken from, without `--approval`.",
        exit_code=8,
        message=LIVE_SOURCE, action=LIVE_SOURCE_ACTION,
    ),
    Case(
        id="restore-over-the-backups-source",
        group=RESTORE_INPUT, command="restore",
        fault="`--clean` over the database the backup was taken from (the manifest records it), without "
        "`--approval`; the job's `AGENT_BOM_POSTGRES_URL` is not set.",
        exit_code=8,
        message=LIVE_SOURCE, action=LIVE_SOURCE_ACTION,
    ),
    Case(
        id="restore-target-is-the-jobs-database",
        group=RESTORE_INPUT, command="restore",
        fault="`--clean` over the database `AGENT_BOM_POSTGRES_URL` names (the backup job's live database), though "
        "the backup was taken from another one, without `--approval`.",
        exit_code=8,
        message=LIVE_SOURCE, action=LIVE_SOURCE_ACTION,
    ),
    Case(
        id="restore-clean-without-confirm-target",
        group=RESTORE_INPUT, command="restore",
        fault="`--clean` over a non-empty database without `--confirm-target`.",
        exit_code=8,
        message="--clean would replace database <database> but --confirm-target is not set "
        "(pass --confirm-target <database>)",
        action="Name the database being replaced: `--clean --confirm-target DBNAME`.",
    ),
    Case(
        id="restore-clean-confirms-another-database",
        group=RESTORE_INPUT, command="restore",
        fault="`--clean` with `--confirm-target` naming another database than the target.",
        exit_code=8,
        message="--clean would replace database <database> but --confirm-target is agent_bom "
        "(pass --confirm-target <database>)",
        action="Check that the target URL names the database you mean to replace, then confirm that one.",
    ),
    Case(
        id="restore-manifest-of-another-backup",
        group=RESTORE_INPUT, command="restore",
        fault="The manifest next to the dump is another real backup's manifest (copied over it).",
        exit_code=7,
        message=FOREIGN_MANIFEST, action=FOREIGN_MANIFEST_ACTION,
    ),
    Case(
        id="restore-extension-missing-on-target",
        group=RESTORE_INPUT, command="restore",
        fault="The backup uses an extension (pgcrypto) the target server cannot install.",
        exit_code=8,
        message="the target server cannot install extensions the backup uses: pgcrypto "
        "(install them on the target server (pg_available_extensions), then retry)",
        action="Install the extension's package on the target server (it must be in `pg_available_extensions`; "
        "on a managed instance, allow it in the parameter group), then retry.",
    ),
    Case(
        id="restore-latest-newest-unreadable",
        group=RESTORE_INPUT, command="restore",
        fault="`restore latest`: the newest backup's manifest cannot be read (here: it does not parse; also "
        "AccessDenied, 5xx after retries, KMS throttling, or an archived dump), and an older complete backup exists.",
        exit_code=8,
        message="the newest backup under s3://<bucket>/<prefix>/, agent-bom-<stamp>, is unreadable: manifest "
        "unreadable: manifest s3://<bucket>/<prefix>/agent-bom-<stamp>.manifest.json is not valid JSON: <detail> "
        "(fix it and retry, or pass --allow-older (AGENT_BOM_RESTORE_ALLOW_OLDER=true) to take the newest complete "
        "backup instead, with a wider data-loss window)",
        action="Find out why the newest backup cannot be read (`agent-bom-backup list` shows each backup's state "
        "and reason). To restore the previous complete backup instead, pass `--allow-older`: the report then lists "
        "the backups it passed over and how much wider the data-loss window is.",
    ),
    # ------------------------------------------------------------------ restore role
    Case(
        id="restore-role-cannot-create-roles",
        group=RESTORE_ROLE, command="restore",
        fault="The target server lacks the roles the backup names and the restore role only owns the target "
        "database (no CREATEROLE), with `--create-missing-roles`.",
        exit_code=8,
        message="the target server lacks roles the backup names: <roles>, and restore role <role> may not create "
        "roles (no CREATEROLE) (restore as the instance's admin role (CREATEROLE; rds_superuser, cloudsqlsuperuser, "
        "azure_pg_admin), or have it create these roles first)",
        action="Restore as the managed instance's admin role (RDS/Aurora master user, `cloudsqlsuperuser` member, "
        "`azure_pg_admin` member) with `--create-missing-roles`; see docs/runbook.md, \"Restore into a managed "
        "instance\".",
    ),
    Case(
        id="restore-role-cannot-act-as-owner",
        group=RESTORE_ROLE, command="restore",
        fault="The backup's owner role exists on the target server, and the restore role (the database's owner, "
        "no CREATEROLE) is not a member of it: pg_restore could not give the restored objects their owner.",
        exit_code=8,
        message="restore role <role> cannot act as <owner>, which own(s) objects in the backup: pg_restore could "
        "not give the restored objects their owners (a platform admin runs: GRANT <owner> TO <role>; or restore as a "
        "superuser, or with --no-owner --no-privileges for a scratch copy)",
        action="Have a platform admin run the GRANT the message names (on PostgreSQL 16+ it carries `WITH INHERIT "
        "TRUE, SET TRUE`), or restore as the instance's admin role, which grants itself what it needs.",
    ),
    # ------------------------------------------------------------------ after changes
    Case(
        id="restore-fails-after-the-wipe",
        group=RESTORE_CHANGED, command="restore",
        fault="`--clean` over a non-empty database: the safety dump and the wipe succeed, pg_restore completes, "
        "and the restored database differs from the manifest (here: the manifest claims one row more than the dump "
        "holds).",
        exit_code=11,
        message="failed after changing the target: verification failed: restored database differs from the "
        "backup: table public.audit_log: expected <n> rows, found <n>; changed: dropped every user schema of "
        "<database> (<n> objects); restored the backup with pg_restore; to go back: restore the safety dump: "
        "<pg_restore> --clean --if-exists --no-password --dbname=" + DB + " <safety dump> (password in PGPASSWORD)",
        action="The target was changed: run the command the message gives (password in `PGPASSWORD`) to put its "
        "previous contents back (the test runs it and gets the database back exactly), then restore another "
        "backup. The report's status is `failed-after-changes`, with `changes` and `recovery`.",
        leaves="The target holds the restored (unverified) backup until the go-back command runs; the safety dump "
        "stays in `--safety-backup-dir`.",
    ),
    # ------------------------------------------------------------------ scratch disk
    Case(
        id="restore-scratch-too-small",
        group=SCRATCH, command="restore",
        fault="The scratch directory's filesystem has less free space than the dump needs (checked before "
        "downloading).",
        exit_code=4,
        message="scratch directory <dir> has <n> bytes free; the dump needs <n> plus 16 MiB of headroom "
        "(point --scratch-dir (AGENT_BOM_BACKUP_SCRATCH_DIR) at a larger volume)",
        action="Point `--scratch-dir` at a larger volume (in the chart: a larger `emptyDir` size limit). The "
        "check asks for the dump's size plus 16 MiB of headroom.",
    ),
    Case(
        id="restore-scratch-fills-during-download",
        group=SCRATCH, command="restore",
        fault="The scratch filesystem fills up while the dump downloads (another writer took the space).",
        exit_code=6,
        message=f"cannot write the download of {DUMP_URI} to local disk: No space left on device "
        "(free space in the scratch directory or point --scratch-dir at a larger volume)",
        action="Free space or use a larger scratch volume; the partial download is deleted.",
    ),
    Case(
        id="restore-scratch-dir-missing",
        group=SCRATCH, command="restore",
        fault="`--scratch-dir` (`AGENT_BOM_BACKUP_SCRATCH_DIR`) names a directory that does not exist (an unmounted "
        "volume).",
        exit_code=3,
        message="scratch directory <dir> does not exist or is not a directory (create it, or point --scratch-dir "
        "(AGENT_BOM_BACKUP_SCRATCH_DIR) at an existing volume)",
        action="Mount the volume or fix the path; nothing was downloaded or changed.",
    ),
    Case(
        id="restore-report-unwritable",
        group=SCRATCH, command="restore",
        fault="`--report` names a path that cannot be written (its parent is a file, a read-only mount).",
        exit_code=3,
        message="cannot write the restore report to <path>: <reason> (pass a --report path in a writable directory "
        "(nothing was restored))",
        action="Pass a writable `--report` path: the report is written first thing, so nothing was restored.",
    ),
    # ------------------------------------------------------------------ configuration
    Case(
        id="backup-bad-part-size",
        group=CONFIGURATION, command="backup",
        fault="`--part-size` (`AGENT_BOM_BACKUP_PART_SIZE`, chart `upload.partSize`) is not a size (`abc`).",
        exit_code=3,
        message="--part-size: 'abc' is not a size (e.g. 8MiB) (use a whole number with a unit, e.g. 8MiB or 64MiB)",
        action="Fix the value (5MiB to 5GiB); nothing was dumped or uploaded.",
    ),
    Case(
        id="backup-memory-budget-holds-no-part",
        group=CONFIGURATION, command="backup",
        fault="The memory budget (`--memory-budget`, else 60 % of the container's memory limit, chart "
        "`resources.limits.memory`) cannot hold the process and one first part (here 100MiB).",
        exit_code=3,
        message="memory budget 100.0 MiB (--memory-budget) leaves 4.0 MiB for upload buffers, less than one 8.0 MiB "
        "part (part schedule <schedule>) (set --memory-budget (AGENT_BOM_BACKUP_MEMORY_BUDGET) to at least <size>, "
        "or a container memory limit of at least <size> (chart: controlPlane.backup.resources.limits.memory); "
        "<sizes> hold dumps up to S3's 5 TiB)",
        action="Raise the memory limit (the chart's default 2560Mi holds the parts of a 5 TiB dump) or the budget; "
        "the database and the bucket were not asked anything. A budget above this but below what a 5 TiB dump "
        "needs is not refused: the backup runs and warns at start how large a dump it holds.",
    ),
)

CASES_BY_ID = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "duplicate case id"
