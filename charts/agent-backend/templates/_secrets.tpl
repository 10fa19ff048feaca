{{/* Sensitive values: the chart Secret, references to existing Secrets, registry credentials. */}}

{{/* agent-backend.secrets.credentials: takes the root context; returns, as a YAML list, one entry per credential of the env contract: env (the env var and chart Secret key), value (plain text), existingName / existingKey (the user's Secret and its key), valuePath / namePath / keyPath (the values paths of those three, for messages). */}}
{{- define "agent-backend.secrets.credentials" -}}
- env: AGENT_BACKEND_DB_PASSWORD
  valuePath: database.password
  namePath: database.existingSecretName
  keyPath: database.existingSecretKey
  value: {{ .Values.database.password | default "" | toJson }}
  existingName: {{ .Values.database.existingSecretName | default "" | toJson }}
  existingKey: {{ .Values.database.existingSecretKey | default "" | toJson }}
- env: ANTHROPIC_API_KEY
  valuePath: anthropicApiKey
  namePath: anthropicApiKeyExistingSecretName
  keyPath: anthropicApiKeyExistingSecretKey
  value: {{ .Values.anthropicApiKey | default "" | toJson }}
  existingName: {{ .Values.anthropicApiKeyExistingSecretName | default "" | toJson }}
  existingKey: {{ .Values.anthropicApiKeyExistingSecretKey | default "" | toJson }}
- env: LANGCHAIN_API_KEY
  valuePath: langchainApiKey
  namePath: langchainApiKeyExistingSecretName
  keyPath: langchainApiKeyExistingSecretKey
  value: {{ .Values.langchainApiKey | default "" | toJson }}
  existingName: {{ .Values.langchainApiKeyExistingSecretName | default "" | toJson }}
  existingKey: {{ .Values.langchainApiKeyExistingSecretKey | default "" | toJson }}
{{- end -}}

{{/* agent-backend.secrets.envVar: takes dict "credential" (an entry of agent-backend.secrets.credentials) "context" (root); returns one env entry (a YAML list item) reading the credential by secretKeyRef from the user's existing Secret when one is named, else from the chart Secret under the env var's name. */}}
{{- define "agent-backend.secrets.envVar" -}}
- name: {{ .credential.env }}
  valueFrom:
    secretKeyRef:
      {{- if .credential.existingName }}
      name: {{ .credential.existingName | quote }}
      key: {{ .credential.existingKey | quote }}
      {{- else }}
      name: {{ include "agent-backend.names.secret" .context | quote }}
      key: {{ .credential.env | quote }}
      {{- end }}
{{- end -}}

{{/* agent-backend.secrets.envVars: takes dict "context" (root) and optional "only" (list of env var names); returns the env entries (YAML list) of those credentials, all of them when "only" is not given. */}}
{{- define "agent-backend.secrets.envVars" -}}
{{- $ctx := .context -}}
{{- $only := .only -}}
{{- range (include "agent-backend.secrets.credentials" $ctx | fromYamlArray) }}
{{- if or (not $only) (has .env $only) }}
{{ include "agent-backend.secrets.envVar" (dict "credential" . "context" $ctx) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* agent-backend.secrets.data: takes the root context; returns the chart Secret's data (YAML map, base64 values): each credential given as plain text, under its env var name; credentials read from an existing Secret are left out. "{}" when there are none. */}}
{{- define "agent-backend.secrets.data" -}}
{{- $data := dict -}}
{{- range (include "agent-backend.secrets.credentials" . | fromYamlArray) -}}
{{- if and .value (not .existingName) -}}
{{- $_ := set $data .env (.value | b64enc) -}}
{{- end -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/* agent-backend.secrets.dockerConfigJson: takes the root context; returns the base64 of the .dockerconfigjson built from global.imageCredentials with real JSON encoding (toJson of a dict). */}}
{{- define "agent-backend.secrets.dockerConfigJson" -}}
{{- $auths := dict -}}
{{- range .Values.global.imageCredentials -}}
{{- $entry := dict "username" (toString .username) "password" (toString .password) "auth" (printf "%s:%s" .username .password | b64enc) -}}
{{- if .email -}}
{{- $_ := set $entry "email" (toString .email) -}}
{{- end -}}
{{- $_ := set $auths (toString .registry) $entry -}}
{{- end -}}
{{- dict "auths" $auths | toJson | b64enc -}}
{{- end -}}
