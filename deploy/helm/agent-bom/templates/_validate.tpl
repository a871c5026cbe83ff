{{/*
Refuse, at `helm install`, values that could only fail later (at 03:00, with nobody watching).

values.schema.json checks types, enums, ranges and unknown keys inside controlPlane.backup;
everything with a format (names, regions, ARNs, schedules, URLs), every combination and every
placeholder is checked here, so each problem gets one line naming the value and saying what is
expected. All problems are reported at once, one per line.

Bitnami's validateValues pattern: each agent-bom.validateValues.<topic> below checks one rule and
renders one line per problem (a newline, then the message), or nothing; agent-bom.validateValues
runs them in the order of agent-bom.validateValues.topics and fails once with every line.
*/}}

{{/* The validators, in the order their messages are reported. */}}
{{- define "agent-bom.validateValues.topics" -}}
{{- list
  "nearMissKeys" "controlPlaneDisabled"
  "upstreamImageKeys" "upstreamResourceKeys" "upstreamExtraArgs" "endpointConflict"
  "inlineDatabaseUrl" "backupEnv" "maintenanceSecret" "databaseSecret"
  "bucket" "bucketRegion" "kmsKeyId" "staticCredentialsSecret" "staticCredentialsKeys" "staticOrWebIdentity"
  "webIdentityRoleArn" "caBundles"
  "backupServiceAccount" "networkPolicyDatabase"
  "clientEncryptionRecipients" "clientEncryptionSources" "drillIdentityFile"
  "restoreDrill" "restoreDrillServiceAccount" "restore" "restoreServiceAccount" "retention" "retentionServiceAccount"
  "formats" "bucketRegionFormat" "objectNames" "secretKeys" "sessionSettings" "networkAddresses"
  "roleArnAnnotations" "pushgatewayUrl" "partSizeRange"
  "placeholders"
  "componentEnv" "liveSourceCheck" "serviceAccounts" "roleArns" "workloadIdentity" "staticCredentials"
  "targets" "preapproval" "podSecurityContext" "containerSecurityContext" "hostPath" "imageTag"
  "kmsKeyRegion" "memoryForOnePart" "metricsFileWritable" "upstreamServiceAccount"
  | toJson }}
{{- end }}

{{/* Fail with every validator's lines: the one problem, or "N problems in the values:" and one per line. */}}
{{- define "agent-bom.validateValues" -}}
{{- $errors := list }}
{{- range $topic := include "agent-bom.validateValues.topics" . | fromJsonArray }}
{{- $errors = concat $errors (splitList "\n" (include (printf "agent-bom.validateValues.%s" $topic) $)) }}
{{- end }}
{{- $errors = compact $errors }}
{{- if eq (len $errors) 1 }}
{{- fail (first $errors) }}
{{- else if $errors }}
{{- fail (printf "%d problems in the values:\n%s" (len $errors) (join "\n" $errors)) }}
{{- end }}
{{- end }}

{{/* The placeholders a string holds (<...>, REPLACE_ME..., CHANGE_ME..., ACCOUNT_ID, AWS's documentation account 111122223333), quoted and comma-separated, or nothing. */}}
{{- define "agent-bom.placeholderIn" -}}
{{- if kindIs "string" . }}
{{- $found := regexFindAll "<[^<>]+>|(?i:REPLACE_?ME[A-Za-z0-9_]*|CHANGE_?ME[A-Za-z0-9_]*)|\\b(111122223333|ACCOUNT_ID)\\b" (toString .) -1 }}
{{- range $index, $token := $found }}{{ if $index }}, {{ end }}{{ $token | quote }}{{ end }}
{{- end }}
{{- end }}

{{/*
One line per string under .value that holds a placeholder, naming its path.
Call with (dict "path" "controlPlane.backup" "value" MAP).
*/}}
{{- define "agent-bom.placeholders" -}}
{{- $path := .path }}
{{- if kindIs "map" .value }}
{{- range $key := keys .value | sortAlpha }}
{{- $child := printf "%s[%q]" $path $key }}
{{- if regexMatch "^[A-Za-z0-9_-]+$" $key }}
{{- $child = printf "%s.%s" $path $key }}
{{- end }}
{{- include "agent-bom.placeholders" (dict "path" $child "value" (get $.value $key)) }}
{{- end }}
{{- else if kindIs "slice" .value }}
{{- range $index, $item := .value }}
{{- include "agent-bom.placeholders" (dict "path" (printf "%s[%d]" $path $index) "value" $item) }}
{{- end }}
{{- else }}
{{- with include "agent-bom.placeholderIn" .value }}
{{ $path }} still holds the placeholder{{ if contains "\", " . }}s{{ end }} {{ . }}: replace {{ if contains "\", " . }}them with your real values{{ else }}it with your real value{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A value that does not match its format, as one line (nothing when it is empty, a placeholder or
well-formed). Call with (dict "path" P "value" V "pattern" RE "expect" SENTENCE ["hide" true]).
*/}}
{{- define "agent-bom.formatError" -}}
{{- $value := .value }}
{{- if and (kindIs "string" $value) (toString $value) (not (include "agent-bom.placeholderIn" $value)) (not (regexMatch .pattern (toString $value))) }}
{{- if .hide }}
{{- printf "%s is malformed: %s" .path .expect }}
{{- else }}
{{- printf "%s: %q is not %s" .path $value .expect }}
{{- end }}
{{- end }}
{{- end }}

{{/* One line per check of a list (agent-bom.formatError's arguments) whose value is malformed. */}}
{{- define "agent-bom.formatErrors" -}}
{{- range . }}
{{- with include "agent-bom.formatError" . }}
{{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Regular expressions of the formats several values share. */}}
{{- define "agent-bom.formatPatterns" -}}
{{- dict
  "dnsLabel" "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
  "dnsName" "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
  "cron" "^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$"
  "roleArn" "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
  "awsRegion" "^(us|eu|ap|sa|ca|me|af|il|mx|cn)(-gov|-iso|-isob|-isoe|-isof)?-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[0-9]{1,2}$"
  "cidr" "^(([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*/[0-9]{1,3})$"
  "ip" "^(([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$"
  | toJson }}
{{- end }}

{{- /* ======== values meant for another key: a near miss would be ignored silently ======== */}}

{{/* controlPlane spelt another way, or backup / postgresSecrets under it. */}}
{{- define "agent-bom.validateValues.nearMissKeys" -}}
{{- range $key, $_ := .Values }}
{{- if and (eq (lower $key) "controlplane") (ne $key "controlPlane") }}
{{ printf "%s: unknown key; did you mean controlPlane?" $key }}
{{- end }}
{{- end }}
{{- range $key, $_ := .Values.controlPlane }}
{{- if and (has (lower $key) (list "backup" "postgressecrets")) (not (has $key (list "backup" "postgresSecrets"))) }}
{{ printf "controlPlane.%s: unknown key; did you mean controlPlane.%s?" $key (ternary "backup" "postgresSecrets" (eq (lower $key) "backup")) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Upstream's controlPlane.enabled=false: there is no control plane to back up. */}}
{{- define "agent-bom.validateValues.controlPlaneDisabled" -}}
{{- $cp := .Values.controlPlane }}
{{- if and (hasKey $cp "enabled") (kindIs "bool" $cp.enabled) (not $cp.enabled) }}
{{ print "controlPlane.enabled=false: the agent-bom chart renders no control plane with these values, so there is no database to back up; set controlPlane.enabled=true (or remove it), or controlPlane.backup.enabled=false" }}
{{- end }}
{{- end }}

{{- /* ======== upstream agent-bom backup keys this chart cannot honour ======== */}}

{{/* Upstream's two images (dump, upload): this chart runs one. */}}
{{- define "agent-bom.validateValues.upstreamImageKeys" -}}
{{- $image := .Values.controlPlane.backup.image }}
{{- range $key := list "dumpRepository" "dumpTag" "uploadRepository" "uploadTag" }}
{{- if get $image $key }}
{{ printf "controlPlane.backup.image.%s: this chart runs one container, the agent-bom-backup image (pg_dump and the upload in one process); remove it, and set controlPlane.backup.image.repository / tag if you mirror the image" $key }}
{{- end }}
{{- end }}
{{- end }}

{{/* Upstream's resources per container (dump, upload): this chart runs one. */}}
{{- define "agent-bom.validateValues.upstreamResourceKeys" -}}
{{- $resources := .Values.controlPlane.backup.resources }}
{{- range $key := list "dump" "upload" }}
{{- if get $resources $key }}
{{ printf "controlPlane.backup.resources.%s: this chart runs one container; move its requests and limits to controlPlane.backup.resources.requests / limits" $key }}
{{- end }}
{{- end }}
{{- end }}

{{/* Upstream's aws s3 cp arguments. */}}
{{- define "agent-bom.validateValues.upstreamExtraArgs" -}}
{{- if dig "extraArgs" list .Values.controlPlane.backup.destination }}
{{ print "controlPlane.backup.destination.extraArgs are aws s3 cp arguments, and this chart uploads with agent-bom-backup: use destination.storageClass, destination.encryption or destination.endpointUrl instead, and remove extraArgs" }}
{{- end }}
{{- end }}

{{/* Upstream's destination.endpoint and this chart's endpointUrl name different stores. */}}
{{- define "agent-bom.validateValues.endpointConflict" -}}
{{- $dest := .Values.controlPlane.backup.destination }}
{{- if and (dig "endpoint" "" $dest) $dest.endpointUrl (ne (dig "endpoint" "" $dest) $dest.endpointUrl) }}
{{ print "controlPlane.backup.destination.endpoint and endpointUrl differ: set one of them (endpointUrl)" }}
{{- end }}
{{- end }}

{{- /* ======== the source database: from a Secret only ======== */}}

{{/* An inline database URL would be stored in the release. */}}
{{- define "agent-bom.validateValues.inlineDatabaseUrl" -}}
{{- if hasKey .Values.controlPlane.backup.database "url" }}
{{ print "controlPlane.backup.database.url: an inline database URL is not supported (it would be stored in the release); put the URL in a Secret under the key AGENT_BOM_POSTGRES_URL and set controlPlane.backup.database.existingSecret to its name (default agent-bom-postgres)" }}
{{- end }}
{{- end }}

{{/* The backup's extraEnv and upstream env: no credential inline, the source URL from a Secret the chart names. */}}
{{- define "agent-bom.validateValues.backupEnv" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $postgresSecrets := dig "postgresSecrets" dict .Values.controlPlane }}
{{- range $list := list "extraEnv" "env" }}
{{- range (dig $list list $b) }}
{{- if and (has .name (list "AGENT_BOM_POSTGRES_URL" "AGENT_BOM_POSTGRES_MAINTENANCE_URL" "AGENT_BOM_RESTORE_POSTGRES_URL" "PGPASSWORD" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN")) (hasKey . "value") }}
{{ printf "controlPlane.backup.%s: %s must not be set inline (it would be stored in the release); take it from a Secret (valueFrom.secretKeyRef, database.existingSecret or destination.staticCredentials)" $list .name }}
{{- else if eq .name "AGENT_BOM_POSTGRES_URL" }}
{{ printf "controlPlane.backup.%s: AGENT_BOM_POSTGRES_URL is set by the chart; name its Secret in controlPlane.backup.database.existingSecret instead" $list }}
{{- else if eq .name "AGENT_BOM_POSTGRES_MAINTENANCE_URL" }}
{{- if $postgresSecrets.enabled }}
{{ printf "controlPlane.backup.%s: AGENT_BOM_POSTGRES_MAINTENANCE_URL comes from controlPlane.postgresSecrets.maintenanceSecretRef when postgresSecrets.enabled=true; remove it from %s" $list $list }}
{{- else if not (dig "valueFrom" "secretKeyRef" "name" "" .) }}
{{ printf "controlPlane.backup.%s: AGENT_BOM_POSTGRES_MAINTENANCE_URL must come from a Secret (valueFrom.secretKeyRef)" $list }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when the backup's extraEnv or env takes AGENT_BOM_POSTGRES_MAINTENANCE_URL from a Secret (and validateValues.backupEnv accepts it). */}}
{{- define "agent-bom.backup.maintenanceUrlFromEnv" -}}
{{- $b := .Values.controlPlane.backup }}
{{- range $list := list "extraEnv" "env" }}
{{- range (dig $list list $b) }}
{{- if and (eq .name "AGENT_BOM_POSTGRES_MAINTENANCE_URL") (not (hasKey . "value")) (dig "valueFrom" "secretKeyRef" "name" "" .) }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* postgresSecrets.enabled: the maintenance Secret must be named. */}}
{{- define "agent-bom.validateValues.maintenanceSecret" -}}
{{- $postgresSecrets := dig "postgresSecrets" dict .Values.controlPlane }}
{{- if and $postgresSecrets.enabled (not (dig "maintenanceSecretRef" "name" "" $postgresSecrets)) }}
{{ print "controlPlane.postgresSecrets.maintenanceSecretRef.name must name the Secret holding AGENT_BOM_POSTGRES_MAINTENANCE_URL when controlPlane.postgresSecrets.enabled=true (the backup runs as the maintenance identity)" }}
{{- end }}
{{- end }}

{{/* Otherwise (no maintenance URL from env either) database.existingSecret and its key name the URL. */}}
{{- define "agent-bom.validateValues.databaseSecret" -}}
{{- $db := .Values.controlPlane.backup.database }}
{{- if not (or (dig "postgresSecrets" "enabled" false .Values.controlPlane) (include "agent-bom.backup.maintenanceUrlFromEnv" .)) }}
{{- if not $db.existingSecret }}
{{ print "controlPlane.backup.database.existingSecret must name an existing Secret holding the database URL (default agent-bom-postgres), e.g. kubectl create secret generic agent-bom-postgres --from-file=AGENT_BOM_POSTGRES_URL=./postgres-url" }}
{{- end }}
{{- if not $db.existingSecretKey }}
{{ print "controlPlane.backup.database.existingSecretKey must name the key of the database URL in the Secret (default AGENT_BOM_POSTGRES_URL)" }}
{{- end }}
{{- end }}
{{- end }}

{{- /* ======== the destination ======== */}}

{{- define "agent-bom.validateValues.bucket" -}}
{{- if not .Values.controlPlane.backup.destination.bucket }}
{{ print "controlPlane.backup.destination.bucket is required when controlPlane.backup.enabled=true (the bucket name, without s3://)" }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.bucketRegion" -}}
{{- if not (include "agent-bom.backup.region" .) }}
{{ print "controlPlane.backup.destination.bucketRegion is required when controlPlane.backup.enabled=true: keep the bucket's region explicit (e.g. us-east-1); do not rely on example regions" }}
{{- end }}
{{- end }}

{{/* kmsKeyId only with SSE-KMS. */}}
{{- define "agent-bom.validateValues.kmsKeyId" -}}
{{- $enc := .Values.controlPlane.backup.destination.encryption }}
{{- if and $enc.kmsKeyId (not $enc.enabled) }}
{{ print "controlPlane.backup.destination.encryption.kmsKeyId is set but encryption.enabled=false: enable encryption with mode aws:kms, or clear kmsKeyId" }}
{{- else if and $enc.kmsKeyId (ne $enc.mode "aws:kms") }}
{{ printf "controlPlane.backup.destination.encryption.kmsKeyId is only used with mode aws:kms (mode is %s): set mode to aws:kms, or clear kmsKeyId for SSE-S3" $enc.mode }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.staticCredentialsSecret" -}}
{{- $static := .Values.controlPlane.backup.destination.staticCredentials }}
{{- if and $static.enabled (not $static.existingSecret) }}
{{ print "controlPlane.backup.destination.staticCredentials.existingSecret must name an existing Secret when staticCredentials.enabled=true" }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.staticCredentialsKeys" -}}
{{- $static := .Values.controlPlane.backup.destination.staticCredentials }}
{{- if and $static.enabled (not (and $static.accessKeyIdKey $static.secretAccessKeyKey)) }}
{{ print "controlPlane.backup.destination.staticCredentials.accessKeyIdKey and secretAccessKeyKey must name keys of the credentials Secret" }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.staticOrWebIdentity" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if and $b.destination.staticCredentials.enabled $b.webIdentity.enabled }}
{{ print "controlPlane.backup.destination.staticCredentials and controlPlane.backup.webIdentity are alternatives: enable one of them" }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.webIdentityRoleArn" -}}
{{- $web := .Values.controlPlane.backup.webIdentity }}
{{- if and $web.enabled (not $web.roleArn) }}
{{ print "controlPlane.backup.webIdentity.roleArn is required when webIdentity.enabled=true (arn:aws:iam::ACCOUNT:role/agent-bom-backup)" }}
{{- end }}
{{- end }}

{{/* A CA bundle from a Secret or a ConfigMap, not both. */}}
{{- define "agent-bom.validateValues.caBundles" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if and $b.destination.caBundle.secretName $b.destination.caBundle.configMapName }}
{{ print "controlPlane.backup.destination.caBundle: set secretName or configMapName, not both" }}
{{- end }}
{{- if and $b.database.caBundle.secretName $b.database.caBundle.configMapName }}
{{ print "controlPlane.backup.database.caBundle: set secretName or configMapName, not both" }}
{{- end }}
{{- end }}

{{- /* ======== identities ======== */}}

{{/* The backup's ServiceAccount: annotations only on one the chart creates, a name for an existing one. */}}
{{- define "agent-bom.validateValues.backupServiceAccount" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if dig "serviceAccountName" "" $b }}
{{- if $b.serviceAccount.annotations }}
{{ print "controlPlane.backup.serviceAccount.annotations only apply to a ServiceAccount the chart creates, and serviceAccountName names an existing one: annotate that ServiceAccount instead" }}
{{- end }}
{{- else if not $b.serviceAccount.create }}
{{- if not $b.serviceAccount.name }}
{{ print "controlPlane.backup.serviceAccount.name must name an existing ServiceAccount when serviceAccount.create=false" }}
{{- end }}
{{- if $b.serviceAccount.annotations }}
{{ print "controlPlane.backup.serviceAccount.annotations only apply to a ServiceAccount the chart creates: annotate your existing ServiceAccount instead, or set serviceAccount.create=true" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.networkPolicyDatabase" -}}
{{- $np := .Values.controlPlane.backup.networkPolicy }}
{{- if and $np.enabled (not $np.database.cidrs) (not $np.extraEgress) }}
{{ print "controlPlane.backup.networkPolicy.database.cidrs is required when networkPolicy.enabled=true (or allow the database through networkPolicy.extraEgress): the job could not reach the database otherwise" }}
{{- end }}
{{- end }}

{{- /* ======== client-side encryption: public keys in the backup pod, identities only where backups are read ======== */}}

{{/* Every recipient is a public key (never an identity), well-formed. */}}
{{- define "agent-bom.validateValues.clientEncryptionRecipients" -}}
{{- range $index, $recipient := dig "clientEncryption" "recipients" list .Values.controlPlane.backup }}
{{- if and (kindIs "string" $recipient) (regexMatch "(?i)^AGE-SECRET-KEY-|PRIVATE KEY" $recipient) }}
{{ printf "controlPlane.backup.clientEncryption.recipients[%d] is a secret key (an age identity), not a public key: remove it from the values (and rotate it: it is in the release now); give the recipient `age-keygen -y` prints" $index }}
{{- else }}
{{- with include "agent-bom.formatError" (dict "path" (printf "controlPlane.backup.clientEncryption.recipients[%d]" $index) "value" $recipient "pattern" "^(age1[ac-hj-np-z02-9]{58}|ssh-(ed25519|rsa) AAAA[A-Za-z0-9+/]+={0,3}( [^\n]*)?)$" "expect" "an age recipient: an X25519 public key (age1 and 58 lower-case bech32 characters, as `age-keygen -y` prints it) or an SSH ssh-ed25519/ssh-rsa public key line") }}
{{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.clientEncryptionSources" -}}
{{- $ce := dig "clientEncryption" dict .Values.controlPlane.backup }}
{{- if and (dig "recipients" list $ce) (dig "recipientsConfigMap" "" $ce) }}
{{ print "controlPlane.backup.clientEncryption: set recipients or recipientsConfigMap, not both" }}
{{- end }}
{{- end }}

{{/* The drill restores encrypted backups: it needs an identity. */}}
{{- define "agent-bom.validateValues.drillIdentityFile" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $ce := dig "clientEncryption" dict $b }}
{{- $clientEncrypted := or (dig "recipients" list $ce) (dig "recipientsConfigMap" "" $ce) }}
{{- if and $b.restoreDrill.enabled $clientEncrypted (not (dig "encryption" "existingSecret" "" $b.restoreDrill)) }}
{{ print "controlPlane.backup.restoreDrill.encryption.existingSecret must name the Secret holding an age identity of one of clientEncryption's recipients: the drill cannot decrypt the backups otherwise (kubectl create secret generic agent-bom-age-identity --from-file=identity.txt=./key.txt)" }}
{{- end }}
{{- end }}

{{- /* ======== restore drill, in-cluster restore, retention: each reads or deletes with its own identity ======== */}}

{{/* An enabled drill names its scratch target and a role of its own. */}}
{{- define "agent-bom.validateValues.restoreDrill" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $drill := $b.restoreDrill }}
{{- if $drill.enabled }}
{{- if not $drill.target.existingSecret }}
{{ print "controlPlane.backup.restoreDrill.target.existingSecret must name an existing Secret holding the scratch database URL when restoreDrill.enabled=true (never the production database)" }}
{{- end }}
{{- if not $drill.target.existingSecretKey }}
{{ print "controlPlane.backup.restoreDrill.target.existingSecretKey must name the key of the scratch database URL (default AGENT_BOM_RESTORE_POSTGRES_URL)" }}
{{- end }}
{{- if not $drill.target.database }}
{{ print "controlPlane.backup.restoreDrill.target.database must name the scratch database: it confirms the drill may clean it" }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $drill.webIdentityRoleArn) }}
{{ print "controlPlane.backup.restoreDrill.webIdentityRoleArn is required when webIdentity.enabled=true: the drill reads backups, which the backup role cannot" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.restoreDrillServiceAccount" -}}
{{- $drill := .Values.controlPlane.backup.restoreDrill }}
{{- if and $drill.enabled (not $drill.serviceAccount.create) (not $drill.serviceAccount.name) }}
{{ print "controlPlane.backup.restoreDrill.serviceAccount.name must name an existing ServiceAccount when restoreDrill.serviceAccount.create=false" }}
{{- end }}
{{- end }}

{{/* An enabled in-cluster restore names its target (confirmed when it cleans) and a role of its own. */}}
{{- define "agent-bom.validateValues.restore" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $restore := dig "restore" dict $b }}
{{- $defaults := (include "agent-bom.defaults" . | fromYaml).restore }}
{{- if $restore.enabled }}
{{- if not (dig "target" "existingSecret" "" $restore) }}
{{ print "controlPlane.backup.restore.target.existingSecret must name an existing Secret holding the URL of the database to restore into when restore.enabled=true" }}
{{- end }}
{{- if not (dig "target" "existingSecretKey" $defaults.target.existingSecretKey $restore) }}
{{ print "controlPlane.backup.restore.target.existingSecretKey must name the key of the target URL (default AGENT_BOM_RESTORE_POSTGRES_URL)" }}
{{- end }}
{{- if and $restore.clean (not $restore.confirmTarget) }}
{{ print "controlPlane.backup.restore.clean=true needs controlPlane.backup.restore.confirmTarget: the target database's name, confirming it may be replaced" }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $restore.webIdentityRoleArn) }}
{{ print "controlPlane.backup.restore.webIdentityRoleArn is required when webIdentity.enabled=true: the restore reads backups, which the backup role cannot" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.restoreServiceAccount" -}}
{{- $restore := dig "restore" dict .Values.controlPlane.backup }}
{{- if and $restore.enabled (not (include "agent-bom.createsOwnServiceAccount" (dict "context" . "component" "restore"))) (not (dig "serviceAccount" "name" "" $restore)) }}
{{ print "controlPlane.backup.restore.serviceAccount.name must name an existing ServiceAccount when restore.serviceAccount.create=false" }}
{{- end }}
{{- end }}

{{/* Retention (retentionDays set) deletes with an identity of its own, never the backup's. */}}
{{- define "agent-bom.validateValues.retention" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $retention := dig "retention" dict $b }}
{{- if not (kindIs "invalid" (dig "retentionDays" nil $b)) }}
{{- if and $b.webIdentity.enabled (not $retention.webIdentityRoleArn) }}
{{ print "controlPlane.backup.retention.webIdentityRoleArn is required when webIdentity.enabled=true and retentionDays is set: retention deletes backups, which the backup role cannot" }}
{{- end }}
{{- if and $b.destination.staticCredentials.enabled (not $retention.staticCredentialsSecret) }}
{{ print "controlPlane.backup.retention.staticCredentialsSecret must name a Secret with list and delete credentials when staticCredentials.enabled=true and retentionDays is set: retention never uses the backup's key" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-bom.validateValues.retentionServiceAccount" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if and (not (kindIs "invalid" (dig "retentionDays" nil $b))) (not (include "agent-bom.createsOwnServiceAccount" (dict "context" . "component" "retention"))) (not (dig "retention" "serviceAccount" "name" "" $b)) }}
{{ print "controlPlane.backup.retention.serviceAccount.name must name an existing ServiceAccount when retention.serviceAccount.create=false" }}
{{- end }}
{{- end }}

{{- /* ======== formats: one sentence each instead of a raw regular expression ======== */}}

{{/* Values with a format of their own. */}}
{{- define "agent-bom.validateValues.formats" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $dest := $b.destination }}
{{- $drill := $b.restoreDrill }}
{{- $restore := dig "restore" dict $b }}
{{- $retention := dig "retention" dict $b }}
{{- $p := include "agent-bom.formatPatterns" . | fromJson }}
{{- $roleArn := "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)" }}
{{- $defaults := include "agent-bom.defaults" . | fromYaml }}
{{- include "agent-bom.formatErrors" (list
  (dict "path" "nameOverride" "value" .Values.nameOverride "pattern" $p.dnsLabel "expect" "a DNS label (lowercase letters, digits and '-')")
  (dict "path" "fullnameOverride" "value" .Values.fullnameOverride "pattern" $p.dnsLabel "expect" "a DNS label (lowercase letters, digits and '-')")
  (dict "path" "controlPlane.backup.schedule" "value" $b.schedule "pattern" $p.cron "expect" "a cron schedule: five fields (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\") or a macro such as @daily; set the zone with timeZone, not CRON_TZ")
  (dict "path" "controlPlane.backup.restoreDrill.schedule" "value" $drill.schedule "pattern" $p.cron "expect" "a cron schedule: five fields (e.g. \"0 6 * * 0\") or a macro such as @weekly")
  (dict "path" "controlPlane.backup.retention.schedule" "value" (dig "schedule" "" $retention) "pattern" $p.cron "expect" "a cron schedule: five fields (e.g. \"30 5 * * *\") or a macro such as @daily")
  (dict "path" "controlPlane.backup.timeZone" "value" $b.timeZone "pattern" "^[A-Za-z_+-]+(/[A-Za-z0-9_+-]+)*$" "expect" "an IANA time zone such as Etc/UTC or Europe/Berlin")
  (dict "path" "controlPlane.backup.image.repository" "value" $b.image.repository "pattern" "^([^\\s@/]+/)*[^\\s@:/]+$" "expect" "an image repository without tag or digest (set image.tag / image.digest)")
  (dict "path" "controlPlane.backup.image.tag" "value" $b.image.tag "pattern" "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$" "expect" "an image tag (letters, digits, '_', '.', '-'; at most 128)")
  (dict "path" "controlPlane.backup.image.digest" "value" $b.image.digest "pattern" "^sha256:[a-f0-9]{64}$" "expect" "an image digest: sha256: and 64 hexadecimal digits")
  (dict "path" "controlPlane.backup.destination.bucket" "value" $dest.bucket "pattern" "^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$" "expect" "a bucket name: 3-63 lowercase letters, digits, '.', '-' (and '_' for GCS), without s3:// or a path")
  (dict "path" "controlPlane.backup.destination.prefix" "value" $dest.prefix "pattern" "^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$" "expect" "a key prefix without leading or trailing '/' (e.g. agent-bom/postgres)")
  (dict "path" "controlPlane.backup.destination.endpointUrl" "value" $dest.endpointUrl "pattern" "^https?://[^\\s/@]+(/[^\\s]*)?$" "expect" "an http:// or https:// URL without credentials (e.g. https://minio.example:9000)" "hide" true)
  (dict "path" "controlPlane.backup.destination.endpoint" "value" (dig "endpoint" "" $dest) "pattern" "^https?://[^\\s/@]+(/[^\\s]*)?$" "expect" "an http:// or https:// URL without credentials (e.g. https://minio.example:9000)" "hide" true)
  (dict "path" "controlPlane.backup.destination.encryption.kmsKeyId" "value" $dest.encryption.kmsKeyId "pattern" "^(alias/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+))$" "expect" "a KMS key: its id, its ARN, alias/NAME or an alias ARN")
  (dict "path" "controlPlane.backup.webIdentity.roleArn" "value" $b.webIdentity.roleArn "pattern" $p.roleArn "expect" $roleArn)
  (dict "path" "controlPlane.backup.restoreDrill.webIdentityRoleArn" "value" $drill.webIdentityRoleArn "pattern" $p.roleArn "expect" $roleArn)
  (dict "path" "controlPlane.backup.restore.webIdentityRoleArn" "value" (dig "webIdentityRoleArn" "" $restore) "pattern" $p.roleArn "expect" $roleArn)
  (dict "path" "controlPlane.backup.retention.webIdentityRoleArn" "value" (dig "webIdentityRoleArn" "" $retention) "pattern" $p.roleArn "expect" $roleArn)
  (dict "path" "controlPlane.backup.dump.compression" "value" $b.dump.compression "pattern" "^(auto|none|(gzip|lz4|zstd)(:[0-9]{1,2})?)$" "expect" "a compression: auto, none, gzip[:N], lz4[:N] or zstd[:N]")
  (dict "path" "controlPlane.backup.dump.compressionFallback" "value" $b.dump.compressionFallback "pattern" "^(none|(gzip|lz4|zstd)(:[0-9]{1,2})?)$" "expect" "a compression: none, gzip[:N], lz4[:N] or zstd[:N]")
  (dict "path" "controlPlane.backup.dump.tenantColumn" "value" $b.dump.tenantColumn "pattern" "^[a-z_][a-z0-9_$]{0,62}$" "expect" "a lowercase column name")
  (dict "path" "controlPlane.backup.upload.partSize" "value" $b.upload.partSize "pattern" "^[1-9][0-9]*(B|KiB|MiB|GiB)?$" "expect" "a size such as 16MiB or 1GiB")
  (dict "path" "controlPlane.backup.metricsFile" "value" $b.metricsFile "pattern" "^/[^\\s]*$" "expect" "an absolute path")
  (dict "path" "controlPlane.backup.restoreDrill.target.database" "value" $drill.target.database "pattern" "^[^\\s\"']{1,63}$" "expect" "a database name (no spaces or quotes)")
  (dict "path" "controlPlane.backup.restore.confirmTarget" "value" (dig "confirmTarget" "" $restore) "pattern" "^[^\\s\"']{1,63}$" "expect" "a database name (no spaces or quotes)")
  (dict "path" "controlPlane.backup.restore.backupUri" "value" (dig "backupUri" $defaults.restore.backupUri $restore) "pattern" "^(latest|s3://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]/[^\\s]*)$" "expect" "latest, s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump or s3://BUCKET/PREFIX/")
  (dict "path" "controlPlane.backup.priorityClassName" "value" $b.priorityClassName "pattern" $p.dnsName "expect" "a PriorityClass name (lowercase letters, digits, '-' and '.')")
) }}
{{- end }}

{{/* bucketRegion: an AWS region, or any name the S3-compatible store of endpointUrl expects. */}}
{{- define "agent-bom.validateValues.bucketRegionFormat" -}}
{{- $region := include "agent-bom.backup.region" . }}
{{- if include "agent-bom.backup.endpoint" . }}
{{- include "agent-bom.formatErrors" (list (dict "path" "controlPlane.backup.destination.bucketRegion" "value" $region "pattern" "^[^\\s/:]+$" "expect" "a region name (the one your S3-compatible store expects, e.g. us-east-1 or auto)")) }}
{{- else }}
{{- include "agent-bom.formatErrors" (list (dict "path" "controlPlane.backup.destination.bucketRegion" "value" $region "pattern" (include "agent-bom.formatPatterns" . | fromJson).awsRegion "expect" "an AWS region such as us-east-1, eu-west-1, us-gov-west-1, cn-north-1 or us-iso-east-1 (any name is accepted with destination.endpointUrl)")) }}
{{- end }}
{{- end }}

{{/* Names of Kubernetes objects (Secrets, ConfigMaps, ServiceAccounts, claims). */}}
{{- define "agent-bom.validateValues.objectNames" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $db := $b.database }}
{{- $dest := $b.destination }}
{{- $drill := $b.restoreDrill }}
{{- $names := list
  (list "controlPlane.backup.database.existingSecret" $db.existingSecret)
  (list "controlPlane.backup.database.caBundle.secretName" $db.caBundle.secretName)
  (list "controlPlane.backup.database.caBundle.configMapName" $db.caBundle.configMapName)
  (list "controlPlane.backup.destination.caBundle.secretName" $dest.caBundle.secretName)
  (list "controlPlane.backup.destination.caBundle.configMapName" $dest.caBundle.configMapName)
  (list "controlPlane.backup.destination.staticCredentials.existingSecret" $dest.staticCredentials.existingSecret)
  (list "controlPlane.backup.serviceAccountName" (dig "serviceAccountName" "" $b))
  (list "controlPlane.backup.serviceAccount.name" $b.serviceAccount.name)
  (list "controlPlane.backup.restoreDrill.target.existingSecret" $drill.target.existingSecret)
  (list "controlPlane.backup.restoreDrill.serviceAccount.name" $drill.serviceAccount.name)
  (list "controlPlane.backup.restoreDrill.staticCredentialsSecret" $drill.staticCredentialsSecret)
  (list "controlPlane.backup.restore.target.existingSecret" (dig "restore" "target" "existingSecret" "" $b))
  (list "controlPlane.backup.restore.serviceAccount.name" (dig "restore" "serviceAccount" "name" "" $b))
  (list "controlPlane.backup.restore.staticCredentialsSecret" (dig "restore" "staticCredentialsSecret" "" $b))
  (list "controlPlane.backup.restore.persistence.existingClaim" (dig "restore" "persistence" "existingClaim" "" $b))
  (list "controlPlane.backup.retention.serviceAccount.name" (dig "retention" "serviceAccount" "name" "" $b))
  (list "controlPlane.backup.retention.staticCredentialsSecret" (dig "retention" "staticCredentialsSecret" "" $b))
  (list "controlPlane.postgresSecrets.maintenanceSecretRef.name" (dig "postgresSecrets" "maintenanceSecretRef" "name" "" .Values.controlPlane))
}}
{{- range $index, $name := $b.image.pullSecrets }}
{{- $names = append $names (list (printf "controlPlane.backup.image.pullSecrets[%d]" $index) $name) }}
{{- end }}
{{- $checks := list }}
{{- $dnsName := (include "agent-bom.formatPatterns" . | fromJson).dnsName }}
{{- range $names }}
{{- $checks = append $checks (dict "path" (index . 0) "value" (index . 1) "pattern" $dnsName "expect" "a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)") }}
{{- end }}
{{- include "agent-bom.formatErrors" $checks }}
{{- end }}

{{/* Keys of Secrets. */}}
{{- define "agent-bom.validateValues.secretKeys" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $static := $b.destination.staticCredentials }}
{{- $keys := list
  (list "controlPlane.backup.database.existingSecretKey" $b.database.existingSecretKey)
  (list "controlPlane.backup.database.caBundle.key" $b.database.caBundle.key)
  (list "controlPlane.backup.destination.caBundle.key" $b.destination.caBundle.key)
  (list "controlPlane.backup.destination.staticCredentials.accessKeyIdKey" $static.accessKeyIdKey)
  (list "controlPlane.backup.destination.staticCredentials.secretAccessKeyKey" $static.secretAccessKeyKey)
  (list "controlPlane.backup.destination.staticCredentials.sessionTokenKey" $static.sessionTokenKey)
  (list "controlPlane.backup.restoreDrill.target.existingSecretKey" $b.restoreDrill.target.existingSecretKey)
  (list "controlPlane.backup.restore.target.existingSecretKey" (dig "restore" "target" "existingSecretKey" "" $b))
}}
{{- $checks := list }}
{{- range $keys }}
{{- $checks = append $checks (dict "path" (index . 0) "value" (index . 1) "pattern" "^[-._a-zA-Z0-9]+$" "expect" "a Secret key (letters, digits, '-', '_' and '.')") }}
{{- end }}
{{- include "agent-bom.formatErrors" $checks }}
{{- end }}

{{- define "agent-bom.validateValues.sessionSettings" -}}
{{- $checks := list }}
{{- range $index, $setting := (dig "sessionSettings" list .Values.controlPlane.backup.dump) }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.dump.sessionSettings[%d]" $index) "value" $setting "pattern" "^[A-Za-z_][A-Za-z0-9_.]*=[^\\s]*$" "expect" "NAME=VALUE without spaces (e.g. app.bypass_rls=1)") }}
{{- end }}
{{- include "agent-bom.formatErrors" $checks }}
{{- end }}

{{/* The NetworkPolicy's CIDRs and node-local DNS addresses. */}}
{{- define "agent-bom.validateValues.networkAddresses" -}}
{{- $np := .Values.controlPlane.backup.networkPolicy }}
{{- $p := include "agent-bom.formatPatterns" . | fromJson }}
{{- $checks := list }}
{{- range $rule := list "database" "objectStorage" }}
{{- range $index, $value := (get $np $rule).cidrs }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.networkPolicy.%s.cidrs[%d]" $rule $index) "value" $value "pattern" $p.cidr "expect" "a CIDR: an IPv4 or IPv6 address with its prefix length (e.g. 10.0.0.0/16, fd00::/8)") }}
{{- end }}
{{- end }}
{{- range $index, $value := (dig "dns" "nodeLocal" "addresses" list $np) }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.networkPolicy.dns.nodeLocal.addresses[%d]" $index) "value" $value "pattern" $p.ip "expect" "an IP address (e.g. 169.254.20.10)") }}
{{- end }}
{{- include "agent-bom.formatErrors" $checks }}
{{- end }}

{{/* IRSA annotations of the components' ServiceAccounts. */}}
{{- define "agent-bom.validateValues.roleArnAnnotations" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $roleArn := (include "agent-bom.formatPatterns" . | fromJson).roleArn }}
{{- $accounts := dict "serviceAccount" $b.serviceAccount "restoreDrill.serviceAccount" $b.restoreDrill.serviceAccount "restore.serviceAccount" (dig "restore" "serviceAccount" dict $b) "retention.serviceAccount" (dig "retention" "serviceAccount" dict $b) }}
{{- $checks := list }}
{{- range $path := keys $accounts | sortAlpha }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.%s.annotations[\"eks.amazonaws.com/role-arn\"]" $path) "value" (dig "annotations" "eks.amazonaws.com/role-arn" "" (get $accounts $path)) "pattern" $roleArn "expect" "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)") }}
{{- end }}
{{- include "agent-bom.formatErrors" $checks }}
{{- end }}

{{- define "agent-bom.validateValues.pushgatewayUrl" -}}
{{- include "agent-bom.formatErrors" (list (dict "path" "controlPlane.backup.metrics.pushgateway.url" "value" (dig "metrics" "pushgateway" "url" "" .Values.controlPlane.backup) "pattern" "^https?://[^\\s/?#]+[^\\s]*$" "expect" "an http(s) URL (e.g. http://prometheus-pushgateway.monitoring:9091)" "hide" true)) }}
{{- end }}

{{/* upload.partSize within S3's part size limits (its format is checked above). */}}
{{- define "agent-bom.validateValues.partSizeRange" -}}
{{- with .Values.controlPlane.backup.upload.partSize }}
{{- if regexMatch "^[1-9][0-9]*(B|KiB|MiB|GiB)?$" . }}
{{- $number := regexFind "^[0-9]+" . }}
{{- $factor := get (dict "" 1 "B" 1 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824) (trimPrefix $number .) }}
{{- $bytes := mul ($number | int64) $factor }}
{{- if or (lt $bytes 5242880) (gt $bytes 5368709120) }}
{{ printf "controlPlane.backup.upload.partSize: %q is outside S3's part size limits: use 5MiB to 5GiB (e.g. 16MiB)" . }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Placeholders left in a values file copied from the docs or upstream's examples. */}}
{{- define "agent-bom.validateValues.placeholders" -}}
{{- $scanned := dict "controlPlane.backup" .Values.controlPlane.backup "controlPlane.postgresSecrets" (dig "postgresSecrets" dict .Values.controlPlane) "global" (default dict .Values.global) "commonLabels" (default dict .Values.commonLabels) "commonAnnotations" (default dict .Values.commonAnnotations) }}
{{- range $path := list "controlPlane.backup" "controlPlane.postgresSecrets" "global" "commonLabels" "commonAnnotations" }}
{{- include "agent-bom.placeholders" (dict "path" $path "value" (get $scanned $path)) }}
{{- end }}
{{- end }}

{{- /* ======== least privilege: each component reads only its own Secrets under its own identity ======== */}}

{{/* Paths of the components other than the backup, keyed by their values key. */}}
{{- define "agent-bom.componentPaths" -}}
{"restore": "controlPlane.backup.restore", "restoreDrill": "controlPlane.backup.restoreDrill", "retention": "controlPlane.backup.retention", "helmTest": "controlPlane.backup.helmTest"}
{{- end }}

{{/* The enabled components that run under an identity of their own (restore, restoreDrill, retention), as a JSON list. */}}
{{- define "agent-bom.enabledOwnIdentities" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $on := list }}
{{- if dig "restore" "enabled" false $b }}{{ $on = append $on "restore" }}{{ end }}
{{- if dig "restoreDrill" "enabled" false $b }}{{ $on = append $on "restoreDrill" }}{{ end }}
{{- if not (kindIs "invalid" (dig "retentionDays" nil $b)) }}{{ $on = append $on "retention" }}{{ end }}
{{- toJson $on }}
{{- end }}

{{/* Another component's extraEnv never carries a credential inline or the backup's source URL. */}}
{{- define "agent-bom.validateValues.componentEnv" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $paths := include "agent-bom.componentPaths" . | fromJson }}
{{- range $component := list "restore" "restoreDrill" "retention" "helmTest" }}
{{- $path := get $paths $component }}
{{- range (dig $component "extraEnv" list $b) }}
{{- if and (has .name (list "AGENT_BOM_POSTGRES_URL" "AGENT_BOM_POSTGRES_MAINTENANCE_URL" "AGENT_BOM_RESTORE_POSTGRES_URL" "PGPASSWORD" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN")) (hasKey . "value") }}
{{ printf "%s.extraEnv: %s must not be set inline (it would be stored in the release); take it from a Secret (valueFrom.secretKeyRef)" $path .name }}
{{- else if and (has .name (list "AGENT_BOM_POSTGRES_URL" "AGENT_BOM_POSTGRES_MAINTENANCE_URL")) (has $component (list "restore" "restoreDrill")) }}
{{ printf "%s.extraEnv: %s is the backup's source credential and reaches the backup only; for a live-source check set %s.liveSourceCheck.existingSecret to a low-privilege Secret of its own" $path .name $path }}
{{- else if has .name (list "AGENT_BOM_POSTGRES_URL" "AGENT_BOM_POSTGRES_MAINTENANCE_URL") }}
{{ printf "%s.extraEnv: %s is the backup's source credential and reaches the backup only (the helm test already runs the backup's preflight with it); remove it" $path .name }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A live-source check reads a low-privilege Secret of its own, never the backup's source Secret. */}}
{{- define "agent-bom.validateValues.liveSourceCheck" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $source := include "agent-bom.backup.databaseSource" . | fromJson }}
{{- range $component := list "restore" "restoreDrill" }}
{{- $secret := dig $component "liveSourceCheck" "existingSecret" "" $b }}
{{- if and $secret (eq $secret $source.name) }}
{{ printf "controlPlane.backup.%s.liveSourceCheck.existingSecret is the backup's source Secret %s: give the live-source check a low-privilege Secret of its own (a role that may only connect), or leave it empty to compare with the backup's recorded server identity" $component $secret }}
{{- end }}
{{- end }}
{{- end }}

{{/* The backup, restore, drill and retention run as four different ServiceAccounts. */}}
{{- define "agent-bom.validateValues.serviceAccounts" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $backupPath := ternary "controlPlane.backup.serviceAccountName" "controlPlane.backup.serviceAccount.name" (ne (dig "serviceAccountName" "" $b) "") }}
{{- $seen := list (list $backupPath (include "agent-bom.backup.serviceAccountName" .)) }}
{{- range $component := include "agent-bom.enabledOwnIdentities" . | fromJsonArray }}
{{- $name := include (printf "agent-bom.%s.serviceAccountName" $component) $ }}
{{- $path := printf "controlPlane.backup.%s.serviceAccount.name" $component }}
{{- range $seen }}
{{- if eq (index . 1) $name }}
{{ printf "%s and %s both name ServiceAccount %s: give each component its own ServiceAccount and role (docs/runbook.md, Identities)" $path (index . 0) $name }}
{{- end }}
{{- end }}
{{- $seen = append $seen (list $path $name) }}
{{- end }}
{{- end }}

{{/* The IAM roles of the components (IRSA annotations, web-identity ARNs) are all different. */}}
{{- define "agent-bom.validateValues.roleArns" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $key := "eks.amazonaws.com/role-arn" }}
{{- $roles := list }}
{{- with (dig "serviceAccount" "annotations" $key "" $b) }}
{{- $roles = append $roles (list "backup" (printf "controlPlane.backup.serviceAccount.annotations[%q]" $key) .) }}
{{- end }}
{{- if $b.webIdentity.enabled }}
{{- with $b.webIdentity.roleArn }}
{{- $roles = append $roles (list "backup" "controlPlane.backup.webIdentity.roleArn" .) }}
{{- end }}
{{- end }}
{{- range $component := include "agent-bom.enabledOwnIdentities" . | fromJsonArray }}
{{- with (dig $component "serviceAccount" "annotations" $key "" $b) }}
{{- $roles = append $roles (list $component (printf "controlPlane.backup.%s.serviceAccount.annotations[%q]" $component $key) .) }}
{{- end }}
{{- if $b.webIdentity.enabled }}
{{- with (dig $component "webIdentityRoleArn" "" $b) }}
{{- $roles = append $roles (list $component (printf "controlPlane.backup.%s.webIdentityRoleArn" $component) .) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $i, $a := $roles }}
{{- range $j, $other := $roles }}
{{- if and (lt $j $i) (ne (index $a 0) (index $other 0)) (eq (index $a 2) (index $other 2)) }}
{{ printf "%s and %s name the same role %s: give each component its own role (docs/runbook.md, Identities)" (index $a 1) (index $other 1) (index $a 2) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
IRSA on the backup's ServiceAccount: every other enabled component whose ServiceAccount the
chart creates needs a role of its own, or it falls back to the node's role (IMDS). With web
identity or static credentials each component already has credentials of its own (required).
*/}}
{{- define "agent-bom.validateValues.workloadIdentity" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $key := "eks.amazonaws.com/role-arn" }}
{{- $policies := dict "restore" "restore-role-policy.json" "restoreDrill" "restore-role-policy.json" "retention" "prune-role-policy.json" }}
{{- if and (include "agent-bom.backup.createsServiceAccount" .) (dig "serviceAccount" "annotations" $key "" $b) (not $b.webIdentity.enabled) (not $b.destination.staticCredentials.enabled) }}
{{- range $component := include "agent-bom.enabledOwnIdentities" . | fromJsonArray }}
{{- if and (include "agent-bom.createsOwnServiceAccount" (dict "context" $ "component" $component)) (not (dig $component "serviceAccount" "annotations" $key "" $b)) }}
{{ printf "controlPlane.backup.%s.serviceAccount.annotations[%q] is required: the backup uses IRSA, and without a role of its own the %s would fall back to the node's role; annotate it with a role carrying deploy/iam/%s" $component $key $component (get $policies $component) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Static credentials: a Secret per component, never the backup's key for reading or deleting. */}}
{{- define "agent-bom.validateValues.staticCredentials" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $static := $b.destination.staticCredentials }}
{{- if $static.enabled }}
{{- $seen := list (list "controlPlane.backup.destination.staticCredentials.existingSecret" $static.existingSecret) }}
{{- range $component := include "agent-bom.enabledOwnIdentities" . | fromJsonArray }}
{{- $path := printf "controlPlane.backup.%s.staticCredentialsSecret" $component }}
{{- $secret := dig $component "staticCredentialsSecret" "" $b }}
{{- if and (not $secret) (ne $component "retention") }}
{{ printf "%s must name a Secret with read credentials of its own when staticCredentials.enabled=true: the backup's key must not read backups" $path }}
{{- end }}
{{- if $secret }}
{{- range $seen }}
{{- if eq (index . 1) $secret }}
{{ printf "%s and %s both name Secret %s: give each component credentials of its own (the backup's key writes only)" $path (index . 0) $secret }}
{{- end }}
{{- end }}
{{- $seen = append $seen (list $path $secret) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Neither the restore's nor the drill's target is the backup's source Secret and key. */}}
{{- define "agent-bom.validateValues.targets" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $source := include "agent-bom.backup.databaseSource" . | fromJson }}
{{- $defaults := include "agent-bom.defaults" . | fromYaml }}
{{- if dig "restore" "enabled" false $b }}
{{- if and (eq (dig "restore" "target" "existingSecret" "" $b) $source.name) (eq (dig "restore" "target" "existingSecretKey" $defaults.restore.target.existingSecretKey $b) $source.key) }}
{{ printf "controlPlane.backup.restore.target is the backup's source (Secret %s, key %s): the backup's credential must not reach the restore Job; give the restore a Secret of its own (for a production restore, the database owner's URL)" $source.name $source.key }}
{{- end }}
{{- end }}
{{- if dig "restoreDrill" "enabled" false $b }}
{{- if and (eq (dig "restoreDrill" "target" "existingSecret" "" $b) $source.name) (eq (dig "restoreDrill" "target" "existingSecretKey" $defaults.restoreDrill.target.existingSecretKey $b) $source.key) }}
{{ printf "controlPlane.backup.restoreDrill.target is the backup's source (Secret %s, key %s): the drill cleans its target on every run; point it at a scratch database's Secret" $source.name $source.key }}
{{- end }}
{{- end }}
{{- end }}

{{/* An approval or skipping the safety backup is decided when a person creates the restore Job, never in values. */}}
{{- define "agent-bom.validateValues.preapproval" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if dig "restore" "approval" "" $b }}
{{ print "controlPlane.backup.restore.approval: an approval is given when a person creates the restore Job, never in values (anyone allowed to create Jobs could use it); remove it and set AGENT_BOM_RESTORE_APPROVAL with kubectl set env at instantiation (docs/runbook.md, In-cluster restore)" }}
{{- end }}
{{- if dig "restore" "noSafetyBackup" false $b }}
{{ print "controlPlane.backup.restore.noSafetyBackup: skipping the safety backup is decided when a person creates the restore Job, never in values; remove it and set AGENT_BOM_RESTORE_NO_SAFETY_BACKUP=true with kubectl set env at instantiation (docs/runbook.md, In-cluster restore)" }}
{{- end }}
{{- end }}

{{/* The pod securityContext keeps the restricted Pod Security Standard. */}}
{{- define "agent-bom.validateValues.podSecurityContext" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $pod := $b.podSecurityContext }}
{{- $container := default dict $b.containerSecurityContext }}
{{- $path := "controlPlane.backup.podSecurityContext" }}
{{- if not (and (kindIs "map" $pod) $pod) }}
{{ printf "%s is empty or null: the restricted Pod Security Standard needs it; keep the chart's default (runAsNonRoot: true, runAsUser: 10001, seccompProfile.type: RuntimeDefault)" $path }}
{{- else }}
{{- if and (hasKey $pod "runAsNonRoot") (not $pod.runAsNonRoot) }}
{{ printf "%s.runAsNonRoot=false: the restricted Pod Security Standard refuses pods that may run as root; set it to true" $path }}
{{- end }}
{{- if and (hasKey $pod "runAsUser") (eq (toString $pod.runAsUser) "0") }}
{{ printf "%s.runAsUser=0 runs as root, which the restricted Pod Security Standard refuses; use a non-zero user id (default 10001)" $path }}
{{- end }}
{{- if eq (dig "seccompProfile" "type" "" $pod) "Unconfined" }}
{{ printf "%s.seccompProfile.type=Unconfined: the restricted Pod Security Standard needs RuntimeDefault or Localhost" $path }}
{{- end }}
{{- end }}
{{- if not (or (hasKey (default dict $pod) "runAsNonRoot") (hasKey $container "runAsNonRoot")) }}
{{ printf "%s.runAsNonRoot (or containerSecurityContext.runAsNonRoot) must be true: the restricted Pod Security Standard refuses pods that may run as root" $path }}
{{- end }}
{{- if and (not (dig "seccompProfile" "type" "" (default dict $pod))) (not (dig "seccompProfile" "type" "" $container)) }}
{{ printf "%s.seccompProfile.type (or containerSecurityContext.seccompProfile.type) must be set to RuntimeDefault or Localhost: the restricted Pod Security Standard refuses an unset seccomp profile" $path }}
{{- end }}
{{- end }}

{{/* The container securityContext keeps the restricted Pod Security Standard. */}}
{{- define "agent-bom.validateValues.containerSecurityContext" -}}
{{- $c := .Values.controlPlane.backup.containerSecurityContext }}
{{- $path := "controlPlane.backup.containerSecurityContext" }}
{{- if not (and (kindIs "map" $c) $c) }}
{{ printf "%s is empty or null: the restricted Pod Security Standard needs it; keep the chart's default (allowPrivilegeEscalation: false, capabilities.drop: [ALL], runAsNonRoot: true, seccompProfile.type: RuntimeDefault)" $path }}
{{- else }}
{{- if dig "privileged" false $c }}
{{ printf "%s.privileged=true: the restricted Pod Security Standard refuses privileged containers; set it to false" $path }}
{{- end }}
{{- if ne (toString (dig "allowPrivilegeEscalation" "unset" $c)) "false" }}
{{ printf "%s.allowPrivilegeEscalation must be false (the restricted Pod Security Standard)" $path }}
{{- end }}
{{- if and (hasKey $c "runAsNonRoot") (not $c.runAsNonRoot) }}
{{ printf "%s.runAsNonRoot=false: the restricted Pod Security Standard refuses containers that may run as root; set it to true" $path }}
{{- end }}
{{- if and (hasKey $c "runAsUser") (eq (toString $c.runAsUser) "0") }}
{{ printf "%s.runAsUser=0 runs as root, which the restricted Pod Security Standard refuses; use a non-zero user id (default 10001)" $path }}
{{- end }}
{{- with (dig "capabilities" "add" list $c) }}
{{ printf "%s.capabilities.add %s: the job needs no capability and the restricted Pod Security Standard refuses added ones; remove it" $path (toJson .) }}
{{- end }}
{{- if not (has "ALL" (dig "capabilities" "drop" list $c)) }}
{{ printf "%s.capabilities.drop must include ALL (the restricted Pod Security Standard)" $path }}
{{- end }}
{{- if eq (dig "seccompProfile" "type" "" $c) "Unconfined" }}
{{ printf "%s.seccompProfile.type=Unconfined: the restricted Pod Security Standard needs RuntimeDefault or Localhost" $path }}
{{- end }}
{{- end }}
{{- end }}

{{/* No component mounts a hostPath volume (the restricted Pod Security Standard forbids them). */}}
{{- define "agent-bom.validateValues.hostPath" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $paths := merge (dict "backup" "controlPlane.backup") (include "agent-bom.componentPaths" . | fromJson) }}
{{- range $component := list "backup" "restore" "restoreDrill" "retention" "helmTest" }}
{{- $values := include "agent-bom.componentValues" (dict "context" $ "component" $component) | fromJson }}
{{- range $index, $volume := (dig "extraVolumes" list $values) }}
{{- if hasKey $volume "hostPath" }}
{{ printf "%s.extraVolumes[%d] (%s) is a hostPath volume, which the restricted Pod Security Standard forbids; use a PersistentVolumeClaim, a Secret, a ConfigMap or an emptyDir" (get $paths $component) $index (dig "name" "" $volume) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The image is a release tag or a digest, never latest. */}}
{{- define "agent-bom.validateValues.imageTag" -}}
{{- if eq (lower (toString .Values.controlPlane.backup.image.tag)) "latest" }}
{{ print "controlPlane.backup.image.tag: latest is refused (a moving tag with IfNotPresent runs whatever a node cached); use a release tag, and pin it with controlPlane.backup.image.digest (sha256:...)" }}
{{- end }}
{{- end }}

{{- /* ======== values that install but fail when the job runs ======== */}}

{{/* A KMS key ARN of another region than the bucket's: S3 only encrypts with a key of the bucket's region. */}}
{{- define "agent-bom.validateValues.kmsKeyRegion" -}}
{{- $key := toString (dig "encryption" "kmsKeyId" "" .Values.controlPlane.backup.destination) }}
{{- $region := include "agent-bom.backup.region" . }}
{{- if and $region (not (include "agent-bom.placeholderIn" $region)) (regexMatch "^arn:aws[a-z-]*:kms:[a-z0-9-]+:" $key) }}
{{- $keyRegion := index (splitList ":" $key) 3 }}
{{- if ne $keyRegion $region }}
{{- printf "controlPlane.backup.destination.encryption.kmsKeyId is a key in %s, but bucketRegion is %s: S3 encrypts only with a KMS key of the bucket's region; use a key (or a multi-Region replica) in %s" $keyRegion $region $region }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A memory limit too small for one upload part: the job's memory budget is 60% of the limit, 96MiB
of it for the process itself, and the rest must hold the first part (upload.partSize, default
8MiB) or the backup refuses to start (parts.py plan_upload). Skipped when the budget is set
through AGENT_BOM_BACKUP_MEMORY_BUDGET or the limit is not in Ki/Mi/Gi/Ti/k/M/G/T or bytes.
*/}}
{{- define "agent-bom.validateValues.memoryForOnePart" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $limit := toString (dig "limits" "memory" "" (default dict $b.resources)) }}
{{- $budgetSet := false }}
{{- range (concat (default list $b.extraEnv) (dig "env" list $b)) }}
{{- if eq (toString .name) "AGENT_BOM_BACKUP_MEMORY_BUDGET" }}{{ $budgetSet = true }}{{ end }}
{{- end }}
{{- $quantity := "^([0-9]+(\\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$" }}
{{- if and (not $budgetSet) (regexMatch $quantity $limit) }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $limit }}
{{- $factor := get (dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000) (trimPrefix $number $limit) }}
{{- $bytes := mulf (float64 $number) $factor }}
{{- $part := 8388608 }}
{{- $partSize := toString (dig "upload" "partSize" "" $b) }}
{{- if regexMatch "^[1-9][0-9]*(B|KiB|MiB|GiB)?$" $partSize }}
{{- $partNumber := regexFind "^[0-9]+" $partSize }}
{{- $part = mul ($partNumber | int64) (get (dict "" 1 "B" 1 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824) (trimPrefix $partNumber $partSize)) }}
{{- end }}
{{- $needed := divf (add $part 100663296) 0.6 }}
{{- /* a part size outside S3's limits is refused on its own */}}
{{- if and (lt $bytes $needed) (ge (int64 $part) 5242880) (le (int64 $part) 5368709120) }}
{{- $leastMi := ceil (divf $needed 1048576) | int64 }}
{{- printf "controlPlane.backup.resources.limits.memory: %s cannot hold one %dMiB upload part (the job's memory budget is 60%% of the limit and keeps 96MiB of it for itself): set at least %dMi (the default 2560Mi holds dumps up to 5 TiB)" $limit (div $part 1048576) $leastMi }}
{{- end }}
{{- end }}
{{- end }}

{{/* metricsFile on the read-only root filesystem: only /tmp and writable extraVolumeMounts take files. */}}
{{- define "agent-bom.validateValues.metricsFileWritable" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $file := toString (default "" $b.metricsFile) }}
{{- if and (hasPrefix "/" $file) (not (include "agent-bom.placeholderIn" $file)) }}
{{- $writable := list "/tmp" }}
{{- range (default list $b.extraVolumeMounts) }}
{{- if and .mountPath (not .readOnly) }}{{ $writable = append $writable (trimSuffix "/" (toString .mountPath)) }}{{ end }}
{{- end }}
{{- $ok := false }}
{{- range $writable }}
{{- if hasPrefix (printf "%s/" .) $file }}{{ $ok = true }}{{ end }}
{{- end }}
{{- if not $ok }}
{{- printf "controlPlane.backup.metricsFile: %s is on the container's read-only root filesystem: mount a volume there (controlPlane.backup.extraVolumes and extraVolumeMounts) or write under /tmp" $file }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Upstream agent-bom's top-level serviceAccount.annotations belong to its own ServiceAccount; this
chart never copies them to the backup's (that identity is the control plane's, not one that may
only write backups). Refused when they carry a workload identity and the backup's ServiceAccount,
created by this chart, has no annotation and no other credentials: the backup would run without one.
*/}}
{{- define "agent-bom.validateValues.upstreamServiceAccount" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $top := dig "annotations" dict (default dict .Values.serviceAccount) }}
{{- $identityKeys := list "eks.amazonaws.com/role-arn" "iam.gke.io/gcp-service-account" "azure.workload.identity/client-id" }}
{{- $found := list }}
{{- range $identityKeys }}{{ if hasKey $top . }}{{ $found = append $found . }}{{ end }}{{ end }}
{{- $own := or (dig "serviceAccount" "annotations" dict $b) (dig "serviceAccountName" "" $b) (not (include "agent-bom.createsOwnServiceAccount" (dict "context" . "component" "backup"))) (dig "webIdentity" "enabled" false $b) (dig "destination" "staticCredentials" "enabled" false $b) }}
{{- if and $b.enabled $found (not $own) }}
{{- printf "serviceAccount.annotations[%q] is upstream agent-bom's top-level ServiceAccount and does not reach the backup's, which would run with no identity: set controlPlane.backup.serviceAccount.annotations (its own backup-only role, deploy/iam/); with EKS Pod Identity, add any annotation there (e.g. agent-bom.io/identity: eks-pod-identity)" (first $found) }}
{{- end }}
{{- end }}
