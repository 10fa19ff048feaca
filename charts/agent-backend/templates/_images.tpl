{{/* Image references and pull secrets. */}}

{{/* agent-backend.images.image: takes dict "image" (an .image values section) "context" (root); returns "[registry/]repository:tag", with "@digest" appended when a digest is set (the runtime pulls by digest; the tag stays for people reading it). global.imageRegistry, when set, replaces the section's registry; the tag is rendered with tpl and defaults to the appVersion. */}}
{{- define "agent-backend.images.image" -}}
{{- $registry := .context.Values.global.imageRegistry | default .image.registry | default "" | trimSuffix "/" -}}
{{- $repository := .image.repository -}}
{{- $name := ternary (printf "%s/%s" $registry $repository) $repository (ne $registry "") -}}
{{- $tag := include "agent-backend.tpl.withChart" (dict "value" (include "agent-backend.images.tagText" .image.tag) "context" .context) | default (toString .context.Chart.AppVersion) -}}
{{- printf "%s:%s" $name $tag -}}
{{- with .image.digest -}}@{{ . }}{{- end -}}
{{- end -}}

{{/* agent-backend.images.tagText: takes an image tag (a string, a number or nil); returns it as text: a whole number as its digits (20261130, never 2.026113e+07), another number in its shortest form (8.4), nil as "". */}}
{{- define "agent-backend.images.tagText" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- printf "%.0f" . -}}
{{- else if not (kindIs "invalid" .) -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* agent-backend.images.secretNames: takes a list of pull secrets (names or {name: ...} maps); returns the names as a YAML list. */}}
{{- define "agent-backend.images.secretNames" -}}
{{- $names := list -}}
{{- range . -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names (toString .) -}}
{{- end -}}
{{- end -}}
{{- toYaml $names -}}
{{- end -}}

{{/* agent-backend.images.pullSecrets: takes the root context; returns the pod's imagePullSecrets as a YAML list of {name: ...}: the de-duplicated union, in this order, of the chart's global.imageCredentials Secret, global.imageCredentialsSecrets, image.pullSecrets, the wait-for-MySQL image's pullSecrets (when that container runs) and serviceAccount.imagePullSecretNames. "[]" when there are none. */}}
{{- define "agent-backend.images.pullSecrets" -}}
{{- $names := list -}}
{{- if .Values.global.imageCredentials -}}
{{- $names = append $names (include "agent-backend.names.pullSecret" .) -}}
{{- end -}}
{{- $names = concat $names (include "agent-backend.images.secretNames" (.Values.global.imageCredentialsSecrets | default list) | fromYamlArray) -}}
{{- $names = concat $names (include "agent-backend.images.secretNames" (.Values.image.pullSecrets | default list) | fromYamlArray) -}}
{{- if include "agent-backend.waitForMySQL.enabled" . -}}
{{- $names = concat $names (include "agent-backend.images.secretNames" (.Values.initContainerDependencies.waitForMySQL.image.pullSecrets | default list) | fromYamlArray) -}}
{{- end -}}
{{- $names = concat $names (include "agent-backend.images.secretNames" (.Values.serviceAccount.imagePullSecretNames | default list) | fromYamlArray) -}}
{{- $out := list -}}
{{- range ($names | uniq) -}}
{{- $out = append $out (dict "name" .) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
