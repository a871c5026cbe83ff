#!/usr/bin/env bash
# Post-restore smoke checks of the agent-bom control-plane backup on an EKS cluster
# (the runbook's "Then run the control-plane smoke checks against the restored
# environment"):
#
#   scripts/deploy/verify-eks-reference.sh --cluster-name corp-ai --region "$AWS_REGION" --namespace agent-bom
#
# Prints a PASS/FAIL/SKIP table; exits 1 when any check fails, 2 on a usage error.
set -euo pipefail

PROG=verify-eks-reference.sh
COMPONENT_LABEL="app.kubernetes.io/component=control-plane-backup"
ROLE_ANNOTATION="eks.amazonaws.com/role-arn"
REQUEST_TIMEOUT="20s"

usage() {
    cat <<'EOF'
Usage: scripts/deploy/verify-eks-reference.sh --cluster-name NAME --region REGION --namespace NS
                                              [--release agent-bom-backup] [--max-age 26h]

Smoke checks of the agent-bom control-plane backup after an install, upgrade or restore:

  kubectl installed            kubectl is on PATH
  aws CLI installed            the aws CLI is on PATH (optional: its checks SKIP without it)
  AWS identity                 aws sts get-caller-identity
  EKS cluster ACTIVE           aws eks describe-cluster --name NAME --region REGION
  kubectl context              kubectl talks to that cluster's API endpoint
  CronJob exists               NS/<release>-control-plane-backup
  CronJob not suspended        spec.suspend is false
  last backup Job              newest Job labelled app.kubernetes.io/component=control-plane-backup
  ServiceAccount role          eks.amazonaws.com/role-arn annotation (or AWS_ROLE_ARN in the
                               CronJob, or an EKS Pod Identity association)
  newest complete backup age   agent-bom-backup check --max-age AGE against the bucket and
                               prefix the CronJob backs up to (needs s3:ListBucket)

Options:
  --cluster-name NAME   EKS cluster name (required)
  --region REGION       AWS region of the cluster (required; also the bucket's unless the
                        CronJob sets AGENT_BOM_BACKUP_REGION)
  --namespace NS        namespace of the Helm release (required)
  --release NAME        Helm release name (default: agent-bom-backup, whose CronJob keeps the
                        runbook's name agent-bom-control-plane-backup)
  --max-age AGE         oldest acceptable newest complete backup (default: 26h)
  -h, --help            show this help

Environment:
  AGENT_BOM_BACKUP_CLI  agent-bom-backup executable (default: agent-bom-backup on PATH)
  KUBECONFIG, AWS_PROFILE, AWS_*   the kubectl context and AWS identity used
  AGENT_BOM_BACKUP_CA_BUNDLE       CA bundle for a custom S3 endpoint, on this machine

Exit codes: 0 every check passed or was skipped, 1 at least one check failed, 2 usage.
Requires bash and python3 (to read kubectl's JSON output).
EOF
}

usage_error() {
    printf '%s: error: %s\n' "$PROG" "$1" >&2
    printf "Run '%s --help' for usage.\n" "$PROG" >&2
    exit 2
}

CLUSTER_NAME=""
REGION=""
NAMESPACE=""
RELEASE="agent-bom-backup"
MAX_AGE="26h"

need_value() {
    if [[ $# -lt 2 || -z $2 || $2 == --* ]]; then
        usage_error "$1 needs a value"
    fi
}

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        --cluster-name | --region | --namespace | --release | --max-age)
            need_value "$@"
            case $1 in
                --cluster-name) CLUSTER_NAME=$2 ;;
                --region) REGION=$2 ;;
                --namespace) NAMESPACE=$2 ;;
                --release) RELEASE=$2 ;;
                --max-age) MAX_AGE=$2 ;;
            esac
            shift 2
            ;;
        --cluster-name=* | --region=* | --namespace=* | --release=* | --max-age=*)
            value=${1#*=}
            [[ -n $value ]] || usage_error "${1%%=*} needs a value"
            case $1 in
                --cluster-name=*) CLUSTER_NAME=$value ;;
                --region=*) REGION=$value ;;
                --namespace=*) NAMESPACE=$value ;;
                --release=*) RELEASE=$value ;;
                --max-age=*) MAX_AGE=$value ;;
            esac
            shift
            ;;
        *)
            usage_error "unknown argument: $1"
            ;;
    esac
done

[[ -n $CLUSTER_NAME ]] || usage_error "--cluster-name is required"
[[ -n $REGION ]] || usage_error "--region is required"
[[ -n $NAMESPACE ]] || usage_error "--namespace is required"

if ! command -v python3 >/dev/null 2>&1; then
    printf '%s: error: python3 is required to read kubectl JSON output; install it and retry\n' "$PROG" >&2
    exit 1
fi

# the chart's naming: release agent-bom-backup uses the chart name (docs/install.md)
if [[ $RELEASE == agent-bom-backup ]]; then
    CRONJOB="agent-bom-control-plane-backup"
else
    CRONJOB="${RELEASE}-control-plane-backup"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'printf "%s: error: unexpected failure at line %s (exit %s)\n" "$PROG" "$LINENO" "$?" >&2' ERR

NAMES=()
RESULTS=()
DETAILS=()

record() {
    NAMES+=("$1")
    RESULTS+=("$2")
    DETAILS+=("$3")
}

# first non-empty line of a file (an error message), whitespace-trimmed
first_line() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line#"${line%%[![:space:]]*}"}
        if [[ -n $line ]]; then
            printf '%s' "$line"
            return 0
        fi
    done <"$1"
    printf 'no output'
}

# Read kubectl/aws JSON: jq-like queries implemented once in python3.
#   query FILE fields PATH...   one line per dotted path (empty when absent)
#   query FILE cronjob          schedule, suspend, service account, NAME=VALUE env lines
#   query FILE newest-job       newest Job and newest finished Job: NAME<TAB>STATE<TAB>DETAIL
#   query FILE annotation KEY | associations
query() {
    python3 - "$@" <<'PY'
import json
import sys

path, kind = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else ""
with open(path) as handle:
    data = json.load(handle)


def pod_spec(cronjob):
    return cronjob.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})


def container(cronjob):
    containers = pod_spec(cronjob).get("containers") or [{}]
    return next((c for c in containers if c.get("name") == "backup"), containers[0])


def field(path):
    value = data
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            value = None
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (bool, dict, list)) else str(value).replace("\n", " ")


if kind == "fields":  # one line per dotted path; empty when absent
    for path in sys.argv[3:]:
        print(field(path))
elif kind == "cronjob":  # schedule, suspend, service account, then NAME=VALUE literal env lines
    print(data.get("spec", {}).get("schedule", ""))
    print("true" if data.get("spec", {}).get("suspend") else "false")
    print(pod_spec(data).get("serviceAccountName") or "default")
    for item in container(data).get("env") or []:
        if "value" in item and "\n" not in str(item["value"]):
            print(f"{item['name']}={item['value']}")
elif kind == "annotation":
    print((data.get("metadata", {}).get("annotations") or {}).get(arg, ""))
elif kind == "newest-job":  # NAME<TAB>STATE<TAB>DETAIL of the newest job, and of the newest finished one
    jobs = sorted(data.get("items", []), key=lambda j: j["metadata"].get("creationTimestamp", ""), reverse=True)

    def state(job):
        status = job.get("status", {})
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") == "Complete":
                return "succeeded", f"completed {status.get('completionTime') or cond.get('lastTransitionTime', '')}"
            if cond.get("type") == "Failed":
                return "failed", f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}".rstrip(": ")
        if status.get("succeeded"):
            return "succeeded", f"completed {status.get('completionTime', '')}"
        return "running", f"started {status.get('startTime') or job['metadata'].get('creationTimestamp', '')}"

    newest = jobs[0] if jobs else None
    finished = next((j for j in jobs if state(j)[0] != "running"), None)
    for job in (newest, finished):
        if job is None:
            print("-\tnone\t-")
        else:
            st, detail = state(job)
            print(f"{job['metadata']['name']}\t{st}\t{detail}")
elif kind == "associations":
    for item in data.get("associations") or []:
        print(item.get("associationArn") or item.get("associationId", ""))
else:
    sys.exit(f"unknown query {kind}")
PY
}

# ---------------------------------------------------------------- tools
HAVE_KUBECTL=false
if command -v kubectl >/dev/null 2>&1; then
    HAVE_KUBECTL=true
    version="kubectl $(command -v kubectl)"
    if kubectl version --client -o json >"$WORK/kubectl-version.json" 2>/dev/null; then
        client=$(query "$WORK/kubectl-version.json" fields clientVersion.gitVersion || true)
        [[ -z $client ]] || version="kubectl $client"
    fi
    record "kubectl installed" PASS "$version"
else
    record "kubectl installed" FAIL "kubectl not found on PATH: install it, then aws eks update-kubeconfig --name $CLUSTER_NAME --region $REGION"
fi

HAVE_AWS=false
if command -v aws >/dev/null 2>&1; then
    HAVE_AWS=true
    record "aws CLI installed" PASS "$(command -v aws)"
else
    record "aws CLI installed" SKIP "aws CLI not found on PATH: the AWS identity, EKS and Pod Identity checks are skipped"
fi

# ---------------------------------------------------------------- AWS side
EKS_ENDPOINT=""
if $HAVE_AWS; then
    if aws sts get-caller-identity --region "$REGION" --output json >"$WORK/sts.json" 2>"$WORK/sts.err"; then
        record "AWS identity" PASS "$(query "$WORK/sts.json" fields Arn)"
    else
        record "AWS identity" FAIL "aws sts get-caller-identity failed: $(first_line "$WORK/sts.err")"
    fi
    if aws eks describe-cluster --name "$CLUSTER_NAME" --region "$REGION" --output json >"$WORK/eks.json" 2>"$WORK/eks.err"; then
        {
            read -r status
            read -r EKS_ENDPOINT
            read -r kubernetes_version
        } < <(query "$WORK/eks.json" fields cluster.status cluster.endpoint cluster.version)
        if [[ $status == ACTIVE ]]; then
            record "EKS cluster $CLUSTER_NAME ACTIVE" PASS "status ACTIVE, Kubernetes $kubernetes_version"
        else
            record "EKS cluster $CLUSTER_NAME ACTIVE" FAIL "status ${status:-unknown} (expected ACTIVE)"
        fi
    else
        record "EKS cluster $CLUSTER_NAME ACTIVE" FAIL "aws eks describe-cluster failed: $(first_line "$WORK/eks.err")"
    fi
else
    record "AWS identity" SKIP "needs the aws CLI"
    record "EKS cluster $CLUSTER_NAME ACTIVE" SKIP "needs the aws CLI"
fi

# ---------------------------------------------------------------- Kubernetes side
kube() {
    kubectl --request-timeout="$REQUEST_TIMEOUT" "$@"
}

if ! $HAVE_KUBECTL; then
    record "kubectl context" SKIP "needs kubectl"
elif [[ -z $EKS_ENDPOINT ]]; then
    record "kubectl context" SKIP "cannot compare without the cluster endpoint from aws eks describe-cluster"
elif kubectl config view --minify -o json >"$WORK/kubeconfig.json" 2>"$WORK/kubeconfig.err"; then
    {
        read -r server
        read -r context
    } < <(query "$WORK/kubeconfig.json" fields clusters.0.cluster.server current-context)
    if [[ ${server%/} == "${EKS_ENDPOINT%/}" ]]; then
        record "kubectl context" PASS "$context"
    else
        record "kubectl context" FAIL "kubectl talks to ${server:-nothing}, not cluster $CLUSTER_NAME: aws eks update-kubeconfig --name $CLUSTER_NAME --region $REGION"
    fi
else
    record "kubectl context" FAIL "kubectl config view failed: $(first_line "$WORK/kubeconfig.err")"
fi

HAVE_CRONJOB=false
if ! $HAVE_KUBECTL; then
    record "CronJob $NAMESPACE/$CRONJOB exists" SKIP "needs kubectl"
    record "CronJob not suspended" SKIP "needs kubectl"
    record "last backup Job" SKIP "needs kubectl"
    record "ServiceAccount role" SKIP "needs kubectl"
else
    if kube -n "$NAMESPACE" get cronjob "$CRONJOB" -o json >"$WORK/cronjob.json" 2>"$WORK/cronjob.err"; then
        HAVE_CRONJOB=true
        {
            read -r schedule
            read -r suspended
            read -r service_account
            cat >"$WORK/cronjob.env"
        } < <(query "$WORK/cronjob.json" cronjob)
        record "CronJob $NAMESPACE/$CRONJOB exists" PASS "schedule '$schedule'"
        if [[ $suspended == true ]]; then
            record "CronJob not suspended" FAIL "suspended: no backups run; helm upgrade ... --set controlPlane.backup.suspend=false (or kubectl -n $NAMESPACE patch cronjob $CRONJOB -p '{\"spec\":{\"suspend\":false}}')"
        else
            record "CronJob not suspended" PASS "spec.suspend=false"
        fi
    else
        reason=$(first_line "$WORK/cronjob.err")
        if [[ $reason == *NotFound* ]]; then
            reason="$reason (enable it: helm upgrade $RELEASE ... --set controlPlane.backup.enabled=true)"
        fi
        record "CronJob $NAMESPACE/$CRONJOB exists" FAIL "$reason"
        record "CronJob not suspended" SKIP "no CronJob"
    fi

    if kube -n "$NAMESPACE" get jobs -l "$COMPONENT_LABEL" -o json >"$WORK/jobs.json" 2>"$WORK/jobs.err"; then
        {
            IFS=$'\t' read -r newest_name newest_state _newest_detail
            IFS=$'\t' read -r job_name job_state job_detail
        } < <(query "$WORK/jobs.json" newest-job)
        running_note=""
        if [[ $newest_state == running ]]; then
            running_note=" (job $newest_name is running now)"
        fi
        case $job_state in
            succeeded)
                record "last backup Job" PASS "$job_name succeeded, $job_detail$running_note"
                ;;
            failed)
                record "last backup Job" FAIL "$job_name failed ($job_detail); read kubectl -n $NAMESPACE logs job/$job_name$running_note"
                ;;
            *)
                if [[ $newest_state == running ]]; then
                    record "last backup Job" SKIP "no finished backup Job yet$running_note"
                else
                    record "last backup Job" SKIP "no backup Job has run yet; start one: kubectl -n $NAMESPACE create job --from=cronjob/$CRONJOB $CRONJOB-manual"
                fi
                ;;
        esac
    else
        record "last backup Job" FAIL "kubectl get jobs failed: $(first_line "$WORK/jobs.err")"
    fi

    if $HAVE_CRONJOB; then
        web_identity_role=""
        while IFS= read -r line; do
            if [[ $line == AWS_ROLE_ARN=* ]]; then
                web_identity_role=${line#AWS_ROLE_ARN=}
            fi
        done <"$WORK/cronjob.env"
        if kube -n "$NAMESPACE" get serviceaccount "$service_account" -o json >"$WORK/sa.json" 2>"$WORK/sa.err"; then
            role=$(query "$WORK/sa.json" annotation "$ROLE_ANNOTATION")
            if [[ -n $role ]]; then
                record "ServiceAccount role" PASS "$service_account: $ROLE_ANNOTATION=$role"
            elif [[ -n $web_identity_role ]]; then
                record "ServiceAccount role" PASS "$service_account: web identity AWS_ROLE_ARN=$web_identity_role"
            elif $HAVE_AWS && aws eks list-pod-identity-associations --cluster-name "$CLUSTER_NAME" --region "$REGION" \
                --namespace "$NAMESPACE" --service-account "$service_account" --output json >"$WORK/pia.json" 2>/dev/null &&
                [[ -n $(query "$WORK/pia.json" associations) ]]; then
                association=$(query "$WORK/pia.json" associations)
                record "ServiceAccount role" PASS "$service_account: EKS Pod Identity ${association%%$'\n'*}"
            else
                record "ServiceAccount role" FAIL "$service_account has no $ROLE_ANNOTATION annotation (nor AWS_ROLE_ARN, nor a Pod Identity association): set controlPlane.backup.serviceAccount.annotations"
            fi
        else
            record "ServiceAccount role" FAIL "$(first_line "$WORK/sa.err")"
        fi
    else
        record "ServiceAccount role" SKIP "no CronJob to read the ServiceAccount from"
    fi
fi

# ---------------------------------------------------------------- backup age
CLI=${AGENT_BOM_BACKUP_CLI:-agent-bom-backup}
if ! $HAVE_CRONJOB; then
    record "newest complete backup age" SKIP "needs the CronJob (its bucket and prefix)"
elif ! command -v "$CLI" >/dev/null 2>&1; then
    record "newest complete backup age" FAIL "$CLI not found: install agent-bom-backup (pip install . in a checkout) or set AGENT_BOM_BACKUP_CLI"
else
    bucket="" prefix="" bucket_region="" endpoint="" path_style="" checksum_mode=""
    while IFS= read -r line; do
        case $line in
            AGENT_BOM_BACKUP_BUCKET=*) bucket=${line#*=} ;;
            AGENT_BOM_BACKUP_PREFIX=*) prefix=${line#*=} ;;
            AGENT_BOM_BACKUP_REGION=*) bucket_region=${line#*=} ;;
            AGENT_BOM_BACKUP_ENDPOINT_URL=*) endpoint=${line#*=} ;;
            AGENT_BOM_BACKUP_PATH_STYLE=*) path_style=${line#*=} ;;
            AGENT_BOM_BACKUP_CHECKSUM_MODE=*) checksum_mode=${line#*=} ;;
        esac
    done <"$WORK/cronjob.env"
    if [[ -z $bucket ]]; then
        record "newest complete backup age" FAIL "the CronJob sets no AGENT_BOM_BACKUP_BUCKET value"
    else
        status=0
        (
            unset AGENT_BOM_BACKUP_ENDPOINT_URL AGENT_BOM_BACKUP_PATH_STYLE AGENT_BOM_BACKUP_CHECKSUM_MODE \
                AGENT_BOM_BACKUP_PREFIX AGENT_BOM_BACKUP_MAX_AGE
            export AGENT_BOM_BACKUP_BUCKET="$bucket"
            export AGENT_BOM_BACKUP_REGION="${bucket_region:-$REGION}"
            export AGENT_BOM_BACKUP_LOG_FORMAT=text AGENT_BOM_BACKUP_LOG_LEVEL=warning
            [[ -z $prefix ]] || export AGENT_BOM_BACKUP_PREFIX="$prefix"
            [[ -z $endpoint ]] || export AGENT_BOM_BACKUP_ENDPOINT_URL="$endpoint"
            [[ -z $path_style ]] || export AGENT_BOM_BACKUP_PATH_STYLE="$path_style"
            [[ -z $checksum_mode ]] || export AGENT_BOM_BACKUP_CHECKSUM_MODE="$checksum_mode"
            exec "$CLI" check --max-age "$MAX_AGE"
        ) >"$WORK/check.out" 2>&1 || status=$?
        case $status in
            0) record "newest complete backup age" PASS "$(first_line "$WORK/check.out")" ;;
            10) record "newest complete backup age" FAIL "$(first_line "$WORK/check.out")" ;;
            *) record "newest complete backup age" FAIL "agent-bom-backup check failed (exit $status): $(first_line "$WORK/check.out")" ;;
        esac
    fi
fi

# ---------------------------------------------------------------- report
printf 'agent-bom control-plane backup smoke checks: cluster %s (%s), namespace %s, release %s\n\n' \
    "$CLUSTER_NAME" "$REGION" "$NAMESPACE" "$RELEASE"
width=5
for name in "${NAMES[@]}"; do
    if ((${#name} > width)); then
        width=${#name}
    fi
done
printf "%-${width}s  %-6s  %s\n" CHECK RESULT DETAIL
passed=0 failed=0 skipped=0
for i in "${!NAMES[@]}"; do
    printf "%-${width}s  %-6s  %s\n" "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]}"
    case ${RESULTS[$i]} in
        PASS) passed=$((passed + 1)) ;;
        FAIL) failed=$((failed + 1)) ;;
        SKIP) skipped=$((skipped + 1)) ;;
    esac
done
printf '\n%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
if ((failed > 0)); then
    exit 1
fi
exit 0
