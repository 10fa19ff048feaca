{{/* Labels and annotations shared by every object. */}}

{{/* agent-backend.labels.selector: takes the root context; returns the selector labels as YAML: name, instance (so two releases never select each other's pods) and component, the labels upstream's 0.1.4 Deployment selected on (a Deployment selector is immutable, so an upgrade from it needs the same ones). */}}
{{- define "agent-backend.labels.selector" -}}
app.kubernetes.io/name: {{ include "agent-backend.names.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: agent-backend
{{- end -}}

{{/* agent-backend.labels.standard: takes the root context; returns commonLabels plus the standard app.kubernetes.io labels (standard ones win) as YAML. */}}
{{- define "agent-backend.labels.standard" -}}
{{- $std := include "agent-backend.labels.selector" . | fromYaml -}}
{{- $_ := set $std "helm.sh/chart" (include "agent-backend.names.chart" .) -}}
{{- $_ := set $std "app.kubernetes.io/version" (toString .Chart.AppVersion) -}}
{{- $_ := set $std "app.kubernetes.io/managed-by" .Release.Service -}}
{{- $_ := set $std "app.kubernetes.io/part-of" "seqera" -}}
{{- merge $std (deepCopy (.Values.commonLabels | default dict)) | toYaml -}}
{{- end -}}

{{/* agent-backend.labels.with: takes dict "extra" (map, rendered with tpl) "context" (root); returns the standard labels plus the extra ones (standard ones win) as YAML. */}}
{{- define "agent-backend.labels.with" -}}
{{- $std := include "agent-backend.labels.standard" .context | fromYaml -}}
{{- $extra := include "agent-backend.tpl.map" (dict "value" .extra "context" .context) | fromYaml -}}
{{- merge $std $extra | toYaml -}}
{{- end -}}

{{/* agent-backend.labels.annotations: takes dict "extra" (map, rendered with tpl) "context" (root); returns commonAnnotations plus the extra ones (extra ones win) as YAML, "{}" when there are none. */}}
{{- define "agent-backend.labels.annotations" -}}
{{- $extra := include "agent-backend.tpl.map" (dict "value" .extra "context" .context) | fromYaml -}}
{{- merge $extra (deepCopy (.context.Values.commonAnnotations | default dict)) | toYaml -}}
{{- end -}}

{{/* agent-backend.labels.metadata: takes dict "name" "context" and optional "labels" / "annotations" (maps, tpl); returns the metadata block (name, namespace, labels, annotations) of a chart object. */}}
{{- define "agent-backend.labels.metadata" -}}
name: {{ .name }}
namespace: {{ .context.Release.Namespace | quote }}
labels:
  {{- include "agent-backend.labels.with" (dict "extra" .labels "context" .context) | nindent 2 }}
{{- $annotations := include "agent-backend.labels.annotations" (dict "extra" .annotations "context" .context) | fromYaml }}
{{- if $annotations }}
annotations:
  {{- toYaml $annotations | nindent 2 }}
{{- end }}
{{- end -}}
