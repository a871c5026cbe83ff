{{/*
Names, labels, annotations, service accounts and the image of the agent-bom chart.

Values added after chart 0.1.0 are read with `dig`: with `helm upgrade --reuse-values` Helm
renders with the *previous* chart's defaults, which lack them (tests/chart/test_upgrade.py renders
exactly that). Where such a key has a default that is not empty, the template takes it from
agent-bom.defaults, never from a literal of its own.
*/}}

{{/*
The defaults a template applies itself, under controlPlane.backup: mostly keys that chart 0.1.0's
values.yaml lacks (`helm upgrade --reuse-values` from 0.1.0 renders without them), and a few it
had, for a key a user deleted by setting it to null. Each equals values.yaml's default
(tests/chart/test_defaults.py compares them, and fails on a literal default anywhere else in the
templates). values.yaml's own default is what renders whenever the key is there. Read with
(include "agent-bom.defaults" . | fromYaml), or one component's with agent-bom.componentDefaults.
*/}}
{{- define "agent-bom.defaults" -}}
terminationGracePeriodSeconds: 120
serviceAccount:
  create: true
clientEncryption:
  recipientsConfigMapKey: recipients
metrics:
  pushgateway:
    timeout: 10
notify:
  pingStyle: healthchecks
  timeout: 10
networkPolicy:
  ipFamilies:
    - IPv4
  dns:
    nodeLocal:
      addresses:
        - 169.254.20.10
restore:
  backupUri: latest
  activeDeadlineSeconds: 21600
  safetyBackupToBucket: true
  target:
    existingSecretKey: AGENT_BOM_RESTORE_POSTGRES_URL
  liveSourceCheck:
    existingSecretKey: AGENT_BOM_POSTGRES_URL
  encryption:
    existingSecretKey: identity.txt
  scratch:
    sizeLimit: 20Gi
  resources:
    requests:
      cpu: 250m
      memory: 512Mi
    limits:
      cpu: "2"
      memory: 2Gi
  serviceAccount:
    create: true
restoreDrill:
  target:
    existingSecretKey: AGENT_BOM_RESTORE_POSTGRES_URL
  liveSourceCheck:
    existingSecretKey: AGENT_BOM_POSTGRES_URL
  encryption:
    existingSecretKey: identity.txt
  serviceAccount:
    create: true
retention:
  schedule: "30 5 * * *"
  backoffLimit: 1
  activeDeadlineSeconds: 3600
  keepLast: 7
  resources:
    requests:
      cpu: 50m
      memory: 128Mi
    limits:
      cpu: 500m
      memory: 256Mi
  serviceAccount:
    create: true
{{- end }}

{{/*
The values map of a component: "backup" (controlPlane.backup itself), "restore", "restoreDrill",
"retention" or "helmTest". Call with (dict "context" $ "component" NAME); returns JSON.
*/}}
{{- define "agent-bom.componentValues" -}}
{{- $b := .context.Values.controlPlane.backup }}
{{- if eq .component "backup" }}
{{- toJson $b }}
{{- else }}
{{- toJson (dig .component dict $b) }}
{{- end }}
{{- end }}

{{/*
The defaults of one component's values (agent-bom.componentValues): "backup" (all of
agent-bom.defaults), "restore", "restoreDrill", "retention" or "helmTest". Call with
(dict "context" $ "component" NAME); returns JSON.
*/}}
{{- define "agent-bom.componentDefaults" -}}
{{- $defaults := include "agent-bom.defaults" .context | fromYaml }}
{{- if eq .component "backup" }}
{{- toJson $defaults }}
{{- else }}
{{- toJson (dig .component dict $defaults) }}
{{- end }}
{{- end }}

{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "agent-bom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A name cut to .max characters that stays unique: unchanged when it fits; otherwise its first
(.max - 7) characters, "-" and the first 6 hex digits of the sha256 of the whole name, so two
long names that share their beginning never render the same. Call with (dict "name" N "max" M).
*/}}
{{- define "agent-bom.truncName" -}}
{{- if le (len .name) (int .max) }}
{{- .name | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" (.name | trunc (sub .max 7 | int) | trimSuffix "-") (sha256sum .name | trunc 6) }}
{{- end }}
{{- end }}

{{/*
Fully qualified name prefix of every resource (63 characters at most, see agent-bom.truncName).
The release name is used alone when it is the chart name, or contains it without ending in
"-<chart name>": release "x-agent-bom" renders "x-agent-bom-agent-bom", so it never takes the
names of release "x" ("x-agent-bom").
Release "<name>-backup" (agent-bom-backup, the documented release beside upstream's `agent-bom`)
uses the chart name, so its CronJob keeps the runbook's name agent-bom-control-plane-backup.
*/}}
{{- define "agent-bom.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- include "agent-bom.truncName" (dict "name" .Values.fullnameOverride "max" 63) }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if eq .Release.Name (printf "%s-backup" $name) }}
{{- include "agent-bom.truncName" (dict "name" $name "max" 63) }}
{{- else if or (eq .Release.Name $name) (and (contains $name .Release.Name) (not (hasSuffix (printf "-%s" $name) .Release.Name))) }}
{{- include "agent-bom.truncName" (dict "name" .Release.Name "max" 63) }}
{{- else }}
{{- include "agent-bom.truncName" (dict "name" (printf "%s-%s" .Release.Name $name) "max" 63) }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "agent-bom.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of a component's objects: "<fullname>-<suffix>", at most 52 characters (the CronJob
controller appends an 11-character suffix to Job names), so the prefix is shortened *before*
the suffix is added; a shortened prefix ends in 6 hex digits of its sha256, so two releases
whose long names share their first characters never render the same object names. Call with (dict "context" $ "suffix" "control-plane-backup").
*/}}
{{- define "agent-bom.componentName" -}}
{{- $fullname := include "agent-bom.fullname" .context }}
{{- $room := sub 51 (len .suffix) | int }}
{{- if le (len $fullname) $room }}
{{- printf "%s-%s" $fullname .suffix }}
{{- else }}
{{- printf "%s-%s-%s" ($fullname | trunc (sub $room 7 | int) | trimSuffix "-") (sha256sum $fullname | trunc 6) .suffix }}
{{- end }}
{{- end }}

{{- define "agent-bom.backup.fullname" -}}
{{- include "agent-bom.componentName" (dict "context" . "suffix" "control-plane-backup") }}
{{- end }}

{{- define "agent-bom.restoreDrill.fullname" -}}
{{- include "agent-bom.componentName" (dict "context" . "suffix" "control-plane-restore-drill") }}
{{- end }}

{{- define "agent-bom.restore.fullname" -}}
{{- include "agent-bom.componentName" (dict "context" . "suffix" "control-plane-restore") }}
{{- end }}

{{- define "agent-bom.retention.fullname" -}}
{{- include "agent-bom.componentName" (dict "context" . "suffix" "control-plane-retention") }}
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
{{- toYaml (merge $own (default dict $ctx.Values.commonLabels)) -}}
{{- end }}

{{/*
metadata.annotations of an object: commonAnnotations plus the object's own (which win).
Renders nothing when both are empty. Call with (dict "context" $ "annotations" MAP).
*/}}
{{- define "agent-bom.annotations" -}}
{{- $all := merge (deepCopy (default dict .annotations)) (default dict .context.Values.commonAnnotations) -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Pod labels: standard labels plus user podLabels (the chart's labels win on conflict).
Call with (dict "context" $ "component" "control-plane-backup").
*/}}
{{- define "agent-bom.backup.podLabels" -}}
{{- $own := include "agent-bom.labels" . | fromYaml -}}
{{- toYaml (merge $own .context.Values.controlPlane.backup.podLabels) -}}
{{- end }}

{{/*
Whether the chart creates a component's ServiceAccount ("true" or empty): its serviceAccount.create,
else the default. Call with (dict "context" $ "component" NAME).
*/}}
{{- define "agent-bom.createsOwnServiceAccount" -}}
{{- $sa := include "agent-bom.ownServiceAccount" . | fromJson }}
{{- $default := (include "agent-bom.componentDefaults" . | fromJson).serviceAccount.create }}
{{- if dig "create" $default $sa }}true{{ end }}
{{- end }}

{{/* A component's serviceAccount values, as JSON ({} when it has none). Call with (dict "context" $ "component" NAME). */}}
{{- define "agent-bom.ownServiceAccount" -}}
{{- $b := .context.Values.controlPlane.backup }}
{{- toJson (default dict (ternary $b.serviceAccount (dig .component "serviceAccount" dict $b) (eq .component "backup"))) }}
{{- end }}

{{/*
Name of a component's ServiceAccount, created or reused: its serviceAccount.name, else the
component's object name. Call with (dict "context" $ "component" NAME "default" NAME).
*/}}
{{- define "agent-bom.serviceAccountName" -}}
{{- $sa := include "agent-bom.ownServiceAccount" . | fromJson }}
{{- if include "agent-bom.createsOwnServiceAccount" . }}
{{- default .default $sa.name }}
{{- else }}
{{- $sa.name }}
{{- end }}
{{- end }}

{{/* The backup's ServiceAccount: upstream `serviceAccountName` (an existing one) wins. */}}
{{- define "agent-bom.backup.serviceAccountName" -}}
{{- $b := .Values.controlPlane.backup }}
{{- with (dig "serviceAccountName" "" $b) }}
{{- . }}
{{- else }}
{{- include "agent-bom.serviceAccountName" (dict "context" . "component" "backup" "default" (include "agent-bom.backup.fullname" .)) }}
{{- end }}
{{- end }}

{{/* Whether the chart creates the backup ServiceAccount ("true" or empty). */}}
{{- define "agent-bom.backup.createsServiceAccount" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if and (not (dig "serviceAccountName" "" $b)) $b.serviceAccount.create }}true{{ end }}
{{- end }}

{{- define "agent-bom.restoreDrill.serviceAccountName" -}}
{{- include "agent-bom.serviceAccountName" (dict "context" . "component" "restoreDrill" "default" (include "agent-bom.restoreDrill.fullname" .)) }}
{{- end }}

{{- define "agent-bom.restore.serviceAccountName" -}}
{{- include "agent-bom.serviceAccountName" (dict "context" . "component" "restore" "default" (include "agent-bom.restore.fullname" .)) }}
{{- end }}

{{- define "agent-bom.retention.serviceAccountName" -}}
{{- include "agent-bom.serviceAccountName" (dict "context" . "component" "retention" "default" (include "agent-bom.retention.fullname" .)) }}
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

{{/* Image pull Secret names: global.imagePullSecrets (names or {name: ...}), then image.pullSecrets, each once. */}}
{{- define "agent-bom.imagePullSecretNames" -}}
{{- $names := list }}
{{- range (dig "imagePullSecrets" list (default dict .Values.global)) }}
{{- if kindIs "map" . }}
{{- $names = append $names (get . "name") }}
{{- else }}
{{- $names = append $names . }}
{{- end }}
{{- end }}
{{- range .Values.controlPlane.backup.image.pullSecrets }}
{{- $names = append $names . }}
{{- end }}
{{- toJson (compact $names | uniq) }}
{{- end }}
