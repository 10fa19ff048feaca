{{/* Rendering user values as templates. */}}

{{/* agent-backend.tpl.passes: takes nothing; returns how many times tpl runs at most on one value (a value may refer to others that are templates themselves, like global.agentBackendDomain). */}}
{{- define "agent-backend.tpl.passes" -}}5{{- end -}}

{{/* agent-backend.tpl.render: takes dict "value" (any) "context" (root, or a dict like it); returns the value rendered with tpl until no "{{" remains, at most agent-backend.tpl.passes times (a string as is, anything else as YAML first). What still holds "{{" after that is refused by agent-backend.validate.templates. */}}
{{- define "agent-backend.tpl.render" -}}
{{- $out := ternary .value (toYaml .value) (kindIs "string" .value) -}}
{{- $context := .context -}}
{{- range until (include "agent-backend.tpl.passes" . | atoi) -}}
{{- if contains "{{" $out -}}{{- $out = tpl $out $context -}}{{- end -}}
{{- end -}}
{{- $out -}}
{{- end -}}

{{/* agent-backend.tpl.map: takes dict "value" (map or nil) "context" (root); returns the map with every value rendered with tpl, as YAML ("{}" when empty). */}}
{{- define "agent-backend.tpl.map" -}}
{{- if .value -}}
{{- include "agent-backend.tpl.render" . | fromYaml | toYaml -}}
{{- else -}}
{{- dict | toYaml -}}
{{- end -}}
{{- end -}}

{{/* agent-backend.tpl.withChart: takes dict "value" (string) "context" (root); returns the string rendered with tpl (as agent-backend.tpl.render does) where both `.chart` and `.Chart` are Chart.yaml (image tags use `{{ .chart.AppVersion }}`). */}}
{{- define "agent-backend.tpl.withChart" -}}
{{- $ctx := dict "chart" .context.Chart "Chart" .context.Chart "Values" .context.Values "Release" .context.Release "Capabilities" .context.Capabilities "Template" .context.Template "Files" .context.Files -}}
{{- include "agent-backend.tpl.render" (dict "value" (toString .value) "context" $ctx) -}}
{{- end -}}

{{/* agent-backend.tpl.typed: takes dict "value" (a values section that is a Kubernetes object, or a list of them) "type" (its type in agent-backend.k8s.types, "[]Type" for a list) "context" (root); returns it rendered with agent-backend.tpl.render, as YAML, where each string in a field the Kubernetes schema types integer or boolean has that type (see agent-backend.tpl.typeField). */}}
{{- define "agent-backend.tpl.typed" -}}
{{- $rendered := include "agent-backend.tpl.render" (dict "value" .value "context" .context) -}}
{{- $holder := dict "v" (ternary ($rendered | fromYamlArray) ($rendered | fromYaml) (hasPrefix "[]" .type)) -}}
{{- include "agent-backend.tpl.typeField" (dict "holder" $holder "key" "v" "kind" .type "types" (include "agent-backend.k8s.types" . | fromJson)) -}}
{{- toYaml $holder.v -}}
{{- end -}}

{{/* agent-backend.tpl.typeField: takes dict "holder" (a map, changed in place) "key" "kind" (int, bool, intstr, a type, []kind or {}kind, as in agent-backend.k8s.types) "types" (agent-backend.k8s.types, parsed); returns nothing: sets holder[key] to its typed self: an integer for a string of digits where the kind is int or intstr, a boolean for "true" / "false" where it is bool, recursively through types, lists and maps. */}}
{{- define "agent-backend.tpl.typeField" -}}
{{- $value := get .holder .key -}}
{{- $types := .types -}}
{{- if and (kindIs "string" $value) (has .kind (list "int" "intstr")) (regexMatch "^-?[0-9]+$" (trim $value)) -}}
{{- $_ := set .holder .key (trim $value | atoi) -}}
{{- else if and (kindIs "string" $value) (eq .kind "bool") (has (lower (trim $value)) (list "true" "false")) -}}
{{- $_ := set .holder .key (eq (lower (trim $value)) "true") -}}
{{- else if and (hasPrefix "[]" .kind) (kindIs "slice" $value) -}}
{{- $kind := trimPrefix "[]" .kind -}}
{{- $items := list -}}
{{- range $value -}}
{{- $item := dict "v" . -}}
{{- include "agent-backend.tpl.typeField" (dict "holder" $item "key" "v" "kind" $kind "types" $types) -}}
{{- $items = append $items $item.v -}}
{{- end -}}
{{- $_ := set .holder .key $items -}}
{{- else if and (hasPrefix "{}" .kind) (kindIs "map" $value) -}}
{{- range $k, $_ := $value -}}
{{- include "agent-backend.tpl.typeField" (dict "holder" $value "key" $k "kind" (trimPrefix "{}" $.kind) "types" $types) -}}
{{- end -}}
{{- else if kindIs "map" $value -}}
{{- $fields := get $types .kind | default dict -}}
{{- range $k, $_ := $value -}}
{{- with get $fields $k -}}
{{- include "agent-backend.tpl.typeField" (dict "holder" $value "key" $k "kind" . "types" $types) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
