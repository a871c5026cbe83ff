{{/*
Pod building blocks of the control-plane backup: validation, environment and volumes.
The chart sets environment variables only; docs/interface.md lists what the CLI reads.
*/}}

{{/* Mount paths of the read-only CA bundles and the projected web-identity token. */}}
{{- define "agent-bom.backup.paths" -}}
destinationCa: /etc/agent-bom/object-store-ca
databaseCa: /etc/agent-bom/postgres-ca
webIdentityToken: /var/run/secrets/agent-bom/aws-token
{{- end }}

{{/*
Fail early, at `helm install`, with a message naming the value to fix.
values.schema.json already checks types, enums and patterns.
*/}}
{{- define "agent-bom.backup.validate" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $db := $b.database }}
{{- $dest := $b.destination }}
{{- if hasKey $db "url" }}
{{- fail "controlPlane.backup.database.url: an inline database URL is not supported (it would be stored in the release). Put the URL in a Secret under the key AGENT_BOM_POSTGRES_URL and set controlPlane.backup.database.existingSecret to its name (default agent-bom-postgres)." }}
{{- end }}
{{- if not $db.existingSecret }}
{{- fail "controlPlane.backup.database.existingSecret must name an existing Secret holding the database URL (default agent-bom-postgres), e.g. kubectl create secret generic agent-bom-postgres --from-file=AGENT_BOM_POSTGRES_URL=./postgres-url" }}
{{- end }}
{{- if not $db.existingSecretKey }}
{{- fail "controlPlane.backup.database.existingSecretKey must name the key of the database URL in the Secret (default AGENT_BOM_POSTGRES_URL)." }}
{{- end }}
{{- range $b.extraEnv }}
{{- if and (has .name (list "AGENT_BOM_POSTGRES_URL" "AGENT_BOM_RESTORE_POSTGRES_URL" "PGPASSWORD" "AWS_SECRET_ACCESS_KEY")) (hasKey . "value") }}
{{- fail (printf "controlPlane.backup.extraEnv: %s must not be set inline (it would be stored in the release); use controlPlane.backup.database.existingSecret / destination.staticCredentials or a valueFrom.secretKeyRef." .name) }}
{{- end }}
{{- end }}
{{- if not $dest.bucket }}
{{- fail "controlPlane.backup.destination.bucket is required when controlPlane.backup.enabled=true (the bucket name, without s3://)." }}
{{- end }}
{{- if not $dest.bucketRegion }}
{{- fail "controlPlane.backup.destination.bucketRegion is required when controlPlane.backup.enabled=true: keep the bucket's region explicit (e.g. us-east-1); do not rely on example regions." }}
{{- end }}
{{- if and $dest.encryption.kmsKeyId (not $dest.encryption.enabled) }}
{{- fail "controlPlane.backup.destination.encryption.kmsKeyId is set but encryption.enabled=false: enable encryption with mode aws:kms, or clear kmsKeyId." }}
{{- end }}
{{- if and $dest.encryption.kmsKeyId (ne $dest.encryption.mode "aws:kms") }}
{{- fail (printf "controlPlane.backup.destination.encryption.kmsKeyId is only used with mode aws:kms (mode is %s): set mode to aws:kms, or clear kmsKeyId for SSE-S3." $dest.encryption.mode) }}
{{- end }}
{{- if and $dest.staticCredentials.enabled (not $dest.staticCredentials.existingSecret) }}
{{- fail "controlPlane.backup.destination.staticCredentials.existingSecret must name an existing Secret when staticCredentials.enabled=true." }}
{{- end }}
{{- if and $dest.staticCredentials.enabled (not (and $dest.staticCredentials.accessKeyIdKey $dest.staticCredentials.secretAccessKeyKey)) }}
{{- fail "controlPlane.backup.destination.staticCredentials.accessKeyIdKey and secretAccessKeyKey must name keys of the credentials Secret." }}
{{- end }}
{{- if and $dest.staticCredentials.enabled $b.webIdentity.enabled }}
{{- fail "controlPlane.backup.destination.staticCredentials and controlPlane.backup.webIdentity are alternatives: enable one of them." }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $b.webIdentity.roleArn) }}
{{- fail "controlPlane.backup.webIdentity.roleArn is required when webIdentity.enabled=true (arn:aws:iam::<account-id>:role/agent-bom-backup)." }}
{{- end }}
{{- if and $dest.caBundle.secretName $dest.caBundle.configMapName }}
{{- fail "controlPlane.backup.destination.caBundle: set secretName or configMapName, not both." }}
{{- end }}
{{- if and $db.caBundle.secretName $db.caBundle.configMapName }}
{{- fail "controlPlane.backup.database.caBundle: set secretName or configMapName, not both." }}
{{- end }}
{{- if and (not $b.serviceAccount.create) (not $b.serviceAccount.name) }}
{{- fail "controlPlane.backup.serviceAccount.name must name an existing ServiceAccount when serviceAccount.create=false." }}
{{- end }}
{{- if and (not $b.serviceAccount.create) $b.serviceAccount.annotations }}
{{- fail "controlPlane.backup.serviceAccount.annotations only apply to a ServiceAccount the chart creates: annotate your existing ServiceAccount instead, or set serviceAccount.create=true." }}
{{- end }}
{{- if and $b.networkPolicy.enabled (not $b.networkPolicy.database.cidrs) (not $b.networkPolicy.extraEgress) }}
{{- fail "controlPlane.backup.networkPolicy.database.cidrs is required when networkPolicy.enabled=true (or allow the database through networkPolicy.extraEgress): the job could not reach the database otherwise." }}
{{- end }}
{{- if $b.restoreDrill.enabled }}
{{- include "agent-bom.restoreDrill.validate" . }}
{{- end }}
{{- end }}

{{- define "agent-bom.restoreDrill.validate" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $d := $b.restoreDrill }}
{{- if not $d.target.existingSecret }}
{{- fail "controlPlane.backup.restoreDrill.target.existingSecret must name an existing Secret holding the scratch database URL when restoreDrill.enabled=true (never the production database)." }}
{{- end }}
{{- if not $d.target.existingSecretKey }}
{{- fail "controlPlane.backup.restoreDrill.target.existingSecretKey must name the key of the scratch database URL (default AGENT_BOM_RESTORE_POSTGRES_URL)." }}
{{- end }}
{{- if not $d.target.database }}
{{- fail "controlPlane.backup.restoreDrill.target.database must name the scratch database: it confirms the drill may clean it." }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $d.webIdentityRoleArn) }}
{{- fail "controlPlane.backup.restoreDrill.webIdentityRoleArn is required when webIdentity.enabled=true: the drill reads backups, which the backup role cannot." }}
{{- end }}
{{- if and (not $d.serviceAccount.create) (not $d.serviceAccount.name) }}
{{- fail "controlPlane.backup.restoreDrill.serviceAccount.name must name an existing ServiceAccount when restoreDrill.serviceAccount.create=false." }}
{{- end }}
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
Environment shared by every backup-family pod (backup, restore drill, helm test): storage,
identity, TLS, logging and the source database URL (the drill uses it to refuse restoring over it).
Call with (dict "context" $ "credentialsSecret" NAME "roleArn" ARN).
*/}}
{{- define "agent-bom.backup.commonEnv" -}}
{{- $b := .context.Values.controlPlane.backup }}
{{- $dest := $b.destination }}
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
  value: {{ $dest.bucketRegion | quote }}
- name: AWS_REGION
  value: {{ $dest.bucketRegion | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ $dest.bucketRegion | quote }}
- name: AGENT_BOM_BACKUP_VERIFY_REGION
  value: {{ $dest.verifyRegion | quote }}
{{- with $dest.endpointUrl }}
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
{{- with $b.database.sslMode }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- if or $b.database.caBundle.secretName $b.database.caBundle.configMapName }}
- name: PGSSLROOTCERT
  value: {{ printf "%s/ca.crt" $paths.databaseCa | quote }}
{{- end }}
- name: AGENT_BOM_BACKUP_LOG_FORMAT
  value: {{ $b.logging.format | quote }}
- name: AGENT_BOM_BACKUP_LOG_LEVEL
  value: {{ $b.logging.level | quote }}
- name: AGENT_BOM_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ $b.database.existingSecret | quote }}
      key: {{ $b.database.existingSecretKey | quote }}
{{- end }}

{{/* Environment of the backup container (and of the helm test, which runs its preflight). */}}
{{- define "agent-bom.backup.env" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $dest := $b.destination -}}
{{- include "agent-bom.backup.commonEnv" (dict "context" . "credentialsSecret" $dest.staticCredentials.existingSecret "roleArn" $b.webIdentity.roleArn) }}
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
{{- if $b.dump.enableRowSecurity }}
- name: AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY
  value: "true"
{{- end }}
{{- with $b.upload.partSize }}
- name: AGENT_BOM_BACKUP_PART_SIZE
  value: {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" $b.upload.concurrency) }}
- name: AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY
  value: {{ $b.upload.concurrency | int64 | quote }}
{{- end }}
{{- with $b.metricsFile }}
- name: AGENT_BOM_BACKUP_METRICS_FILE
  value: {{ . | quote }}
{{- end }}
{{- with $b.extraEnv }}
{{ toYaml . }}
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

{{/* Volumes of a backup-family pod. Call with (dict "context" $ "scratchSizeLimit" SIZE). */}}
{{- define "agent-bom.backup.volumes" -}}
{{- $b := .context.Values.controlPlane.backup -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .scratchSizeLimit | quote }}
{{- if or $b.destination.caBundle.secretName $b.destination.caBundle.configMapName }}
- name: object-store-ca
  {{- include "agent-bom.backup.caVolumeSource" (dict "bundle" $b.destination.caBundle) | nindent 2 }}
{{- end }}
{{- if or $b.database.caBundle.secretName $b.database.caBundle.configMapName }}
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
{{- with $b.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts of a backup-family container. */}}
{{- define "agent-bom.backup.volumeMounts" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $paths := include "agent-bom.backup.paths" . | fromYaml -}}
- name: tmp
  mountPath: /tmp
{{- if or $b.destination.caBundle.secretName $b.destination.caBundle.configMapName }}
- name: object-store-ca
  mountPath: {{ $paths.destinationCa }}
  readOnly: true
{{- end }}
{{- if or $b.database.caBundle.secretName $b.database.caBundle.configMapName }}
- name: postgres-ca
  mountPath: {{ $paths.databaseCa }}
  readOnly: true
{{- end }}
{{- if $b.webIdentity.enabled }}
- name: aws-token
  mountPath: {{ $paths.webIdentityToken }}
  readOnly: true
{{- end }}
{{- with $b.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod placement and pull secrets shared by backup-family pods. */}}
{{- define "agent-bom.backup.podPlacement" -}}
{{- $b := .Values.controlPlane.backup -}}
{{- with $b.image.pullSecrets }}
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
