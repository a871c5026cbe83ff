{{/*
Pod building blocks shared by every pod of the chart: environment, volumes, placement and the
Job failure policy. The chart sets environment variables only; docs/configuration.md lists
what the CLI reads, deploy/helm/agent-bom/interface.json which value sets which variable.
*/}}

{{/* Mount paths of the read-only CA bundles, the projected web-identity token and restore files. */}}
{{- define "agent-bom.backup.paths" -}}
destinationCa: /etc/agent-bom/object-store-ca
databaseCa: /etc/agent-bom/postgres-ca
webIdentityToken: /var/run/secrets/agent-bom/aws-token
restoreFiles: /var/lib/agent-bom/restore
ageIdentity: /etc/agent-bom/age-identity
{{- end }}

{{/* Region the chart uses: bucketRegion, else upstream's destination.region. */}}
{{- define "agent-bom.backup.region" -}}
{{- $dest := .Values.controlPlane.backup.destination }}
{{- default (dig "region" "" $dest) $dest.bucketRegion }}
{{- end }}

{{/* Endpoint the chart uses: endpointUrl, else upstream's destination.endpoint. */}}
{{- define "agent-bom.backup.endpoint" -}}
{{- $dest := .Values.controlPlane.backup.destination }}
{{- default (dig "endpoint" "" $dest) $dest.endpointUrl }}
{{- end }}

{{/*
The age identity file of a restore or drill pod (client-side encryption), from
(dict "encryption" RESTORE_OR_DRILL.encryption): its env entry, or nothing. The backup pod never
calls this: it holds public keys only.
*/}}
{{- define "agent-bom.backup.identityEnv" -}}
{{- with dig "existingSecret" "" .encryption }}
- name: AGENT_BOM_RESTORE_IDENTITY_FILE
  value: {{ printf "%s/identity.txt" (include "agent-bom.backup.paths" . | fromYaml).ageIdentity | quote }}
{{- end }}
{{- end }}

{{/*
Where the source database URL comes from, as JSON {"name", "key", "maintenance"}:
controlPlane.postgresSecrets (upstream's maintenance identity), else an upstream `env` entry
AGENT_BOM_POSTGRES_MAINTENANCE_URL from a Secret, else controlPlane.backup.database.
*/}}
{{- define "agent-bom.backup.databaseSource" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $postgresSecrets := dig "postgresSecrets" dict .Values.controlPlane }}
{{- $source := dict "name" $b.database.existingSecret "key" $b.database.existingSecretKey "maintenance" false }}
{{- range (concat $b.extraEnv (dig "env" list $b)) }}
{{- if and (eq .name "AGENT_BOM_POSTGRES_MAINTENANCE_URL") (dig "valueFrom" "secretKeyRef" "name" "" .) }}
{{- $source = dict "name" .valueFrom.secretKeyRef.name "key" .valueFrom.secretKeyRef.key "maintenance" true }}
{{- end }}
{{- end }}
{{- if $postgresSecrets.enabled }}
{{- $source = dict "name" (dig "maintenanceSecretRef" "name" "" $postgresSecrets) "key" "AGENT_BOM_POSTGRES_MAINTENANCE_URL" "maintenance" true }}
{{- end }}
{{- toJson $source }}
{{- end }}

{{/* Value of AGENT_BOM_BACKUP_SSE: aws:kms, AES256 or none. */}}
{{- define "agent-bom.backup.sse" -}}
{{- $enc := .Values.controlPlane.backup.destination.encryption }}
{{- if $enc.enabled }}
{{- $enc.mode }}
{{- else -}}
none
{{- end }}
{{- end }}

{{/*
Storage, identity, TLS and logging environment of every pod of the chart.
Call with (dict "context" $ "credentialsSecret" NAME "roleArn" ARN).
*/}}
{{- define "agent-bom.backup.storageEnv" -}}
{{- $b := .context.Values.controlPlane.backup }}
{{- $dest := $b.destination }}
{{- $region := include "agent-bom.backup.region" .context }}
{{- $paths := include "agent-bom.backup.paths" . | fromYaml -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: AGENT_BOM_BACKUP_BUCKET
  value: {{ $dest.bucket | quote }}
- name: AGENT_BOM_BACKUP_PREFIX
  value: {{ $dest.prefix | quote }}
- name: AGENT_BOM_BACKUP_REGION
  value: {{ $region | quote }}
- name: AWS_REGION
  value: {{ $region | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ $region | quote }}
- name: AGENT_BOM_BACKUP_VERIFY_REGION
  value: {{ $dest.verifyRegion | quote }}
{{- with include "agent-bom.backup.endpoint" .context }}
- name: AGENT_BOM_BACKUP_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AGENT_BOM_BACKUP_PATH_STYLE
  value: {{ $dest.pathStyle | quote }}
- name: AGENT_BOM_BACKUP_CHECKSUM_MODE
  value: {{ $dest.checksumMode | quote }}
{{- if or $dest.caBundle.secretName $dest.caBundle.configMapName }}
- name: AGENT_BOM_BACKUP_CA_BUNDLE
  value: {{ printf "%s/ca.crt" $paths.destinationCa | quote }}
{{- end }}
{{- if $dest.staticCredentials.enabled }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .credentialsSecret | quote }}
      key: {{ $dest.staticCredentials.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .credentialsSecret | quote }}
      key: {{ $dest.staticCredentials.secretAccessKeyKey | quote }}
{{- with $dest.staticCredentials.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $.credentialsSecret | quote }}
      key: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $b.webIdentity.enabled }}
- name: AWS_ROLE_ARN
  value: {{ .roleArn | quote }}
- name: AWS_WEB_IDENTITY_TOKEN_FILE
  value: {{ printf "%s/token" $paths.webIdentityToken | quote }}
{{- end }}
- name: AGENT_BOM_BACKUP_LOG_FORMAT
  value: {{ $b.logging.format | quote }}
- name: AGENT_BOM_BACKUP_LOG_LEVEL
  value: {{ $b.logging.level | quote }}
{{- end }}

{{/*
The backup's source database URL, from a Secret only. Only the backup and its helm test get
it: the restore and the drill compare their target with the backup's recorded server identity
(the manifest's system_identifier) and read a live source only through a Secret of their own
(restore.liveSourceCheck / restoreDrill.liveSourceCheck).
*/}}
{{- define "agent-bom.backup.databaseUrlEnv" -}}
{{- $source := include "agent-bom.backup.databaseSource" . | fromJson -}}
- name: AGENT_BOM_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ $source.name | quote }}
      key: {{ $source.key | quote }}
{{- end }}

{{/* libpq TLS settings (sslmode, CA bundle) of every pod that connects to a database; empty when none. */}}
{{- define "agent-bom.backup.databaseTlsEnv" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $paths := include "agent-bom.backup.paths" . | fromYaml }}
{{- with $b.database.sslMode }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- if or $b.database.caBundle.secretName $b.database.caBundle.configMapName }}
- name: PGSSLROOTCERT
  value: {{ printf "%s/ca.crt" $paths.databaseCa | quote }}
{{- end }}
{{- end }}

{{/*
A restore's or a drill's optional live-source check: AGENT_BOM_POSTGRES_URL from a low-privilege
Secret of its own (never the backup's source). Call with (dict "context" $ "component" NAME).
*/}}
{{- define "agent-bom.liveSourceEnv" -}}
{{- $values := include "agent-bom.componentValues" . | fromJson }}
{{- $defaults := include "agent-bom.componentDefaults" . | fromJson }}
{{- with (dig "liveSourceCheck" "existingSecret" "" $values) -}}
- name: AGENT_BOM_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ dig "liveSourceCheck" "existingSecretKey" $defaults.liveSourceCheck.existingSecretKey $values | quote }}
{{- end }}
{{- end }}

{{/*
The user's extra environment of one component. The backup's: controlPlane.backup.extraEnv, then
upstream's env, without an AGENT_BOM_POSTGRES_MAINTENANCE_URL entry (consumed as the backup's
source, AGENT_BOM_POSTGRES_URL). Another component's: its own extraEnv only, never the backup's.
Call with (dict "context" $ "component" NAME).
*/}}
{{- define "agent-bom.extraEnv" -}}
{{- $values := include "agent-bom.componentValues" . | fromJson }}
{{- $entries := dig "extraEnv" list $values }}
{{- if eq .component "backup" }}
{{- $entries = list }}
{{- range (concat (dig "extraEnv" list $values) (dig "env" list $values)) }}
{{- if ne .name "AGENT_BOM_POSTGRES_MAINTENANCE_URL" }}
{{- $entries = append $entries . }}
{{- end }}
{{- end }}
{{- end }}
{{- with $entries }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
The user's envFrom sources of one component (the backup's: extraEnvFrom, then upstream's
envFrom); empty when none. Call with (dict "context" $ "component" NAME).
*/}}
{{- define "agent-bom.envFrom" -}}
{{- $values := include "agent-bom.componentValues" . | fromJson }}
{{- $sources := dig "extraEnvFrom" list $values }}
{{- if eq .component "backup" }}
{{- $sources = concat $sources (dig "envFrom" list $values) }}
{{- end }}
{{- with $sources }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Environment of the backup container (and of the helm test, which runs its preflight), without
the user's extra environment (agent-bom.extraEnv, per component).
*/}}
{{- define "agent-bom.backup.env" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $dest := $b.destination }}
{{- $source := include "agent-bom.backup.databaseSource" . | fromJson }}
{{- $settings := dig "sessionSettings" list $b.dump }}
{{- if $source.maintenance }}
{{- $settings = prepend $settings "app.bypass_rls=1" }}
{{- end -}}
{{- include "agent-bom.backup.storageEnv" (dict "context" . "credentialsSecret" $dest.staticCredentials.existingSecret "roleArn" $b.webIdentity.roleArn) }}
{{ include "agent-bom.backup.databaseUrlEnv" . }}
{{- with include "agent-bom.backup.databaseTlsEnv" . }}
{{ . }}
{{- end }}
- name: AGENT_BOM_BACKUP_SSE
  value: {{ include "agent-bom.backup.sse" . | quote }}
{{- if and $dest.encryption.enabled $dest.encryption.kmsKeyId }}
- name: AGENT_BOM_BACKUP_KMS_KEY_ID
  value: {{ $dest.encryption.kmsKeyId | quote }}
{{- end }}
{{- with $dest.storageClass }}
- name: AGENT_BOM_BACKUP_STORAGE_CLASS
  value: {{ . | quote }}
{{- end }}
- name: AGENT_BOM_BACKUP_COMPRESSION
  value: {{ $b.dump.compression | quote }}
{{- with $b.dump.compressionFallback }}
- name: AGENT_BOM_BACKUP_COMPRESSION_FALLBACK
  value: {{ . | quote }}
{{- end }}
- name: AGENT_BOM_BACKUP_TENANT_COLUMN
  value: {{ $b.dump.tenantColumn | quote }}
{{- if not (kindIs "invalid" $b.dump.lockWaitTimeout) }}
- name: AGENT_BOM_BACKUP_LOCK_WAIT_TIMEOUT
  value: {{ $b.dump.lockWaitTimeout | int64 | quote }}
{{- end }}
{{- if or $b.dump.enableRowSecurity $source.maintenance }}
- name: AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY
  value: "true"
{{- end }}
{{- with $settings }}
- name: AGENT_BOM_BACKUP_SESSION_SETTINGS
  value: {{ join " " . | quote }}
{{- end }}
{{- with $b.dump.excludeTables }}
- name: AGENT_BOM_BACKUP_EXCLUDE_TABLES
  value: {{ join "\n" . | quote }}
{{- end }}
{{- with $b.upload.partSize }}
- name: AGENT_BOM_BACKUP_PART_SIZE
  value: {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" $b.upload.concurrency) }}
- name: AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY
  value: {{ $b.upload.concurrency | int64 | quote }}
{{- end }}
{{- /* the container's memory limit in bytes: the CLI's memory budget is 60% of it */}}
- name: AGENT_BOM_BACKUP_MEMORY_LIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- with $b.metricsFile }}
- name: AGENT_BOM_BACKUP_METRICS_FILE
  value: {{ . | quote }}
{{- end }}
{{- with include "agent-bom.backup.notifyEnv" (dict "context" . "cronjob" (include "agent-bom.backup.fullname" .) "kind" "backup" "pingKey" "backupPingUrl") }}
{{ . }}
{{- end }}
{{- $ce := dig "clientEncryption" dict $b }}
{{- if dig "recipients" list $ce }}
- name: AGENT_BOM_BACKUP_ENCRYPT_TO
  value: {{ join "\n" $ce.recipients | quote }}
{{- else if dig "recipientsConfigMap" "" $ce }}
- name: AGENT_BOM_BACKUP_ENCRYPT_TO
  valueFrom:
    configMapKeyRef:
      name: {{ $ce.recipientsConfigMap | quote }}
      key: {{ $ce.recipientsConfigMapKey | default (include "agent-bom.defaults" . | fromYaml).clientEncryption.recipientsConfigMapKey | quote }}
{{- end }}
{{- end }}

{{/* Read-only CA bundle volume source. Call with (dict "bundle" .caBundle). */}}
{{- define "agent-bom.backup.caVolumeSource" -}}
{{- if .bundle.secretName -}}
secret:
  secretName: {{ .bundle.secretName | quote }}
  defaultMode: 0444
  items:
    - key: {{ .bundle.key | quote }}
      path: ca.crt
{{- else -}}
configMap:
  name: {{ .bundle.configMapName | quote }}
  defaultMode: 0444
  items:
    - key: {{ .bundle.key | quote }}
      path: ca.crt
{{- end }}
{{- end }}

{{/*
Volumes of a pod of the chart. Call with (dict "context" $ "component" NAME "scratchSizeLimit" SIZE
["claim" PVC] ["database" false]); a claim is mounted read-write at paths.restoreFiles; the
database CA bundle is left out with "database" false (a pod that connects to no database); the
extra volumes are the component's own (agent-bom.componentValues).
*/}}
{{- define "agent-bom.backup.volumes" -}}
{{- $b := .context.Values.controlPlane.backup -}}
{{- $values := include "agent-bom.componentValues" . | fromJson -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .scratchSizeLimit | quote }}
{{- if or $b.destination.caBundle.secretName $b.destination.caBundle.configMapName }}
- name: object-store-ca
  {{- include "agent-bom.backup.caVolumeSource" (dict "bundle" $b.destination.caBundle) | nindent 2 }}
{{- end }}
{{- if and (dig "database" true .) (or $b.database.caBundle.secretName $b.database.caBundle.configMapName) }}
- name: postgres-ca
  {{- include "agent-bom.backup.caVolumeSource" (dict "bundle" $b.database.caBundle) | nindent 2 }}
{{- end }}
{{- if $b.webIdentity.enabled }}
- name: aws-token
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          audience: {{ $b.webIdentity.audience | quote }}
          expirationSeconds: {{ $b.webIdentity.expirationSeconds | int64 }}
          path: token
{{- end }}
{{- with .claim }}
- name: restore-files
  persistentVolumeClaim:
    claimName: {{ . | quote }}
{{- end }}
{{- with dig "existingSecret" "" (.encryption | default dict) }}
- name: age-identity
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0440
    items:
      - key: {{ dig "existingSecretKey" (include "agent-bom.componentDefaults" $ | fromJson).encryption.existingSecretKey $.encryption | quote }}
        path: identity.txt
{{- end }}
{{- with (dig "extraVolumes" list $values) }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts of a container of the chart. Call with (dict "context" $ "component" NAME ["claim" PVC] ["database" false]). */}}
{{- define "agent-bom.backup.volumeMounts" -}}
{{- $b := .context.Values.controlPlane.backup }}
{{- $values := include "agent-bom.componentValues" . | fromJson }}
{{- $paths := include "agent-bom.backup.paths" . | fromYaml -}}
- name: tmp
  mountPath: /tmp
{{- if or $b.destination.caBundle.secretName $b.destination.caBundle.configMapName }}
- name: object-store-ca
  mountPath: {{ $paths.destinationCa }}
  readOnly: true
{{- end }}
{{- if and (dig "database" true .) (or $b.database.caBundle.secretName $b.database.caBundle.configMapName) }}
- name: postgres-ca
  mountPath: {{ $paths.databaseCa }}
  readOnly: true
{{- end }}
{{- if $b.webIdentity.enabled }}
- name: aws-token
  mountPath: {{ $paths.webIdentityToken }}
  readOnly: true
{{- end }}
{{- if .claim }}
- name: restore-files
  mountPath: {{ $paths.restoreFiles }}
{{- end }}
{{- if dig "existingSecret" "" (.encryption | default dict) }}
- name: age-identity
  mountPath: {{ $paths.ageIdentity }}
  readOnly: true
{{- end }}
{{- with (dig "extraVolumeMounts" list $values) }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by every pod of the chart: identity, security, grace period, pull
Secrets and placement. Call with (dict "context" $ "serviceAccountName" NAME
"automountServiceAccountToken" BOOL).
*/}}
{{- define "agent-bom.backup.podSpec" -}}
{{- $b := .context.Values.controlPlane.backup -}}
serviceAccountName: {{ .serviceAccountName | quote }}
automountServiceAccountToken: {{ .automountServiceAccountToken }}
terminationGracePeriodSeconds: {{ dig "terminationGracePeriodSeconds" (include "agent-bom.defaults" .context | fromYaml).terminationGracePeriodSeconds $b | int64 }}
securityContext:
  {{- toYaml $b.podSecurityContext | nindent 2 }}
{{- with (include "agent-bom.imagePullSecretNames" .context | fromJsonArray) }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- with $b.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $b.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $b.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $b.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Job podFailurePolicy: exit codes that no retry can fix fail the Job at once; a pod evicted by a
node drain or preemption (DisruptionTarget) does not count against backoffLimit; other codes
(unreachable database or bucket, pg_dump or S3 errors, SIGTERM) are retried up to backoffLimit.
The codes are the CLI's (image/src/agent_bom_backup/errors.py). Call with
(dict "container" NAME "failJobExitCodes" LIST).
*/}}
{{- define "agent-bom.podFailurePolicy" -}}
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: {{ .container }}
        operator: In
        values: {{ toJson .failJobExitCodes }}
      {{- /* an empty list: Kubernetes 1.27's schema requires the field on every rule */}}
      onPodConditions: []
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
{{- end }}
