{{/*
The identity a job's pods reach the bucket with, as NOTES prints it: what the chart can see
(role annotations of the ServiceAccount it creates, a web identity role, static credentials), or
nothing. Call with (dict "annotations" MAP "roleArn" ARN "staticSecret" NAME).
*/}}
{{- define "agent-bom.identity.describe" -}}
{{- $a := default dict .annotations }}
{{- $found := list }}
{{- with (get $a "eks.amazonaws.com/role-arn") }}{{ $found = append $found (printf "IRSA role %s" .) }}{{ end }}
{{- with (get $a "iam.gke.io/gcp-service-account") }}{{ $found = append $found (printf "GKE Workload Identity %s" .) }}{{ end }}
{{- with (get $a "azure.workload.identity/client-id") }}{{ $found = append $found (printf "Azure Workload Identity client %s" .) }}{{ end }}
{{- with .roleArn }}{{ $found = append $found (printf "web identity role %s" .) }}{{ end }}
{{- with .staticSecret }}{{ $found = append $found (printf "static credentials from Secret %s" .) }}{{ end }}
{{- join ", " $found }}
{{- end }}

{{/*
One entry per enabled job, as JSON: [{"job", "serviceAccount", "identity", "existing", "values"}].
"existing": the chart does not create the ServiceAccount (its identity is set outside the chart);
"values": where to give it one.
*/}}
{{- define "agent-bom.identity.jobs" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $web := $b.webIdentity.enabled }}
{{- $static := $b.destination.staticCredentials }}
{{- $jobs := list }}
{{- if $b.enabled }}
{{- $existing := not (include "agent-bom.backup.createsServiceAccount" .) }}
{{- $jobs = append $jobs (dict "job" "backup" "serviceAccount" (include "agent-bom.backup.serviceAccountName" .) "existing" $existing "values" "controlPlane.backup.serviceAccount.annotations" "identity" (include "agent-bom.identity.describe" (dict "annotations" (ternary dict $b.serviceAccount.annotations $existing) "roleArn" (ternary $b.webIdentity.roleArn "" $web) "staticSecret" (ternary $static.existingSecret "" $static.enabled)))) }}
{{- $restore := dig "restore" dict $b }}
{{- if dig "enabled" false $restore }}
{{- $sa := dig "serviceAccount" dict $restore }}
{{- $jobs = append $jobs (dict "job" "restore" "serviceAccount" (include "agent-bom.restore.serviceAccountName" .) "existing" (not (include "agent-bom.createsOwnServiceAccount" (dict "context" . "component" "restore"))) "values" "controlPlane.backup.restore.serviceAccount.annotations" "identity" (include "agent-bom.identity.describe" (dict "annotations" (dig "annotations" dict $sa) "roleArn" (ternary (dig "webIdentityRoleArn" "" $restore) "" $web) "staticSecret" (dig "staticCredentialsSecret" "" $restore)))) }}
{{- end }}
{{- $drill := $b.restoreDrill }}
{{- if $drill.enabled }}
{{- $jobs = append $jobs (dict "job" "restore drill" "serviceAccount" (include "agent-bom.restoreDrill.serviceAccountName" .) "existing" (not (include "agent-bom.createsOwnServiceAccount" (dict "context" . "component" "restoreDrill"))) "values" "controlPlane.backup.restoreDrill.serviceAccount.annotations" "identity" (include "agent-bom.identity.describe" (dict "annotations" (dig "annotations" dict $drill.serviceAccount) "roleArn" (ternary (dig "webIdentityRoleArn" "" $drill) "" $web) "staticSecret" (dig "staticCredentialsSecret" "" $drill)))) }}
{{- end }}
{{- if not (kindIs "invalid" (dig "retentionDays" nil $b)) }}
{{- $retention := dig "retention" dict $b }}
{{- $sa := dig "serviceAccount" dict $retention }}
{{- $jobs = append $jobs (dict "job" "retention" "serviceAccount" (include "agent-bom.retention.serviceAccountName" .) "existing" (not (include "agent-bom.createsOwnServiceAccount" (dict "context" . "component" "retention"))) "values" "controlPlane.backup.retention.serviceAccount.annotations" "identity" (include "agent-bom.identity.describe" (dict "annotations" (dig "annotations" dict $sa) "roleArn" (ternary (dig "webIdentityRoleArn" "" $retention) "" $web) "staticSecret" (dig "staticCredentialsSecret" "" $retention)))) }}
{{- end }}
{{- end }}
{{- $jobs | toJson }}
{{- end }}
