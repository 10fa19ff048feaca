{{/* Pieces of the Deployment's pod. */}}

{{/* agent-backend.pod.securityContext: takes a securityContext values section (may carry "enabled"); returns it as YAML without the "enabled" switch. */}}
{{- define "agent-backend.pod.securityContext" -}}
{{- omit (deepCopy .) "enabled" | toYaml -}}
{{- end -}}

{{/* agent-backend.pod.probe: takes dict "probe" (a probe values section) "context" (root); returns the Kubernetes probe as YAML: "enabled" dropped, httpGet.port rendered with tpl (a number when it is all digits, else a port name). */}}
{{- define "agent-backend.pod.probe" -}}
{{- $probe := omit (deepCopy .probe) "enabled" -}}
{{- $httpGet := $probe.httpGet | default dict -}}
{{- $port := include "agent-backend.pod.probePort" . -}}
{{- if regexMatch "^[0-9]+$" $port -}}
{{- $_ := set $httpGet "port" (atoi $port) -}}
{{- else -}}
{{- $_ := set $httpGet "port" $port -}}
{{- end -}}
{{- $_ := set $probe "httpGet" $httpGet -}}
{{- toYaml $probe -}}
{{- end -}}

{{/* agent-backend.pod.probePort: takes dict "probe" "context"; returns the probe's httpGet.port rendered with tpl, as a string. */}}
{{- define "agent-backend.pod.probePort" -}}
{{- include "agent-backend.tpl.render" (dict "value" (toString (.probe.httpGet | default dict).port) "context" .context) | trim -}}
{{- end -}}

{{/* agent-backend.pod.templateSpec: takes the root context; returns, as YAML, the pod spec fields the user may extend through extraOptionsTemplateSpec (serviceAccountName, automountServiceAccountToken, securityContext, plus the user's keys, which win; maps are merged deeply). */}}
{{- define "agent-backend.pod.templateSpec" -}}
{{- $spec := dict "serviceAccountName" (include "agent-backend.names.serviceAccount" .) "automountServiceAccountToken" .Values.serviceAccount.automountServiceAccountToken -}}
{{- if .Values.podSecurityContext.enabled -}}
{{- $_ := set $spec "securityContext" (include "agent-backend.pod.securityContext" .Values.podSecurityContext | fromYaml) -}}
{{- end -}}
{{- with .Values.extraOptionsTemplateSpec -}}
{{- $spec = mergeOverwrite $spec (include "agent-backend.tpl.typed" (dict "value" . "type" "PodSpec" "context" $) | fromYaml) -}}
{{- end -}}
{{- toYaml $spec -}}
{{- end -}}

{{/* agent-backend.pod.tmpMount: takes nothing; returns the volumeMount of the writable /tmp emptyDir (YAML list item). */}}
{{- define "agent-backend.pod.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}
