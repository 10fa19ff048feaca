{{/* Pieces of the PodDisruptionBudget. */}}

{{/* agent-backend.podDisruptionBudget.intOrPercent: takes a minAvailable / maxUnavailable value (a number, or a string like "50%"); returns it as YAML, a percentage quoted and anything else as an unquoted number (the API server takes a string only as a percentage). */}}
{{- define "agent-backend.podDisruptionBudget.intOrPercent" -}}
{{- $value := toString . -}}
{{- if hasSuffix "%" $value -}}{{ $value | quote }}{{- else -}}{{ $value | atoi }}{{- end -}}
{{- end -}}

{{/* agent-backend.podDisruptionBudget.fewestReplicas: takes the root context; returns the fewest replicas the Deployment runs (autoscaling.minReplicas while autoscaling is on, else extraOptionsSpec.replicas rendered with tpl, else 1), "" when that is not a number. */}}
{{- define "agent-backend.podDisruptionBudget.fewestReplicas" -}}
{{- $spec := .Values.extraOptionsSpec | default dict -}}
{{- if .Values.autoscaling.enabled -}}
{{- .Values.autoscaling.minReplicas | int -}}
{{- else if hasKey $spec "replicas" -}}
{{- $replicas := include "agent-backend.tpl.render" (dict "value" (toString $spec.replicas) "context" .) | trim -}}
{{- if regexMatch "^[0-9]+$" $replicas -}}{{ $replicas }}{{- end -}}
{{- else -}}
1
{{- end -}}
{{- end -}}
