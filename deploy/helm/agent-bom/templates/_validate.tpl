{{/*
Refuse, at `helm install`, values that could only fail later (at 03:00, with nobody watching).

values.schema.json checks types, enums, ranges and unknown keys inside controlPlane.backup;
everything with a format (names, regions, ARNs, schedules, URLs), every combination and every
placeholder is checked here, so each problem gets one line naming the value and saying what is
expected. All problems are reported at once, one per line.
*/}}

{{/* The placeholders a string holds (<...>, REPLACE_ME..., CHANGE_ME...), quoted and comma-separated, or nothing. */}}
{{- define "agent-bom.placeholderIn" -}}
{{- if kindIs "string" . }}
{{- $found := regexFindAll "<[^<>]+>|(?i:REPLACE_?ME[A-Za-z0-9_]*|CHANGE_?ME[A-Za-z0-9_]*)" (toString .) -1 }}
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

{{- define "agent-bom.validate" -}}
{{- $cp := .Values.controlPlane }}
{{- $b := $cp.backup }}
{{- $db := $b.database }}
{{- $dest := $b.destination }}
{{- $drill := $b.restoreDrill }}
{{- $restore := dig "restore" dict $b }}
{{- $retention := dig "retention" dict $b }}
{{- $np := $b.networkPolicy }}
{{- $postgresSecrets := dig "postgresSecrets" dict $cp }}
{{- $errors := list }}

{{- /* ---- values meant for another key: a near miss would be ignored silently ---- */}}
{{- range $key, $_ := .Values }}
{{- if and (eq (lower $key) "controlplane") (ne $key "controlPlane") }}
{{- $errors = append $errors (printf "%s: unknown key; did you mean controlPlane?" $key) }}
{{- end }}
{{- end }}
{{- range $key, $_ := $cp }}
{{- if and (has (lower $key) (list "backup" "postgressecrets")) (not (has $key (list "backup" "postgresSecrets"))) }}
{{- $errors = append $errors (printf "controlPlane.%s: unknown key; did you mean controlPlane.%s?" $key (ternary "backup" "postgresSecrets" (eq (lower $key) "backup"))) }}
{{- end }}
{{- end }}
{{- if and (hasKey $cp "enabled") (kindIs "bool" $cp.enabled) (not $cp.enabled) }}
{{- $errors = append $errors "controlPlane.enabled=false: the agent-bom chart renders no control plane with these values, so there is no database to back up; set controlPlane.enabled=true (or remove it), or controlPlane.backup.enabled=false" }}
{{- end }}

{{- /* ---- upstream agent-bom backup keys this chart cannot honour ---- */}}
{{- range $key := list "dumpRepository" "dumpTag" "uploadRepository" "uploadTag" }}
{{- if get $b.image $key }}
{{- $errors = append $errors (printf "controlPlane.backup.image.%s: this chart runs one container, the agent-bom-backup image (pg_dump and the upload in one process); remove it, and set controlPlane.backup.image.repository / tag if you mirror the image" $key) }}
{{- end }}
{{- end }}
{{- range $key := list "dump" "upload" }}
{{- if get $b.resources $key }}
{{- $errors = append $errors (printf "controlPlane.backup.resources.%s: this chart runs one container; move its requests and limits to controlPlane.backup.resources.requests / limits" $key) }}
{{- end }}
{{- end }}
{{- if dig "extraArgs" list $dest }}
{{- $errors = append $errors "controlPlane.backup.destination.extraArgs are aws s3 cp arguments, and this chart uploads with agent-bom-backup: use destination.storageClass, destination.encryption or destination.endpointUrl instead, and remove extraArgs" }}
{{- end }}
{{- if and (dig "endpoint" "" $dest) $dest.endpointUrl (ne (dig "endpoint" "" $dest) $dest.endpointUrl) }}
{{- $errors = append $errors "controlPlane.backup.destination.endpoint and endpointUrl differ: set one of them (endpointUrl)" }}
{{- end }}

{{- /* ---- the source database: from a Secret only ---- */}}
{{- if hasKey $db "url" }}
{{- $errors = append $errors "controlPlane.backup.database.url: an inline database URL is not supported (it would be stored in the release); put the URL in a Secret under the key AGENT_BOM_POSTGRES_URL and set controlPlane.backup.database.existingSecret to its name (default agent-bom-postgres)" }}
{{- end }}
{{- $maintenanceFromEnv := false }}
{{- range $list := list "extraEnv" "env" }}
{{- range (dig $list list $b) }}
{{- if and (has .name (list "AGENT_BOM_POSTGRES_URL" "AGENT_BOM_POSTGRES_MAINTENANCE_URL" "AGENT_BOM_RESTORE_POSTGRES_URL" "PGPASSWORD" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN")) (hasKey . "value") }}
{{- $errors = append $errors (printf "controlPlane.backup.%s: %s must not be set inline (it would be stored in the release); take it from a Secret (valueFrom.secretKeyRef, database.existingSecret or destination.staticCredentials)" $list .name) }}
{{- else if eq .name "AGENT_BOM_POSTGRES_URL" }}
{{- $errors = append $errors (printf "controlPlane.backup.%s: AGENT_BOM_POSTGRES_URL is set by the chart; name its Secret in controlPlane.backup.database.existingSecret instead" $list) }}
{{- else if eq .name "AGENT_BOM_POSTGRES_MAINTENANCE_URL" }}
{{- if $postgresSecrets.enabled }}
{{- $errors = append $errors (printf "controlPlane.backup.%s: AGENT_BOM_POSTGRES_MAINTENANCE_URL comes from controlPlane.postgresSecrets.maintenanceSecretRef when postgresSecrets.enabled=true; remove it from %s" $list $list) }}
{{- else if not (dig "valueFrom" "secretKeyRef" "name" "" .) }}
{{- $errors = append $errors (printf "controlPlane.backup.%s: AGENT_BOM_POSTGRES_MAINTENANCE_URL must come from a Secret (valueFrom.secretKeyRef)" $list) }}
{{- else }}
{{- $maintenanceFromEnv = true }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if $postgresSecrets.enabled }}
{{- if not (dig "maintenanceSecretRef" "name" "" $postgresSecrets) }}
{{- $errors = append $errors "controlPlane.postgresSecrets.maintenanceSecretRef.name must name the Secret holding AGENT_BOM_POSTGRES_MAINTENANCE_URL when controlPlane.postgresSecrets.enabled=true (the backup runs as the maintenance identity)" }}
{{- end }}
{{- else if not $maintenanceFromEnv }}
{{- if not $db.existingSecret }}
{{- $errors = append $errors "controlPlane.backup.database.existingSecret must name an existing Secret holding the database URL (default agent-bom-postgres), e.g. kubectl create secret generic agent-bom-postgres --from-file=AGENT_BOM_POSTGRES_URL=./postgres-url" }}
{{- end }}
{{- if not $db.existingSecretKey }}
{{- $errors = append $errors "controlPlane.backup.database.existingSecretKey must name the key of the database URL in the Secret (default AGENT_BOM_POSTGRES_URL)" }}
{{- end }}
{{- end }}

{{- /* ---- the destination ---- */}}
{{- $region := include "agent-bom.backup.region" . }}
{{- $endpoint := include "agent-bom.backup.endpoint" . }}
{{- if not $dest.bucket }}
{{- $errors = append $errors "controlPlane.backup.destination.bucket is required when controlPlane.backup.enabled=true (the bucket name, without s3://)" }}
{{- end }}
{{- if not $region }}
{{- $errors = append $errors "controlPlane.backup.destination.bucketRegion is required when controlPlane.backup.enabled=true: keep the bucket's region explicit (e.g. us-east-1); do not rely on example regions" }}
{{- end }}
{{- if and $dest.encryption.kmsKeyId (not $dest.encryption.enabled) }}
{{- $errors = append $errors "controlPlane.backup.destination.encryption.kmsKeyId is set but encryption.enabled=false: enable encryption with mode aws:kms, or clear kmsKeyId" }}
{{- else if and $dest.encryption.kmsKeyId (ne $dest.encryption.mode "aws:kms") }}
{{- $errors = append $errors (printf "controlPlane.backup.destination.encryption.kmsKeyId is only used with mode aws:kms (mode is %s): set mode to aws:kms, or clear kmsKeyId for SSE-S3" $dest.encryption.mode) }}
{{- end }}
{{- $static := $dest.staticCredentials }}
{{- if and $static.enabled (not $static.existingSecret) }}
{{- $errors = append $errors "controlPlane.backup.destination.staticCredentials.existingSecret must name an existing Secret when staticCredentials.enabled=true" }}
{{- end }}
{{- if and $static.enabled (not (and $static.accessKeyIdKey $static.secretAccessKeyKey)) }}
{{- $errors = append $errors "controlPlane.backup.destination.staticCredentials.accessKeyIdKey and secretAccessKeyKey must name keys of the credentials Secret" }}
{{- end }}
{{- if and $static.enabled $b.webIdentity.enabled }}
{{- $errors = append $errors "controlPlane.backup.destination.staticCredentials and controlPlane.backup.webIdentity are alternatives: enable one of them" }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $b.webIdentity.roleArn) }}
{{- $errors = append $errors "controlPlane.backup.webIdentity.roleArn is required when webIdentity.enabled=true (arn:aws:iam::ACCOUNT:role/agent-bom-backup)" }}
{{- end }}
{{- if and $dest.caBundle.secretName $dest.caBundle.configMapName }}
{{- $errors = append $errors "controlPlane.backup.destination.caBundle: set secretName or configMapName, not both" }}
{{- end }}
{{- if and $db.caBundle.secretName $db.caBundle.configMapName }}
{{- $errors = append $errors "controlPlane.backup.database.caBundle: set secretName or configMapName, not both" }}
{{- end }}

{{- /* ---- identities ---- */}}
{{- if dig "serviceAccountName" "" $b }}
{{- if $b.serviceAccount.annotations }}
{{- $errors = append $errors "controlPlane.backup.serviceAccount.annotations only apply to a ServiceAccount the chart creates, and serviceAccountName names an existing one: annotate that ServiceAccount instead" }}
{{- end }}
{{- else if not $b.serviceAccount.create }}
{{- if not $b.serviceAccount.name }}
{{- $errors = append $errors "controlPlane.backup.serviceAccount.name must name an existing ServiceAccount when serviceAccount.create=false" }}
{{- end }}
{{- if $b.serviceAccount.annotations }}
{{- $errors = append $errors "controlPlane.backup.serviceAccount.annotations only apply to a ServiceAccount the chart creates: annotate your existing ServiceAccount instead, or set serviceAccount.create=true" }}
{{- end }}
{{- end }}
{{- if and $np.enabled (not $np.database.cidrs) (not $np.extraEgress) }}
{{- $errors = append $errors "controlPlane.backup.networkPolicy.database.cidrs is required when networkPolicy.enabled=true (or allow the database through networkPolicy.extraEgress): the job could not reach the database otherwise" }}
{{- end }}

{{- /* ---- client-side encryption: public keys in the backup pod, identities only where backups are read ---- */}}
{{- $ce := dig "clientEncryption" dict $b }}
{{- $clientEncrypted := or (dig "recipients" list $ce) (dig "recipientsConfigMap" "" $ce) }}
{{- range $index, $recipient := dig "recipients" list $ce }}
{{- if and (kindIs "string" $recipient) (regexMatch "(?i)^AGE-SECRET-KEY-|PRIVATE KEY" $recipient) }}
{{- $errors = append $errors (printf "controlPlane.backup.clientEncryption.recipients[%d] is a secret key (an age identity), not a public key: remove it from the values (and rotate it: it is in the release now); give the recipient `age-keygen -y` prints" $index) }}
{{- else }}
{{- with include "agent-bom.formatError" (dict "path" (printf "controlPlane.backup.clientEncryption.recipients[%d]" $index) "value" $recipient "pattern" "^(age1[ac-hj-np-z02-9]{58}|ssh-(ed25519|rsa) AAAA[A-Za-z0-9+/]+={0,3}( [^\n]*)?)$" "expect" "an age recipient: an X25519 public key (age1 and 58 lower-case bech32 characters, as `age-keygen -y` prints it) or an SSH ssh-ed25519/ssh-rsa public key line") }}
{{- $errors = append $errors . }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (dig "recipients" list $ce) (dig "recipientsConfigMap" "" $ce) }}
{{- $errors = append $errors "controlPlane.backup.clientEncryption: set recipients or recipientsConfigMap, not both" }}
{{- end }}
{{- if and $drill.enabled $clientEncrypted (not (dig "encryption" "existingSecret" "" $drill)) }}
{{- $errors = append $errors "controlPlane.backup.restoreDrill.encryption.existingSecret must name the Secret holding an age identity of one of clientEncryption's recipients: the drill cannot decrypt the backups otherwise (kubectl create secret generic agent-bom-age-identity --from-file=identity.txt=./key.txt)" }}
{{- end }}

{{- /* ---- restore drill, in-cluster restore, retention: each reads or deletes with its own identity ---- */}}
{{- if $drill.enabled }}
{{- if not $drill.target.existingSecret }}
{{- $errors = append $errors "controlPlane.backup.restoreDrill.target.existingSecret must name an existing Secret holding the scratch database URL when restoreDrill.enabled=true (never the production database)" }}
{{- end }}
{{- if not $drill.target.existingSecretKey }}
{{- $errors = append $errors "controlPlane.backup.restoreDrill.target.existingSecretKey must name the key of the scratch database URL (default AGENT_BOM_RESTORE_POSTGRES_URL)" }}
{{- end }}
{{- if not $drill.target.database }}
{{- $errors = append $errors "controlPlane.backup.restoreDrill.target.database must name the scratch database: it confirms the drill may clean it" }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $drill.webIdentityRoleArn) }}
{{- $errors = append $errors "controlPlane.backup.restoreDrill.webIdentityRoleArn is required when webIdentity.enabled=true: the drill reads backups, which the backup role cannot" }}
{{- end }}
{{- if and (not $drill.serviceAccount.create) (not $drill.serviceAccount.name) }}
{{- $errors = append $errors "controlPlane.backup.restoreDrill.serviceAccount.name must name an existing ServiceAccount when restoreDrill.serviceAccount.create=false" }}
{{- end }}
{{- end }}
{{- if $restore.enabled }}
{{- if not (dig "target" "existingSecret" "" $restore) }}
{{- $errors = append $errors "controlPlane.backup.restore.target.existingSecret must name an existing Secret holding the URL of the database to restore into when restore.enabled=true" }}
{{- end }}
{{- if not (dig "target" "existingSecretKey" "AGENT_BOM_RESTORE_POSTGRES_URL" $restore) }}
{{- $errors = append $errors "controlPlane.backup.restore.target.existingSecretKey must name the key of the target URL (default AGENT_BOM_RESTORE_POSTGRES_URL)" }}
{{- end }}
{{- if and $restore.clean (not $restore.confirmTarget) }}
{{- $errors = append $errors "controlPlane.backup.restore.clean=true needs controlPlane.backup.restore.confirmTarget: the target database's name, confirming it may be replaced" }}
{{- end }}
{{- if and $b.webIdentity.enabled (not $restore.webIdentityRoleArn) }}
{{- $errors = append $errors "controlPlane.backup.restore.webIdentityRoleArn is required when webIdentity.enabled=true: the restore reads backups, which the backup role cannot" }}
{{- end }}
{{- if and (not (dig "serviceAccount" "create" true $restore)) (not (dig "serviceAccount" "name" "" $restore)) }}
{{- $errors = append $errors "controlPlane.backup.restore.serviceAccount.name must name an existing ServiceAccount when restore.serviceAccount.create=false" }}
{{- end }}
{{- end }}
{{- if not (kindIs "invalid" (dig "retentionDays" nil $b)) }}
{{- if and $b.webIdentity.enabled (not $retention.webIdentityRoleArn) }}
{{- $errors = append $errors "controlPlane.backup.retention.webIdentityRoleArn is required when webIdentity.enabled=true and retentionDays is set: retention deletes backups, which the backup role cannot" }}
{{- end }}
{{- if and $static.enabled (not $retention.staticCredentialsSecret) }}
{{- $errors = append $errors "controlPlane.backup.retention.staticCredentialsSecret must name a Secret with list and delete credentials when staticCredentials.enabled=true and retentionDays is set: retention never uses the backup's key" }}
{{- end }}
{{- if and (not (dig "serviceAccount" "create" true $retention)) (not (dig "serviceAccount" "name" "" $retention)) }}
{{- $errors = append $errors "controlPlane.backup.retention.serviceAccount.name must name an existing ServiceAccount when retention.serviceAccount.create=false" }}
{{- end }}
{{- end }}

{{- /* ---- formats: one sentence each instead of a raw regular expression ---- */}}
{{- $dnsLabel := "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" }}
{{- $dnsName := "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" }}
{{- $cron := "^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$" }}
{{- $roleArn := "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$" }}
{{- $awsRegion := "^(us|eu|ap|sa|ca|me|af|il|mx|cn)(-gov|-iso|-isob|-isoe|-isof)?-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[0-9]{1,2}$" }}
{{- $cidr := "^(([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*/[0-9]{1,3})$" }}
{{- $ip := "^(([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$" }}
{{- $checks := list
  (dict "path" "nameOverride" "value" .Values.nameOverride "pattern" $dnsLabel "expect" "a DNS label (lowercase letters, digits and '-')")
  (dict "path" "fullnameOverride" "value" .Values.fullnameOverride "pattern" $dnsLabel "expect" "a DNS label (lowercase letters, digits and '-')")
  (dict "path" "controlPlane.backup.schedule" "value" $b.schedule "pattern" $cron "expect" "a cron schedule: five fields (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\") or a macro such as @daily; set the zone with timeZone, not CRON_TZ")
  (dict "path" "controlPlane.backup.restoreDrill.schedule" "value" $drill.schedule "pattern" $cron "expect" "a cron schedule: five fields (e.g. \"0 6 * * 0\") or a macro such as @weekly")
  (dict "path" "controlPlane.backup.retention.schedule" "value" (dig "schedule" "" $retention) "pattern" $cron "expect" "a cron schedule: five fields (e.g. \"30 5 * * *\") or a macro such as @daily")
  (dict "path" "controlPlane.backup.timeZone" "value" $b.timeZone "pattern" "^[A-Za-z_+-]+(/[A-Za-z0-9_+-]+)*$" "expect" "an IANA time zone such as Etc/UTC or Europe/Berlin")
  (dict "path" "controlPlane.backup.image.repository" "value" $b.image.repository "pattern" "^([^\\s@/]+/)*[^\\s@:/]+$" "expect" "an image repository without tag or digest (set image.tag / image.digest)")
  (dict "path" "controlPlane.backup.image.tag" "value" $b.image.tag "pattern" "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$" "expect" "an image tag (letters, digits, '_', '.', '-'; at most 128)")
  (dict "path" "controlPlane.backup.image.digest" "value" $b.image.digest "pattern" "^sha256:[a-f0-9]{64}$" "expect" "an image digest: sha256: and 64 hexadecimal digits")
  (dict "path" "controlPlane.backup.destination.bucket" "value" $dest.bucket "pattern" "^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$" "expect" "a bucket name: 3-63 lowercase letters, digits, '.', '-' (and '_' for GCS), without s3:// or a path")
  (dict "path" "controlPlane.backup.destination.prefix" "value" $dest.prefix "pattern" "^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$" "expect" "a key prefix without leading or trailing '/' (e.g. agent-bom/postgres)")
  (dict "path" "controlPlane.backup.destination.endpointUrl" "value" $dest.endpointUrl "pattern" "^https?://[^\\s/@]+(/[^\\s]*)?$" "expect" "an http:// or https:// URL without credentials (e.g. https://minio.example:9000)" "hide" true)
  (dict "path" "controlPlane.backup.destination.endpoint" "value" (dig "endpoint" "" $dest) "pattern" "^https?://[^\\s/@]+(/[^\\s]*)?$" "expect" "an http:// or https:// URL without credentials (e.g. https://minio.example:9000)" "hide" true)
  (dict "path" "controlPlane.backup.destination.encryption.kmsKeyId" "value" $dest.encryption.kmsKeyId "pattern" "^(alias/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+))$" "expect" "a KMS key: its id, its ARN, alias/NAME or an alias ARN")
  (dict "path" "controlPlane.backup.webIdentity.roleArn" "value" $b.webIdentity.roleArn "pattern" $roleArn "expect" "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
  (dict "path" "controlPlane.backup.restoreDrill.webIdentityRoleArn" "value" $drill.webIdentityRoleArn "pattern" $roleArn "expect" "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
  (dict "path" "controlPlane.backup.restore.webIdentityRoleArn" "value" (dig "webIdentityRoleArn" "" $restore) "pattern" $roleArn "expect" "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
  (dict "path" "controlPlane.backup.retention.webIdentityRoleArn" "value" (dig "webIdentityRoleArn" "" $retention) "pattern" $roleArn "expect" "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
  (dict "path" "controlPlane.backup.dump.compression" "value" $b.dump.compression "pattern" "^(auto|none|(gzip|lz4|zstd)(:[0-9]{1,2})?)$" "expect" "a compression: auto, none, gzip[:N], lz4[:N] or zstd[:N]")
  (dict "path" "controlPlane.backup.dump.compressionFallback" "value" $b.dump.compressionFallback "pattern" "^(none|(gzip|lz4|zstd)(:[0-9]{1,2})?)$" "expect" "a compression: none, gzip[:N], lz4[:N] or zstd[:N]")
  (dict "path" "controlPlane.backup.dump.tenantColumn" "value" $b.dump.tenantColumn "pattern" "^[a-z_][a-z0-9_$]{0,62}$" "expect" "a lowercase column name")
  (dict "path" "controlPlane.backup.upload.partSize" "value" $b.upload.partSize "pattern" "^[1-9][0-9]*(B|KiB|MiB|GiB)?$" "expect" "a size such as 16MiB or 1GiB")
  (dict "path" "controlPlane.backup.metricsFile" "value" $b.metricsFile "pattern" "^/[^\\s]*$" "expect" "an absolute path")
  (dict "path" "controlPlane.backup.restoreDrill.target.database" "value" $drill.target.database "pattern" "^[^\\s\"']{1,63}$" "expect" "a database name (no spaces or quotes)")
  (dict "path" "controlPlane.backup.restore.confirmTarget" "value" (dig "confirmTarget" "" $restore) "pattern" "^[^\\s\"']{1,63}$" "expect" "a database name (no spaces or quotes)")
  (dict "path" "controlPlane.backup.restore.backupUri" "value" (dig "backupUri" "latest" $restore) "pattern" "^(latest|s3://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]/[^\\s]*)$" "expect" "latest, s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump or s3://BUCKET/PREFIX/")
  (dict "path" "controlPlane.backup.priorityClassName" "value" $b.priorityClassName "pattern" $dnsName "expect" "a PriorityClass name (lowercase letters, digits, '-' and '.')")
}}
{{- if $endpoint }}
{{- $checks = append $checks (dict "path" "controlPlane.backup.destination.bucketRegion" "value" $region "pattern" "^[^\\s/:]+$" "expect" "a region name (the one your S3-compatible store expects, e.g. us-east-1 or auto)") }}
{{- else }}
{{- $checks = append $checks (dict "path" "controlPlane.backup.destination.bucketRegion" "value" $region "pattern" $awsRegion "expect" "an AWS region such as us-east-1, eu-west-1, us-gov-west-1, cn-north-1 or us-iso-east-1 (any name is accepted with destination.endpointUrl)") }}
{{- end }}
{{- $names := list
  (list "controlPlane.backup.database.existingSecret" $db.existingSecret)
  (list "controlPlane.backup.database.caBundle.secretName" $db.caBundle.secretName)
  (list "controlPlane.backup.database.caBundle.configMapName" $db.caBundle.configMapName)
  (list "controlPlane.backup.destination.caBundle.secretName" $dest.caBundle.secretName)
  (list "controlPlane.backup.destination.caBundle.configMapName" $dest.caBundle.configMapName)
  (list "controlPlane.backup.destination.staticCredentials.existingSecret" $static.existingSecret)
  (list "controlPlane.backup.serviceAccountName" (dig "serviceAccountName" "" $b))
  (list "controlPlane.backup.serviceAccount.name" $b.serviceAccount.name)
  (list "controlPlane.backup.restoreDrill.target.existingSecret" $drill.target.existingSecret)
  (list "controlPlane.backup.restoreDrill.serviceAccount.name" $drill.serviceAccount.name)
  (list "controlPlane.backup.restoreDrill.staticCredentialsSecret" $drill.staticCredentialsSecret)
  (list "controlPlane.backup.restore.target.existingSecret" (dig "target" "existingSecret" "" $restore))
  (list "controlPlane.backup.restore.serviceAccount.name" (dig "serviceAccount" "name" "" $restore))
  (list "controlPlane.backup.restore.staticCredentialsSecret" (dig "staticCredentialsSecret" "" $restore))
  (list "controlPlane.backup.restore.persistence.existingClaim" (dig "persistence" "existingClaim" "" $restore))
  (list "controlPlane.backup.retention.serviceAccount.name" (dig "serviceAccount" "name" "" $retention))
  (list "controlPlane.backup.retention.staticCredentialsSecret" (dig "staticCredentialsSecret" "" $retention))
  (list "controlPlane.postgresSecrets.maintenanceSecretRef.name" (dig "maintenanceSecretRef" "name" "" $postgresSecrets))
}}
{{- range $index, $name := $b.image.pullSecrets }}
{{- $names = append $names (list (printf "controlPlane.backup.image.pullSecrets[%d]" $index) $name) }}
{{- end }}
{{- range $names }}
{{- $checks = append $checks (dict "path" (index . 0) "value" (index . 1) "pattern" $dnsName "expect" "a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)") }}
{{- end }}
{{- $keys := list
  (list "controlPlane.backup.database.existingSecretKey" $db.existingSecretKey)
  (list "controlPlane.backup.database.caBundle.key" $db.caBundle.key)
  (list "controlPlane.backup.destination.caBundle.key" $dest.caBundle.key)
  (list "controlPlane.backup.destination.staticCredentials.accessKeyIdKey" $static.accessKeyIdKey)
  (list "controlPlane.backup.destination.staticCredentials.secretAccessKeyKey" $static.secretAccessKeyKey)
  (list "controlPlane.backup.destination.staticCredentials.sessionTokenKey" $static.sessionTokenKey)
  (list "controlPlane.backup.restoreDrill.target.existingSecretKey" $drill.target.existingSecretKey)
  (list "controlPlane.backup.restore.target.existingSecretKey" (dig "target" "existingSecretKey" "" $restore))
}}
{{- range $keys }}
{{- $checks = append $checks (dict "path" (index . 0) "value" (index . 1) "pattern" "^[-._a-zA-Z0-9]+$" "expect" "a Secret key (letters, digits, '-', '_' and '.')") }}
{{- end }}
{{- range $index, $setting := (dig "sessionSettings" list $b.dump) }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.dump.sessionSettings[%d]" $index) "value" $setting "pattern" "^[A-Za-z_][A-Za-z0-9_.]*=[^\\s]*$" "expect" "NAME=VALUE without spaces (e.g. app.bypass_rls=1)") }}
{{- end }}
{{- range $rule := list "database" "objectStorage" }}
{{- range $index, $value := (get $np $rule).cidrs }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.networkPolicy.%s.cidrs[%d]" $rule $index) "value" $value "pattern" $cidr "expect" "a CIDR: an IPv4 or IPv6 address with its prefix length (e.g. 10.0.0.0/16, fd00::/8)") }}
{{- end }}
{{- end }}
{{- range $index, $value := (dig "dns" "nodeLocal" "addresses" list $np) }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.networkPolicy.dns.nodeLocal.addresses[%d]" $index) "value" $value "pattern" $ip "expect" "an IP address (e.g. 169.254.20.10)") }}
{{- end }}
{{- $accounts := dict "serviceAccount" $b.serviceAccount "restoreDrill.serviceAccount" $drill.serviceAccount "restore.serviceAccount" (dig "serviceAccount" dict $restore) "retention.serviceAccount" (dig "serviceAccount" dict $retention) }}
{{- range $path := keys $accounts | sortAlpha }}
{{- $checks = append $checks (dict "path" (printf "controlPlane.backup.%s.annotations[\"eks.amazonaws.com/role-arn\"]" $path) "value" (dig "annotations" "eks.amazonaws.com/role-arn" "" (get $accounts $path)) "pattern" $roleArn "expect" "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)") }}
{{- end }}
{{- range $checks }}
{{- $errors = append $errors (include "agent-bom.formatError" .) }}
{{- end }}
{{- with $b.upload.partSize }}
{{- if regexMatch "^[1-9][0-9]*(B|KiB|MiB|GiB)?$" . }}
{{- $number := regexFind "^[0-9]+" . }}
{{- $factor := get (dict "" 1 "B" 1 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824) (trimPrefix $number .) }}
{{- $bytes := mul ($number | int64) $factor }}
{{- if or (lt $bytes 5242880) (gt $bytes 5368709120) }}
{{- $errors = append $errors (printf "controlPlane.backup.upload.partSize: %q is outside S3's part size limits: use 5MiB to 5GiB (e.g. 16MiB)" .) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* ---- placeholders left in a values file copied from the docs or upstream's examples ---- */}}
{{- $scanned := dict "controlPlane.backup" $b "controlPlane.postgresSecrets" $postgresSecrets "global" (default dict .Values.global) "commonLabels" (default dict .Values.commonLabels) "commonAnnotations" (default dict .Values.commonAnnotations) }}
{{- range $path := list "controlPlane.backup" "controlPlane.postgresSecrets" "global" "commonLabels" "commonAnnotations" }}
{{- $errors = concat $errors (splitList "\n" (include "agent-bom.placeholders" (dict "path" $path "value" (get $scanned $path)))) }}
{{- end }}

{{- /* ---- least privilege and the restricted Pod Security Standard: one small validator per rule (below) ---- */}}
{{- range $rule := list "componentEnv" "liveSourceCheck" "serviceAccounts" "roleArns" "workloadIdentity" "staticCredentials" "targets" "preapproval" "podSecurityContext" "containerSecurityContext" "hostPath" "imageTag" }}
{{- $errors = concat $errors (splitList "\n" (include (printf "agent-bom.validate.%s" $rule) $)) }}
{{- end }}

{{- $errors = compact $errors }}
{{- if eq (len $errors) 1 }}
{{- fail (first $errors) }}
{{- else if $errors }}
{{- fail (printf "%d problems in the values:\n%s" (len $errors) (join "\n" $errors)) }}
{{- end }}
{{- end }}

{{/*
Least-privilege validators (Bitnami's validateValues pattern): each define below checks one
rule and renders one line per problem, or nothing; agent-bom.validate collects them all and
fails once. Each component reads only its own Secrets under its own identity.
*/}}

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
{{- define "agent-bom.validate.componentEnv" -}}
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
{{- define "agent-bom.validate.liveSourceCheck" -}}
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
{{- define "agent-bom.validate.serviceAccounts" -}}
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
{{- define "agent-bom.validate.roleArns" -}}
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
{{- define "agent-bom.validate.workloadIdentity" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $key := "eks.amazonaws.com/role-arn" }}
{{- $policies := dict "restore" "restore-role-policy.json" "restoreDrill" "restore-role-policy.json" "retention" "prune-role-policy.json" }}
{{- if and (include "agent-bom.backup.createsServiceAccount" .) (dig "serviceAccount" "annotations" $key "" $b) (not $b.webIdentity.enabled) (not $b.destination.staticCredentials.enabled) }}
{{- range $component := include "agent-bom.enabledOwnIdentities" . | fromJsonArray }}
{{- if and (dig $component "serviceAccount" "create" true $b) (not (dig $component "serviceAccount" "annotations" $key "" $b)) }}
{{ printf "controlPlane.backup.%s.serviceAccount.annotations[%q] is required: the backup uses IRSA, and without a role of its own the %s would fall back to the node's role; annotate it with a role carrying deploy/iam/%s" $component $key $component (get $policies $component) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Static credentials: a Secret per component, never the backup's key for reading or deleting. */}}
{{- define "agent-bom.validate.staticCredentials" -}}
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
{{- define "agent-bom.validate.targets" -}}
{{- $b := .Values.controlPlane.backup }}
{{- $source := include "agent-bom.backup.databaseSource" . | fromJson }}
{{- if dig "restore" "enabled" false $b }}
{{- if and (eq (dig "restore" "target" "existingSecret" "" $b) $source.name) (eq (dig "restore" "target" "existingSecretKey" "AGENT_BOM_RESTORE_POSTGRES_URL" $b) $source.key) }}
{{ printf "controlPlane.backup.restore.target is the backup's source (Secret %s, key %s): the backup's credential must not reach the restore Job; give the restore a Secret of its own (for a production restore, the database owner's URL)" $source.name $source.key }}
{{- end }}
{{- end }}
{{- if dig "restoreDrill" "enabled" false $b }}
{{- if and (eq (dig "restoreDrill" "target" "existingSecret" "" $b) $source.name) (eq (dig "restoreDrill" "target" "existingSecretKey" "AGENT_BOM_RESTORE_POSTGRES_URL" $b) $source.key) }}
{{ printf "controlPlane.backup.restoreDrill.target is the backup's source (Secret %s, key %s): the drill cleans its target on every run; point it at a scratch database's Secret" $source.name $source.key }}
{{- end }}
{{- end }}
{{- end }}

{{/* An approval or skipping the safety backup is decided when a person creates the restore Job, never in values. */}}
{{- define "agent-bom.validate.preapproval" -}}
{{- $b := .Values.controlPlane.backup }}
{{- if dig "restore" "approval" "" $b }}
{{ print "controlPlane.backup.restore.approval: an approval is given when a person creates the restore Job, never in values (anyone allowed to create Jobs could use it); remove it and set AGENT_BOM_RESTORE_APPROVAL with kubectl set env at instantiation (docs/runbook.md, In-cluster restore)" }}
{{- end }}
{{- if dig "restore" "noSafetyBackup" false $b }}
{{ print "controlPlane.backup.restore.noSafetyBackup: skipping the safety backup is decided when a person creates the restore Job, never in values; remove it and set AGENT_BOM_RESTORE_NO_SAFETY_BACKUP=true with kubectl set env at instantiation (docs/runbook.md, In-cluster restore)" }}
{{- end }}
{{- end }}

{{/* The pod securityContext keeps the restricted Pod Security Standard. */}}
{{- define "agent-bom.validate.podSecurityContext" -}}
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
{{- define "agent-bom.validate.containerSecurityContext" -}}
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
{{- define "agent-bom.validate.hostPath" -}}
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
{{- define "agent-bom.validate.imageTag" -}}
{{- if eq (lower (toString .Values.controlPlane.backup.image.tag)) "latest" }}
{{ print "controlPlane.backup.image.tag: latest is refused (a moving tag with IfNotPresent runs whatever a node cached); use a release tag, and pin it with controlPlane.backup.image.digest (sha256:...)" }}
{{- end }}
{{- end }}
