{{/*
How a run reaches a person (docs/runbook.md "Monitoring"): the Pushgateway, the dead-man ping
of this job's own check and the webhook, as environment variables of one job's container.
The URLs with tokens come from Secrets only (optional keys: a job without its ping URL pings
nothing). Call with (dict "context" $ "cronjob" NAME "kind" backup|drill|retention|restore
"pingKey" backupPingUrl|drillPingUrl|retentionPingUrl|restorePingUrl).
*/}}
{{- define "agent-bom.backup.notifyEnv" -}}
{{- $b := .context.Values.controlPlane.backup }}
{{- $pg := dig "metrics" "pushgateway" dict $b }}
{{- $n := dig "notify" dict $b }}
{{- $defaults := include "agent-bom.defaults" .context | fromYaml }}
{{- if or $pg.url $n.existingSecret -}}
- name: AGENT_BOM_BACKUP_CRONJOB
  value: {{ .cronjob | quote }}
- name: AGENT_BOM_BACKUP_NAMESPACE
  value: {{ .context.Release.Namespace | quote }}
- name: AGENT_BOM_BACKUP_JOB_KIND
  value: {{ .kind | quote }}
{{- with $pg.url }}
- name: AGENT_BOM_BACKUP_PUSHGATEWAY_URL
  value: {{ . | quote }}
- name: AGENT_BOM_BACKUP_PUSHGATEWAY_TIMEOUT
  value: {{ $pg.timeout | default $defaults.metrics.pushgateway.timeout | quote }}
{{- with $pg.existingSecret }}
{{- range $key, $env := dict "username" "AGENT_BOM_BACKUP_PUSHGATEWAY_USERNAME" "password" "AGENT_BOM_BACKUP_PUSHGATEWAY_PASSWORD" "authorization" "AGENT_BOM_BACKUP_PUSHGATEWAY_AUTHORIZATION" }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret | quote }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- with $n.existingSecret }}
- name: AGENT_BOM_BACKUP_PING_URL
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.pingKey }}
      optional: true
- name: AGENT_BOM_BACKUP_WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: webhookUrl
      optional: true
- name: AGENT_BOM_BACKUP_PING_STYLE
  value: {{ $n.pingStyle | default $defaults.notify.pingStyle | quote }}
- name: AGENT_BOM_BACKUP_NOTIFY_TIMEOUT
  value: {{ $n.timeout | default $defaults.notify.timeout | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The expression of a "runs of this CronJob fail" alert, one line: a Job of the CronJob
(kube_job_owner) whose own Failed condition is true (kube_job_failed: a Job retried to success
never has it) and that started after the CronJob's last success; or, where kube-state-metrics
does not know the CronJob, a pushed failure newer than the pushed last success. The value is
the failed Job's start time (or the pushed failure time). Call with (dict "namespace" NS
"cronjob" NAME "kind" backup|drill|retention).
*/}}
{{- define "agent-bom.prometheusRule.failedExpr" -}}
{{- $sel := printf "namespace=%q, cronjob=%q" .namespace .cronjob }}
{{- $failedJobs := printf "(max by (namespace, job_name) (kube_job_failed{namespace=%q, condition=\"true\"} == 1) * on (namespace, job_name) group_left (cronjob) max by (namespace, job_name, cronjob) (label_replace(kube_job_owner{namespace=%q, owner_kind=\"CronJob\", owner_name=%q}, \"cronjob\", \"$1\", \"owner_name\", \"(.+)\")) * on (namespace, job_name) group_left () max by (namespace, job_name) (kube_job_status_start_time{namespace=%q}))" .namespace .namespace .cronjob .namespace }}
{{- $lastSuccess := printf "max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{%s})" $sel }}
{{- $pushedFailure := printf "max by (namespace, cronjob) (agent_bom_backup_last_failure_timestamp_seconds{%s, kind=%q})" $sel .kind }}
{{- $pushedSuccess := printf "max by (namespace, cronjob) (agent_bom_backup_last_success_timestamp_seconds{%s, kind=%q})" $sel .kind }}
{{- printf "(%s > on (namespace, cronjob) group_left () %s) or (%s unless on (namespace, cronjob) %s) or (((%s > %s) or (%s unless %s)) unless on (namespace, cronjob) kube_cronjob_info{%s})" $failedJobs $lastSuccess $failedJobs $lastSuccess $pushedFailure $pushedSuccess $pushedFailure $pushedSuccess $sel }}
{{- end }}
