{{/* Pieces of the `helm test` hook (helm-test.yaml). */}}

{{/* agent-backend.helmTest.selector: takes the root context; returns the labels that tell the test pod apart (app.kubernetes.io/name "<name>-test", so neither the Service nor the Deployment selects it, and the release's instance) as YAML. */}}
{{- define "agent-backend.helmTest.selector" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "agent-backend.names.name" .) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{/* agent-backend.helmTest.labels: takes the root context; returns the test pod's labels (the standard ones, with agent-backend.helmTest.selector's and app.kubernetes.io/component "test" winning) as YAML. */}}
{{- define "agent-backend.helmTest.labels" -}}
{{- $labels := merge (include "agent-backend.helmTest.selector" . | fromYaml) (include "agent-backend.labels.standard" . | fromYaml) -}}
{{- $_ := set $labels "app.kubernetes.io/component" "test" -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* agent-backend.helmTest.url: takes the root context; returns the Service's in-cluster URL, http://<fullname>.<namespace>.svc:<service.http.port>. */}}
{{- define "agent-backend.helmTest.url" -}}
{{- printf "http://%s.%s.svc:%d" (include "agent-backend.names.fullname" .) .Release.Namespace (.Values.service.http.port | int) -}}
{{- end -}}

{{/* agent-backend.helmTest.script: takes nothing; returns the Python program of the test container: GET $AGENT_BACKEND_URL/health, then /health?ready=1, each retried every 2 s until it answers 200; exits 1 naming the route, its last status and body once $AGENT_BACKEND_TEST_TIMEOUT seconds have passed. Standard library only. */}}
{{- define "agent-backend.helmTest.script" -}}
import os, sys, time, urllib.error, urllib.request
base = os.environ["AGENT_BACKEND_URL"].rstrip("/")
deadline = time.monotonic() + float(os.environ.get("AGENT_BACKEND_TEST_TIMEOUT", "60"))
for path in ("/health", "/health?ready=1"):
    while True:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                status, body = resp.status, resp.read(500).decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read(500).decode(errors="replace")
        except OSError as e:
            status, body = "no answer", str(e)
        if status == 200:
            print(f"helm test: GET {base}{path}: 200 {body}", flush=True)
            break
        if time.monotonic() >= deadline:
            print(f"helm test: GET {base}{path}: {status} {body}", file=sys.stderr, flush=True)
            sys.exit(1)
        time.sleep(2)
{{- end -}}
