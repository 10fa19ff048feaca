{{/* Pieces of the NetworkPolicy. NetworkPolicy peers are addresses and label selectors, never DNS names, so each egress rule allows one service's port to the peers given in networkPolicy.egress.<service>.to (every address when that list is empty). */}}

{{/* agent-backend.networkPolicy.domainPort: takes dict "value" (a domain value, may be a template) "context" (root); returns the port the service connects to over https: the domain's ":<port>", else 443. */}}
{{- define "agent-backend.networkPolicy.domainPort" -}}
{{- $domain := include "agent-backend.config.domain" . -}}
{{- $port := regexFind ":[0-9]+$" $domain | trimPrefix ":" -}}
{{- $port | default "443" -}}
{{- end -}}

{{/* agent-backend.networkPolicy.rule: takes dict "to" (a list of peers, may be empty) "ports" (a list of {port, protocol}); returns one NetworkPolicyEgressRule as a YAML list item, without `to` when the list is empty (every address). */}}
{{- define "agent-backend.networkPolicy.rule" -}}
- {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range .ports }}
    - port: {{ .port | int }}
      protocol: {{ .protocol | default "TCP" }}
    {{- end }}
{{- end -}}

{{/* agent-backend.networkPolicy.egressRules: takes the root context; returns the egress rules as a YAML list: DNS (UDP and TCP 53), MySQL (database.port), Platform and, while it is on, Seqera MCP (their domains' ports), Anthropic and LangSmith (443), then networkPolicy.egress.extra (rendered with tpl). */}}
{{- define "agent-backend.networkPolicy.egressRules" -}}
{{- $egress := .Values.networkPolicy.egress -}}
{{- $https := list (dict "port" 443) -}}
{{- include "agent-backend.networkPolicy.rule" (dict "to" $egress.dns.to "ports" (list (dict "port" 53 "protocol" "UDP") (dict "port" 53 "protocol" "TCP"))) }}
{{ include "agent-backend.networkPolicy.rule" (dict "to" $egress.database.to "ports" (list (dict "port" .Values.database.port))) }}
{{ include "agent-backend.networkPolicy.rule" (dict "to" $egress.platform.to "ports" (list (dict "port" (include "agent-backend.networkPolicy.domainPort" (dict "value" .Values.global.platformExternalDomain "context" .))))) }}
{{- if include "agent-backend.config.mcpUrl" . }}
{{ include "agent-backend.networkPolicy.rule" (dict "to" $egress.mcp.to "ports" (list (dict "port" (include "agent-backend.networkPolicy.domainPort" (dict "value" .Values.global.mcpDomain "context" .))))) }}
{{- end }}
{{ include "agent-backend.networkPolicy.rule" (dict "to" $egress.anthropic.to "ports" $https) }}
{{ include "agent-backend.networkPolicy.rule" (dict "to" $egress.langsmith.to "ports" $https) }}
{{- with $egress.extra }}
{{ include "agent-backend.tpl.typed" (dict "value" . "type" "[]NetworkPolicyEgressRule" "context" $) }}
{{- end }}
{{- end -}}

{{/* agent-backend.networkPolicy.ingressFrom: takes the root context; returns the peers allowed to reach the http port as a YAML list: networkPolicy.ingress.from, plus the helm test pod while helmTest.enabled; "[]" (every source) when networkPolicy.ingress.from is empty. */}}
{{- define "agent-backend.networkPolicy.ingressFrom" -}}
{{- $from := .Values.networkPolicy.ingress.from | default list -}}
{{- if and $from .Values.helmTest.enabled -}}
{{- $from = append $from (dict "podSelector" (dict "matchLabels" (include "agent-backend.helmTest.selector" . | fromYaml))) -}}
{{- end -}}
{{- toYaml $from -}}
{{- end -}}
