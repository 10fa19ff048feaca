{{/* Non-secret settings: the ConfigMap half of the env contract. */}}

{{/* agent-backend.config.domain: takes dict "value" (a domain value, may be a template) "context" (root); returns the rendered, trimmed domain. */}}
{{- define "agent-backend.config.domain" -}}
{{- include "agent-backend.tpl.render" (dict "value" (toString (.value | default "")) "context" .context) | trim -}}
{{- end -}}

{{/* agent-backend.config.mcpUrl: takes the root context; returns SEQERA_MCP_URL (https://<global.mcpDomain>/mcp), or "" when global.mcpDomain renders empty (Seqera MCP off). */}}
{{- define "agent-backend.config.mcpUrl" -}}
{{- $mcp := include "agent-backend.config.domain" (dict "value" .Values.global.mcpDomain "context" .) -}}
{{- if $mcp -}}{{- printf "https://%s/mcp" $mcp -}}{{- end -}}
{{- end -}}

{{/* agent-backend.config.data: takes the root context; returns the ConfigMap data (YAML map of strings) the service reads as environment variables; SEQERA_MCP_URL only while Seqera MCP is on. */}}
{{- define "agent-backend.config.data" -}}
{{- $platform := include "agent-backend.config.domain" (dict "value" .Values.global.platformExternalDomain "context" .) -}}
{{- $mcpUrl := include "agent-backend.config.mcpUrl" . -}}
{{- $public := include "agent-backend.config.domain" (dict "value" .Values.global.agentBackendDomain "context" .) -}}
AGENT_BACKEND_PORT: {{ .Values.service.http.targetPort | int | toString | quote }}
AGENT_BACKEND_DB_HOST: {{ .Values.database.host | quote }}
AGENT_BACKEND_DB_PORT: {{ .Values.database.port | int | toString | quote }}
AGENT_BACKEND_DB_NAME: {{ .Values.database.name | quote }}
AGENT_BACKEND_DB_USER: {{ .Values.database.username | quote }}
ANTHROPIC_MODEL: {{ .Values.anthropicModel | quote }}
ENVIRONMENT: {{ .Values.environment | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
SEQERA_PLATFORM_URL: {{ printf "https://%s" $platform | quote }}
SEQERA_PLATFORM_API_URL: {{ printf "https://%s/api" $platform | quote }}
{{- if $mcpUrl }}
SEQERA_MCP_URL: {{ $mcpUrl | quote }}
{{- end }}
AGENT_BACKEND_PUBLIC_URL: {{ printf "https://%s" $public | quote }}
{{- end -}}
