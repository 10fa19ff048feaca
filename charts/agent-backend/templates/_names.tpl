{{/* Names of the chart's objects. */}}

{{/* agent-backend.names.name: takes the root context; returns the chart name (nameOverride wins), max 63 chars. */}}
{{- define "agent-backend.names.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* agent-backend.names.fullname: takes the root context; returns <release>-<name> (or fullnameOverride, or the release name when it already contains the chart name), max 63 chars. */}}
{{- define "agent-backend.names.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "agent-backend.names.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* agent-backend.names.chart: takes the root context; returns "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "agent-backend.names.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* agent-backend.names.serviceAccount: takes the root context; returns the ServiceAccount name (serviceAccount.name or the full name). */}}
{{- define "agent-backend.names.serviceAccount" -}}
{{- default (include "agent-backend.names.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* agent-backend.names.serviceAccountCreated: takes the root context; returns "true" when the chart renders the pod's ServiceAccount (serviceAccount.name empty, or serviceAccount.create), "" when serviceAccount.name names an existing one. */}}
{{- define "agent-backend.names.serviceAccountCreated" -}}
{{- if or (not .Values.serviceAccount.name) .Values.serviceAccount.create -}}true{{- end -}}
{{- end -}}

{{/* agent-backend.names.configMap: takes the root context; returns the name of the chart's ConfigMap. */}}
{{- define "agent-backend.names.configMap" -}}
{{- include "agent-backend.names.fullname" . -}}
{{- end -}}

{{/* agent-backend.names.secret: takes the root context; returns the name of the chart's Secret (plain-text credentials). */}}
{{- define "agent-backend.names.secret" -}}
{{- include "agent-backend.names.fullname" . -}}
{{- end -}}

{{/* agent-backend.names.pullSecret: takes the root context; returns the name of the dockerconfigjson Secret built from global.imageCredentials. */}}
{{- define "agent-backend.names.pullSecret" -}}
{{- printf "%s-registry" (include "agent-backend.names.fullname" .) -}}
{{- end -}}
