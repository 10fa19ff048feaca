{{/* Non-secret settings: the ConfigMap half of the env contract. */}}

{{/* agent-backend.config.domain: takes dict "value" (a domain value, may be a template) "context" (root); returns the rendered, trimmed domain. */}}
{{- define "agent-backend.config.domain" -}}
{{- include "agent-backend.tpl.render" (dict "value" (toString (.value | default "")) "context" .context) | trim -}}
{{- end -}}

{{/* agent-backend.config.data: takes the root context; returns the ConfigMap data (YAML map of strings) the service reads as environment variables. */}}
{{- define "agent-backend.config.data" -}}
{{- $platform := include "agent-backend.config.domain" (dict "value" .Values.global.platformExternalDomain "context" .) -}}
{{- $mcp := include "agent-backend.config.domain" (dict "value" .Values.global.mcpDomain "context" .) -}}
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
SEQERA_MCP_URL: {{ printf "https://%s/mcp" $mcp | quote }}
AGENT_BACKEND_PUBLIC_URL: {{ printf "https://%s" $public | quote }}
{{- end -}}
