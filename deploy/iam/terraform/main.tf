# One IAM role per job of the agent-bom-backup chart, each trusted by the cluster's OIDC provider
# for its own ServiceAccount only (IRSA), with the policy documents of deploy/iam/. Outputs the
# role ARNs for the chart's values:
#   controlPlane.backup.serviceAccount.annotations."eks.amazonaws.com/role-arn"             = backup
#   controlPlane.backup.restore.serviceAccount.annotations."eks.amazonaws.com/role-arn"     = restore
#   controlPlane.backup.restoreDrill.serviceAccount.annotations."eks.amazonaws.com/role-arn" = drill
#   controlPlane.backup.retention.serviceAccount.annotations."eks.amazonaws.com/role-arn"   = retention
# With EKS Pod Identity instead, set use_pod_identity = true: the roles trust
# pods.eks.amazonaws.com and aws_eks_pod_identity_association binds each to its ServiceAccount.

variable "cluster_name" { type = string }
variable "namespace" {
  type    = string
  default = "agent-bom"
}
variable "use_pod_identity" {
  type    = bool
  default = false
}

data "aws_eks_cluster" "this" { name = var.cluster_name }

data "aws_iam_openid_connect_provider" "this" {
  count = var.use_pod_identity ? 0 : 1
  url   = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

locals {
  oidc_provider = replace(data.aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
  # service_account: the names of release agent-bom-backup (the CronJob keeps the runbook's name)
  jobs = {
    backup    = { service_account = "agent-bom-control-plane-backup", policy = "backup-role-policy.json" }
    restore   = { service_account = "agent-bom-control-plane-restore", policy = "restore-role-policy.json" }
    drill     = { service_account = "agent-bom-control-plane-restore-drill", policy = "restore-role-policy.json" }
    retention = { service_account = "agent-bom-control-plane-retention", policy = "prune-role-policy.json" }
  }
}

data "aws_iam_policy_document" "trust" {
  for_each = local.jobs

  dynamic "statement" {
    for_each = var.use_pod_identity ? [] : [1]
    content {
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [data.aws_iam_openid_connect_provider.this[0].arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_provider}:sub"
        values   = ["system:serviceaccount:${var.namespace}:${each.value.service_account}"]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_provider}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.use_pod_identity ? [1] : []
    content {
      actions = ["sts:AssumeRole", "sts:TagSession"]
      principals {
        type        = "Service"
        identifiers = ["pods.eks.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "job" {
  for_each           = local.jobs
  name               = "agent-bom-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.trust[each.key].json
}

resource "aws_iam_role_policy" "job" {
  for_each = local.jobs
  name     = "agent-bom-${each.key}"
  role     = aws_iam_role.job[each.key].id
  # edit the bucket, prefix, region, account and key in these files first (deploy/iam/README.md)
  policy = file("${path.module}/../${each.value.policy}")
}

resource "aws_eks_pod_identity_association" "job" {
  for_each        = var.use_pod_identity ? local.jobs : {}
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.job[each.key].arn
}

output "role_arns" {
  value = { for job, role in aws_iam_role.job : job => role.arn }
}
