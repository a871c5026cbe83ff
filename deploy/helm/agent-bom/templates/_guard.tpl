{{/*
Never over a running agent-bom: upstream agent-bom's chart is also named agent-bom, so
`helm upgrade --install agent-bom …/agent-bom` with this chart would replace the control plane's
release and delete its API, UI and gateway. This chart renders no Deployment, StatefulSet or
Service: when the release it is installed under already owns one, it is another chart's release,
and the install stops before Helm changes anything (docs/install.md).

`lookup` answers only against a cluster: `helm template` and `--dry-run=client` see nothing and
render as before. The decision is agent-bom.releaseGuard.owned, which takes lookup's answers as
input, so tests render it with stubbed answers (tests/chart/test_release_guard.py).
*/}}

{{/* Kinds this chart never renders, as lookup arguments (apiVersion, kind). */}}
{{- define "agent-bom.releaseGuard.kinds" -}}
{{- list (list "apps/v1" "Deployment") (list "apps/v1" "StatefulSet") (list "v1" "Service") | toJson }}
{{- end }}

{{/*
"Kind/name" of each object the release owns (Helm's meta.helm.sh/release-name annotation), as a
JSON list. Call with (dict "release" NAME "found" (dict KIND LOOKUP_ANSWER ...)).
*/}}
{{- define "agent-bom.releaseGuard.owned" -}}
{{- $release := .release }}
{{- $owned := list }}
{{- range $kind := keys .found | sortAlpha }}
{{- range (dig "items" list (get $.found $kind)) }}
{{- if eq (dig "metadata" "annotations" "meta.helm.sh/release-name" "" .) $release }}
{{- $owned = append $owned (printf "%s/%s" $kind (dig "metadata" "name" "" .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $owned | toJson }}
{{- end }}

{{/* The refusal for (dict "release" NAME "namespace" NS "owned" LIST), or nothing. */}}
{{- define "agent-bom.releaseGuard.message" -}}
{{- if .owned }}
{{- printf "release %s in namespace %s belongs to another chart: it runs %s, which this chart never renders, and installing this chart under that name would delete them. Install the backup as its own release: helm upgrade --install agent-bom-backup oci://ghcr.io/agent-bom/charts/agent-bom -n %s -f values.yaml (docs/install.md)" .release .namespace (join ", " .owned) .namespace }}
{{- end }}
{{- end }}

{{- define "agent-bom.releaseGuard" -}}
{{- $found := dict }}
{{- range (include "agent-bom.releaseGuard.kinds" . | fromJsonArray) }}
{{- $_ := set $found (index . 1) (lookup (index . 0) (index . 1) $.Release.Namespace "") }}
{{- end }}
{{- $owned := include "agent-bom.releaseGuard.owned" (dict "release" .Release.Name "found" $found) | fromJsonArray }}
{{- with include "agent-bom.releaseGuard.message" (dict "release" .Release.Name "namespace" .Release.Namespace "owned" $owned) }}
{{- fail . }}
{{- end }}
{{- end }}
