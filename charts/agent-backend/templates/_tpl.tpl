{{/* Rendering user values as templates. */}}

{{/* agent-backend.tpl.render: takes dict "value" (any) "context" (root); returns the value rendered with tpl (a string as is, anything else as YAML first). */}}
{{- define "agent-backend.tpl.render" -}}
{{- if kindIs "string" .value -}}
{{- tpl .value .context -}}
{{- else -}}
{{- tpl (toYaml .value) .context -}}
{{- end -}}
{{- end -}}

{{/* agent-backend.tpl.map: takes dict "value" (map or nil) "context" (root); returns the map with every value rendered with tpl, as YAML ("{}" when empty). */}}
{{- define "agent-backend.tpl.map" -}}
{{- if .value -}}
{{- include "agent-backend.tpl.render" . | fromYaml | toYaml -}}
{{- else -}}
{{- dict | toYaml -}}
{{- end -}}
{{- end -}}

{{/* agent-backend.tpl.withChart: takes dict "value" (string) "context" (root); returns the string rendered with tpl where both `.chart` and `.Chart` are Chart.yaml (image tags use `{{ .chart.AppVersion }}`). */}}
{{- define "agent-backend.tpl.withChart" -}}
{{- $ctx := dict "chart" .context.Chart "Chart" .context.Chart "Values" .context.Values "Release" .context.Release "Capabilities" .context.Capabilities "Template" .context.Template "Files" .context.Files -}}
{{- tpl (toString .value) $ctx -}}
{{- end -}}
