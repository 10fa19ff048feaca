{{/* The Ingress's public addresses. */}}

{{/* agent-backend.ingress.scheme: takes dict "host" (a rendered host name) "context" (root); returns "https" when TLS is configured for that host (an ingress.tls entry, after template evaluation, lists it or lists no hosts, which covers every host; or the AWS Load Balancer Controller's alb.ingress.kubernetes.io/certificate-arn annotation is set), else "http". */}}
{{- define "agent-backend.ingress.scheme" -}}
{{- $scheme := "http" -}}
{{- $ingress := .context.Values.ingress -}}
{{- if index ($ingress.annotations | default dict) "alb.ingress.kubernetes.io/certificate-arn" -}}
{{- $scheme = "https" -}}
{{- end -}}
{{- with $ingress.tls -}}
{{- range (include "agent-backend.tpl.render" (dict "value" . "context" $.context) | fromYamlArray) -}}
{{- $hosts := list -}}
{{- range ((kindIs "map" .) | ternary (.hosts | default list) list) -}}{{- $hosts = append $hosts (toString . | trim) -}}{{- end -}}
{{- if or (not $hosts) (has $.host $hosts) -}}
{{- $scheme = "https" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $scheme -}}
{{- end -}}
