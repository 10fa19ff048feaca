{{/*
The wait-for-MySQL init container. Its script reads AGENT_BACKEND_DB_HOST/PORT/NAME/USER/PASSWORD from
the environment, writes the password into a private client option file under $TMPDIR (default /tmp;
MYSQL_PWD is deprecated since MySQL 8.0) and runs `SELECT 1` on the database with the user until it
succeeds, logging each attempt. It stops with exit 1 when the server rejects the credentials (retrying
cannot help), and exits 0 when the server accepts them but the database does not exist yet (the
migration creates it). Works with the MySQL 8/9 and MariaDB `mysql` clients.
*/}}

{{/* agent-backend.waitForMySQL.enabled: takes the root context; returns "true" when the wait-for-MySQL init container runs, "" otherwise. */}}
{{- define "agent-backend.waitForMySQL.enabled" -}}
{{- if and .Values.initContainerDependencies.enabled .Values.initContainerDependencies.waitForMySQL.enabled -}}true{{- end -}}
{{- end -}}

{{/* agent-backend.waitForMySQL.script: takes nothing; returns the bash script of the wait-for-MySQL init container (see the file header). */}}
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
    *"ERROR 1049"*)
      log "attempt $attempt: $target accepted the credentials; database $AGENT_BACKEND_DB_NAME does not exist yet, the db-migration init container creates it (the user needs CREATE on it)"
      exit 0 ;;
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
