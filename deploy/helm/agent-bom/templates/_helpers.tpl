{{/*
Names, labels, service accounts and the image of the agent-bom chart.
*/}}

{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "agent-bom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name prefix of every resource (63 characters at most).
The release name is used alone when it already contains the chart name.
*/}}
{{- define "agent-bom.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "agent-bom.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
CronJob names must stay <= 52 characters (the controller appends an 11-character
suffix to Job names), so the prefix is truncated *before* the suffix is added.
"-control-plane-backup" is 21 characters: 31 remain for the prefix.
*/}}
{{- define "agent-bom.backup.fullname" -}}
{{- printf "%s-control-plane-backup" (include "agent-bom.fullname" . | trunc 31 | trimSuffix "-") }}
{{- end }}

{{/* "-control-plane-restore-drill" is 28 characters: 24 remain for the prefix. */}}
{{- define "agent-bom.restoreDrill.fullname" -}}
{{- printf "%s-control-plane-restore-drill" (include "agent-bom.fullname" . | trunc 24 | trimSuffix "-") }}
{{- end }}

{{/*
Selector labels: a strict subset of the standard labels, stable across upgrades.
Call with (dict "context" $ "component" "control-plane-backup").
*/}}
{{- define "agent-bom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-bom.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Standard labels (commonLabels first; the chart's own labels win on conflict).
Call with (dict "context" $ "component" "control-plane-backup").
*/}}
{{- define "agent-bom.labels" -}}
{{- $ctx := .context -}}
{{- $own := include "agent-bom.selectorLabels" . | fromYaml -}}
{{- $_ := set $own "helm.sh/chart" (include "agent-bom.chart" $ctx) -}}
{{- $_ := set $own "app.kubernetes.io/version" $ctx.Chart.AppVersion -}}
{{- $_ := set $own "app.kubernetes.io/managed-by" $ctx.Release.Service -}}
{{- $_ := set $own "app.kubernetes.io/part-of" "agent-bom" -}}
{{- toYaml (merge $own $ctx.Values.commonLabels) -}}
{{- end }}

{{/*
Pod labels: standard labels plus user podLabels (the chart's labels win on conflict).
Call with (dict "context" $ "component" "control-plane-backup").
*/}}
{{- define "agent-bom.backup.podLabels" -}}
{{- $own := include "agent-bom.labels" . | fromYaml -}}
{{- toYaml (merge $own .context.Values.controlPlane.backup.podLabels) -}}
{{- end }}

{{/* Name of the backup ServiceAccount (created or existing). */}}
{{- define "agent-bom.backup.serviceAccountName" -}}
{{- $sa := .Values.controlPlane.backup.serviceAccount }}
{{- if $sa.create }}
{{- default (include "agent-bom.backup.fullname" .) $sa.name }}
{{- else }}
{{- $sa.name }}
{{- end }}
{{- end }}

{{/* Name of the restore-drill ServiceAccount (created or existing). */}}
{{- define "agent-bom.restoreDrill.serviceAccountName" -}}
{{- $sa := .Values.controlPlane.backup.restoreDrill.serviceAccount }}
{{- if $sa.create }}
{{- default (include "agent-bom.restoreDrill.fullname" .) $sa.name }}
{{- else }}
{{- $sa.name }}
{{- end }}
{{- end }}

{{/* Job image: repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "agent-bom.backup.image" -}}
{{- $image := .Values.controlPlane.backup.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}
