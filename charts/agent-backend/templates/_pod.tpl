{{/* Pieces of the Deployment's pod. */}}

{{/* agent-backend.pod.securityContext: takes a securityContext values section (may carry "enabled"); returns it as YAML without the "enabled" switch. */}}
{{- define "agent-backend.pod.securityContext" -}}
{{- omit (deepCopy .) "enabled" | toYaml -}}
{{- end -}}

{{/* agent-backend.pod.probe: takes dict "probe" (a probe values section) "context" (root); returns the Kubernetes probe as YAML: "enabled" dropped, httpGet.port rendered with tpl (a number when it is all digits, else a port name). */}}
{{- define "agent-backend.pod.probe" -}}
{{- $probe := omit (deepCopy .probe) "enabled" -}}
{{- $httpGet := $probe.httpGet | default dict -}}
{{- $port := include "agent-backend.tpl.render" (dict "value" (toString $httpGet.port) "context" .context) | trim -}}
{{- if regexMatch "^[0-9]+$" $port -}}
{{- $_ := set $httpGet "port" (atoi $port) -}}
{{- else -}}
{{- $_ := set $httpGet "port" $port -}}
{{- end -}}
{{- $_ := set $probe "httpGet" $httpGet -}}
{{- toYaml $probe -}}
{{- end -}}

{{/* agent-backend.pod.probePort: takes dict "probe" "context"; returns the probe's rendered port (for validation). */}}
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
{{- $spec = mergeOverwrite $spec (include "agent-backend.tpl.render" (dict "value" . "context" $) | fromYaml) -}}
{{- end -}}
{{- toYaml $spec -}}
{{- end -}}

{{/* agent-backend.waitForMySQL.enabled: takes the root context; returns "true" when the wait-for-MySQL init container runs, "" otherwise. */}}
{{- define "agent-backend.waitForMySQL.enabled" -}}
{{- if and .Values.initContainerDependencies.enabled .Values.initContainerDependencies.waitForMySQL.enabled -}}true{{- end -}}
{{- end -}}

{{/*
agent-backend.waitForMySQL.script: takes nothing; returns the bash script of the wait-for-MySQL init container.
It reads AGENT_BACKEND_DB_HOST/PORT/NAME/USER/PASSWORD from the environment, writes the password into a
private client option file under $TMPDIR (default /tmp; MYSQL_PWD is deprecated since MySQL 8.0) and
runs `SELECT 1` on the database with the user until it succeeds, logging each attempt. It stops with
exit 1 when the server rejects the credentials (retrying cannot help). Works with the MySQL 8/9 and
MariaDB `mysql` clients.
*/}}
{{- define "agent-backend.waitForMySQL.script" -}}
set -u
log() { printf 'wait-for-mysql: %s\n' "$*"; }
for var in AGENT_BACKEND_DB_HOST AGENT_BACKEND_DB_PORT AGENT_BACKEND_DB_NAME AGENT_BACKEND_DB_USER AGENT_BACKEND_DB_PASSWORD; do
  if [ -z "${!var:-}" ]; then log "environment variable $var is not set" >&2; exit 2; fi
done
umask 077
options=$(mktemp "${TMPDIR:-/tmp}/wait-for-mysql.XXXXXX" 2>/dev/null) || { options="${TMPDIR:-/tmp}/wait-for-mysql.$$"; (set -C; : > "$options") || { log "cannot create a file in ${TMPDIR:-/tmp}" >&2; exit 2; }; }
trap 'rm -f "$options"' EXIT
pw=$AGENT_BACKEND_DB_PASSWORD
pw=${pw//\\/\\\\}
pw=${pw//\"/\\\"}
pw=${pw//$'\n'/\\n}
printf '[client]\npassword="%s"\n' "$pw" > "$options"
unset pw
target="$AGENT_BACKEND_DB_USER@$AGENT_BACKEND_DB_HOST:$AGENT_BACKEND_DB_PORT/$AGENT_BACKEND_DB_NAME"
limit=""
if command -v timeout >/dev/null 2>&1; then limit="timeout 30"; fi
attempt=0
while :; do
  attempt=$((attempt + 1))
  if out=$($limit mysql --defaults-extra-file="$options" --protocol=TCP --connect-timeout=5 \
      --host="$AGENT_BACKEND_DB_HOST" --port="$AGENT_BACKEND_DB_PORT" --user="$AGENT_BACKEND_DB_USER" \
      --batch --skip-column-names --execute='SELECT 1' "$AGENT_BACKEND_DB_NAME" 2>&1); then
    log "attempt $attempt: $target answered SELECT 1, MySQL is ready"
    exit 0
  fi
  case "$out" in
    *"ERROR 1045"*|*"ERROR 1044"*|*"ERROR 1698"*)
      log "attempt $attempt: $target rejected the credentials: $out" >&2
      log "check database.username and the password (database.password, or database.existingSecretName/existingSecretKey)" >&2
      exit 1 ;;
  esac
  reason=""
  while IFS= read -r line; do [ -n "$line" ] && reason=$line; done <<< "$out"
  log "attempt $attempt: $target not ready: ${reason:-no answer within 30s}; retrying in 2s"
  sleep 2
done
{{- end -}}

{{/* agent-backend.pod.tmpMount: takes nothing; returns the volumeMount of the writable /tmp emptyDir (YAML list item). */}}
{{- define "agent-backend.pod.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}
