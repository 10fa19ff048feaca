{{/* Requirement checks: every message names the values key to fix. One helper per area, named after the values keys it guards; agent-backend.validate.messages runs them in order. */}}

{{/* agent-backend.validate.messages: takes the root context; returns every requirement failure, one "agent-backend: ..." message per line ("" when the values are usable). */}}
{{- define "agent-backend.validate.messages" -}}
{{- list
  (include "agent-backend.validate.templates" .)
  (include "agent-backend.validate.names" .)
  (include "agent-backend.validate.database" .)
  (include "agent-backend.validate.credentials" .)
  (include "agent-backend.validate.images" .)
  (include "agent-backend.validate.imageCredentials" .)
  (include "agent-backend.validate.domains" .)
  (include "agent-backend.validate.service" .)
  (include "agent-backend.validate.extraOptions" .)
  (include "agent-backend.validate.extraVolumes" .)
  (include "agent-backend.validate.initContainers" .)
  (include "agent-backend.validate.extraEnvVars" .)
  (include "agent-backend.validate.dbMigrationInitContainer" .)
  (include "agent-backend.validate.probes" .)
  (include "agent-backend.validate.ingress" .)
  (include "agent-backend.validate.podDisruptionBudget" .)
  (include "agent-backend.validate.autoscaling" .)
  (include "agent-backend.validate.networkPolicy" .)
  (include "agent-backend.validate.extraDeploy" .)
  | compact | join "\n" -}}
{{- end -}}

{{/* agent-backend.validate.names: takes the root context; returns the failure of the full name every object is named after (a DNS label, as the Service's name must be; the schema holds nameOverride and fullnameOverride to that, so only a release name can break it), "" when there is none. */}}
{{- define "agent-backend.validate.names" -}}
{{- $fullname := include "agent-backend.names.fullname" . -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) -}}
{{- printf "agent-backend: the release name %q would name the objects %q, which is not a DNS label as a Service name must be (lower-case letters, digits and '-', starting with a letter); choose such a release name, or set fullnameOverride" .Release.Name $fullname -}}
{{- end -}}
{{- end -}}

{{/* agent-backend.validate.database: takes the root context; returns the failures of database.host (set, a bare host name or IP address), database.name and database.username (set), one message per line. */}}
{{- define "agent-backend.validate.database" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- range $key := list "host" "name" "username" -}}
{{- if not (get $v.database $key) -}}
{{- $errors = append $errors (printf "agent-backend: set database.%s (the MySQL %s the service connects to)" $key (get (dict "host" "host name" "name" "database name" "username" "user name") $key)) -}}
{{- end -}}
{{- end -}}
{{- /* A host name (a trailing dot allowed), an IPv4 address, or an IPv6 address (two or more colons, no brackets). */ -}}
{{- $hostPattern := "^([A-Za-z0-9_]([-A-Za-z0-9_.]*[A-Za-z0-9_])?\\.?|[0-9A-Fa-f.]*(:[0-9A-Fa-f.]*){2,})$" -}}
{{- if and $v.database.host (not (regexMatch $hostPattern (toString $v.database.host))) -}}
{{- $errors = append $errors (printf "agent-backend: database.host must be a bare host name or IP address, without scheme, port or path (got %q); set the port in database.port" (toString $v.database.host)) -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.credentials: takes the root context; returns the failures of each credential of agent-backend.secrets.credentials (database.password, anthropicApiKey, langchainApiKey and their existing Secret's name and key: exactly one of the plain value and the existing Secret, and a key with the Secret), one message per line. */}}
{{- define "agent-backend.validate.credentials" -}}
{{- $errors := list -}}
{{- range (include "agent-backend.secrets.credentials" . | fromYamlArray) -}}
{{- if and .value .existingName -}}
{{- $errors = append $errors (printf "agent-backend: set only one of %s and %s, not both" .valuePath .namePath) -}}
{{- else if and (not .value) (not .existingName) -}}
{{- $errors = append $errors (printf "agent-backend: set %s or %s (the %s)" .valuePath .namePath .env) -}}
{{- else if and .existingName (not .existingKey) -}}
{{- $errors = append $errors (printf "agent-backend: set the key of %s (%s)" .namePath .keyPath) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.images: takes the root context; returns the failures of image and initContainerDependencies.waitForMySQL.image (a repository without tag or digest, a well-formed digest), one message per line. */}}
{{- define "agent-backend.validate.images" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- if not $v.image.repository -}}
{{- $errors = append $errors "agent-backend: set image.repository" -}}
{{- end -}}
{{- if not $v.initContainerDependencies.waitForMySQL.image.repository -}}
{{- $errors = append $errors "agent-backend: set initContainerDependencies.waitForMySQL.image.repository" -}}
{{- end -}}
{{- range $section, $image := dict "image" $v.image "initContainerDependencies.waitForMySQL.image" $v.initContainerDependencies.waitForMySQL.image -}}
{{- $repository := toString ($image.repository | default "") -}}
{{- if contains "@" $repository -}}
{{- $errors = append $errors (printf "agent-backend: %s.repository %q carries a digest; set the repository alone and the digest in %s.digest" $section $repository $section) -}}
{{- else if contains ":" (last (splitList "/" $repository)) -}}
{{- $errors = append $errors (printf "agent-backend: %s.repository %q carries a tag; set the repository alone and the tag in %s.tag" $section $repository $section) -}}
{{- end -}}
{{- end -}}
{{- range $path, $digest := dict "image.digest" $v.image.digest "initContainerDependencies.waitForMySQL.image.digest" $v.initContainerDependencies.waitForMySQL.image.digest -}}
{{- if and $digest (not (regexMatch "^sha256:[a-f0-9]{64}$" (toString $digest))) -}}
{{- $errors = append $errors (printf "agent-backend: %s must look like sha256:<64 lowercase hex digits>" $path) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.imageCredentials: takes the root context; returns the failures of global.imageCredentials (registry, username and password on each entry, each registry once), one message per line. */}}
{{- define "agent-backend.validate.imageCredentials" -}}
{{- $errors := list -}}
{{- $registries := list -}}
{{- range $i, $cred := (.Values.global.imageCredentials | default list) -}}
{{- $missing := list -}}
{{- range $field := list "registry" "username" "password" -}}
{{- if not (get $cred $field) -}}{{- $missing = append $missing $field -}}{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- $errors = append $errors (printf "agent-backend: global.imageCredentials[%d] needs registry, username and password (missing: %s)" $i (join ", " $missing)) -}}
{{- else if has (toString $cred.registry) $registries -}}
{{- $errors = append $errors (printf "agent-backend: global.imageCredentials[%d].registry %s is listed twice" $i (toString $cred.registry)) -}}
{{- end -}}
{{- $registries = append $registries (toString $cred.registry) -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.domains: takes the root context; returns the failures of global.platformExternalDomain, global.agentBackendDomain and global.mcpDomain (bare host names, the chart adds https://; only global.mcpDomain may render empty, which turns Seqera MCP off), one message per line. */}}
{{- define "agent-backend.validate.domains" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- range $path, $raw := dict "global.platformExternalDomain" $v.global.platformExternalDomain "global.agentBackendDomain" $v.global.agentBackendDomain "global.mcpDomain" $v.global.mcpDomain -}}
{{- $domain := include "agent-backend.config.domain" (dict "value" $raw "context" $) -}}
{{- if not $domain -}}
{{- if ne $path "global.mcpDomain" -}}
{{- $errors = append $errors (printf "agent-backend: set %s (it renders empty)" $path) -}}
{{- end -}}
{{- else if not (regexMatch "^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]+)?$" $domain) -}}
{{- $errors = append $errors (printf "agent-backend: %s must be a bare host name without scheme or path (got %q)" $path $domain) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.service: takes the root context; returns the failures of service.http, service.extraServices and service.extraOptions, one message per line. */}}
{{- define "agent-backend.validate.service" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- $nodePortTypes := list "NodePort" "LoadBalancer" -}}
{{- if and (not (kindIs "invalid" $v.service.http.nodePort)) (not (has $v.service.type $nodePortTypes)) -}}
{{- $errors = append $errors (printf "agent-backend: service.http.nodePort is only allowed when service.type is NodePort or LoadBalancer (service.type is %s)" $v.service.type) -}}
{{- end -}}
{{- if not (regexMatch "^[0-9]+$" (toString $v.service.http.targetPort)) -}}
{{- $errors = append $errors "agent-backend: service.http.targetPort must be a port number (it is the app container's port and AGENT_BACKEND_PORT)" -}}
{{- end -}}
{{- /* Each Service port's name, port/protocol and nodePort/protocol are used once, service.http's included. */ -}}
{{- $http := $v.service.http -}}
{{- $used := dict "name" (list (toString $http.name)) "port" (list (printf "%v/TCP" $http.port)) "nodePort" list -}}
{{- if not (kindIs "invalid" $http.nodePort) -}}{{- $_ := set $used "nodePort" (list (printf "%v/TCP" $http.nodePort)) -}}{{- end -}}
{{- range $i, $extra := ($v.service.extraServices | default list) -}}
{{- if and (not (kindIs "invalid" $extra.nodePort)) (not (has $v.service.type $nodePortTypes)) -}}
{{- $errors = append $errors (printf "agent-backend: service.extraServices[%d].nodePort is only allowed when service.type is NodePort or LoadBalancer" $i) -}}
{{- end -}}
{{- range $field := list "name" "port" "nodePort" -}}
{{- $value := index $extra $field -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $key := ternary (toString $value) (printf "%v/%s" $value ($extra.protocol | default "TCP")) (eq $field "name") -}}
{{- if has $key (get $used $field) -}}
{{- $errors = append $errors (printf "agent-backend: service.extraServices[%d].%s %s is already used by another Service port" $i $field $key) -}}
{{- end -}}
{{- $_ := set $used $field (append (get $used $field) $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $key := list "type" "ports" "selector" -}}
{{- if hasKey ($v.service.extraOptions | default dict) $key -}}
{{- $errors = append $errors (printf "agent-backend: service.extraOptions.%s is set by the chart; use service.type / service.http / service.extraServices instead" $key) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.extraOptions: takes the root context; returns the failures of extraOptionsSpec and extraOptionsTemplateSpec (Deployment and pod fields the chart owns), one message per line. */}}
{{- define "agent-backend.validate.extraOptions" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- range $key := list "selector" "template" -}}
{{- if hasKey ($v.extraOptionsSpec | default dict) $key -}}
{{- $errors = append $errors (printf "agent-backend: extraOptionsSpec.%s is owned by the chart and cannot be overridden" $key) -}}
{{- end -}}
{{- end -}}
{{- $owned := dict "containers" "command/args/extraEnvVars/extraVolumeMounts" "initContainers" "initContainers" "volumes" "extraVolumes" "imagePullSecrets" "image.pullSecrets or global.imageCredentialsSecrets" -}}
{{- range $key, $instead := $owned -}}
{{- if hasKey ($v.extraOptionsTemplateSpec | default dict) $key -}}
{{- $errors = append $errors (printf "agent-backend: extraOptionsTemplateSpec.%s is owned by the chart; use %s instead" $key $instead) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.extraVolumes: takes the root context; returns the failures of extraVolumes and extraVolumeMounts, rendered with tpl (tmp is the chart's volume, a mount names a volume of extraVolumes, each mount path once), one message per line. */}}
{{- define "agent-backend.validate.extraVolumes" -}}
{{- $errors := list -}}
{{- $extraVolumes := include "agent-backend.tpl.render" (dict "value" (.Values.extraVolumes | default list) "context" .) | fromYamlArray -}}
{{- $extraVolumeMounts := include "agent-backend.tpl.render" (dict "value" (.Values.extraVolumeMounts | default list) "context" .) | fromYamlArray -}}
{{- $volumes := list "tmp" -}}
{{- range $i, $vol := $extraVolumes -}}
{{- if eq (toString (get $vol "name")) "tmp" -}}
{{- $errors = append $errors (printf "agent-backend: extraVolumes[%d] is named tmp, which the chart uses for /tmp; rename it" $i) -}}
{{- end -}}
{{- $volumes = append $volumes (toString (get $vol "name")) -}}
{{- end -}}
{{- $mountPaths := dict "/tmp" "the chart's /tmp" -}}
{{- range $i, $mount := $extraVolumeMounts -}}
{{- if not (has (toString (get $mount "name")) $volumes) -}}
{{- $errors = append $errors (printf "agent-backend: extraVolumeMounts[%d] mounts volume %q, which is not in extraVolumes" $i (toString (get $mount "name"))) -}}
{{- end -}}
{{- $path := regexReplaceAll "/+" (toString (get $mount "mountPath")) "/" | trimSuffix "/" -}}
{{- if hasKey $mountPaths $path -}}
{{- $errors = append $errors (printf "agent-backend: extraVolumeMounts[%d].mountPath %s is already mounted (by %s)" $i $path (get $mountPaths $path)) -}}
{{- end -}}
{{- $_ := set $mountPaths $path (printf "extraVolumeMounts[%d]" $i) -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.initContainers: takes the root context; returns the failures of initContainers, rendered with tpl (each name once, none a name of the chart's containers), one message per line. */}}
{{- define "agent-backend.validate.initContainers" -}}
{{- $errors := list -}}
{{- $containerNames := list "db-migration" "agent-backend" -}}
{{- if include "agent-backend.waitForMySQL.enabled" . -}}{{- $containerNames = append $containerNames "wait-for-mysql" -}}{{- end -}}
{{- range $i, $c := (include "agent-backend.tpl.render" (dict "value" (.Values.initContainers | default list) "context" .) | fromYamlArray) -}}
{{- $name := toString (get $c "name") -}}
{{- if has $name $containerNames -}}
{{- $errors = append $errors (printf "agent-backend: initContainers[%d].name %q is already used by a container of the pod (the chart's: %s)" $i $name "db-migration, agent-backend and, while it is enabled, wait-for-mysql") -}}
{{- end -}}
{{- $containerNames = append $containerNames $name -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.extraEnvVars: takes the root context; returns the failures of extraEnvVars (none may set a credential's env var), one message per line. */}}
{{- define "agent-backend.validate.extraEnvVars" -}}
{{- $errors := list -}}
{{- $credentials := include "agent-backend.secrets.credentials" . | fromYamlArray -}}
{{- range $i, $var := (.Values.extraEnvVars | default list) -}}
{{- range $credentials -}}
{{- if eq (toString (get $var "name")) .env -}}
{{- $errors = append $errors (printf "agent-backend: extraEnvVars[%d] sets %s, which the chart sets from a Secret; use %s or %s instead" $i .env .valuePath .namePath) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.dbMigrationInitContainer: takes the root context; returns the failure of dbMigrationInitContainer.command (set), "" when there is none. */}}
{{- define "agent-backend.validate.dbMigrationInitContainer" -}}
{{- if not .Values.dbMigrationInitContainer.command -}}
agent-backend: set dbMigrationInitContainer.command (default ["./init.sh"])
{{- end -}}
{{- end -}}

{{/* agent-backend.validate.probes: takes the root context; returns the failures of startupProbe, readinessProbe and livenessProbe while enabled (httpGet.port a port number or http, successThreshold 1 where Kubernetes wants it), one message per line. */}}
{{- define "agent-backend.validate.probes" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- range $name := list "startupProbe" "readinessProbe" "livenessProbe" -}}
{{- $probe := get $v $name -}}
{{- if $probe.enabled -}}
{{- $port := include "agent-backend.pod.probePort" (dict "probe" $probe "context" $) -}}
{{- if not $port -}}
{{- $errors = append $errors (printf "agent-backend: %s.httpGet.port renders empty" $name) -}}
{{- else if regexMatch "^[0-9]+$" $port -}}
{{- if or (lt (atoi $port) 1) (gt (atoi $port) 65535) -}}
{{- $errors = append $errors (printf "agent-backend: %s.httpGet.port must be 1-65535 (renders %s)" $name $port) -}}
{{- end -}}
{{- else if ne $port "http" -}}
{{- $errors = append $errors (printf "agent-backend: %s.httpGet.port must be a port number or http, the app container's port name (renders %q)" $name $port) -}}
{{- end -}}
{{- if and (ne $name "readinessProbe") (ne (toString $probe.successThreshold) "1") -}}
{{- $errors = append $errors (printf "agent-backend: %s.successThreshold must be 1 (Kubernetes rejects anything else)" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.ingress: takes the root context; returns, while ingress.enabled, the failures of the Ingress hosts (global.agentBackendDomain and ingress.extraHosts[].host: a lower-case DNS name without port, not an IP; a leading "*." only on extra hosts), one message per line. */}}
{{- define "agent-backend.validate.ingress" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- if $v.ingress.enabled -}}
{{- $hostPattern := "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" -}}
{{- $domain := include "agent-backend.config.domain" (dict "value" $v.global.agentBackendDomain "context" $) -}}
{{- $ipPattern := "^[0-9.]+$" -}}
{{- if and $domain (or (not (regexMatch $hostPattern $domain)) (regexMatch $ipPattern $domain)) -}}
{{- $errors = append $errors (printf "agent-backend: global.agentBackendDomain is the Ingress host, so it must be a lower-case DNS name without port, not an IP address (got %q)" $domain) -}}
{{- end -}}
{{- range $i, $h := ($v.ingress.extraHosts | default list) -}}
{{- $host := include "agent-backend.config.domain" (dict "value" $h.host "context" $) -}}
{{- if not $host -}}
{{- $errors = append $errors (printf "agent-backend: ingress.extraHosts[%d].host renders empty" $i) -}}
{{- else if or (not (regexMatch $hostPattern (trimPrefix "*." $host))) (regexMatch $ipPattern $host) -}}
{{- $errors = append $errors (printf "agent-backend: ingress.extraHosts[%d].host must be a lower-case DNS name without scheme, port or path, not an IP address (got %q)" $i $host) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.podDisruptionBudget: takes the root context; returns, while podDisruptionBudget.enabled, its failures (minAvailable and maxUnavailable not both set; a budget that would block every voluntary eviction: maxUnavailable 0 or 0%, minAvailable 100%, or a number or rounded-up percentage of at least the fewest replicas), one message per line. */}}
{{- define "agent-backend.validate.podDisruptionBudget" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- $errors := list -}}
{{- if $pdb.enabled -}}
{{- $min := ternary "" (toString $pdb.minAvailable) (kindIs "invalid" $pdb.minAvailable) -}}
{{- $max := ternary "" (toString $pdb.maxUnavailable) (kindIs "invalid" $pdb.maxUnavailable) -}}
{{- $replicas := include "agent-backend.podDisruptionBudget.fewestReplicas" . -}}
{{- if and $min $max -}}
{{- $errors = append $errors "agent-backend: set only one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable, not both (null the other)" -}}
{{- else if has $max (list "0" "0%") -}}
{{- $errors = append $errors (printf "agent-backend: podDisruptionBudget.maxUnavailable %s would block every node drain; use at least 1" $max) -}}
{{- else if eq $min "100%" -}}
{{- $errors = append $errors "agent-backend: podDisruptionBudget.minAvailable 100% would block every node drain; use a lower percentage or maxUnavailable" -}}
{{- else if and (hasSuffix "%" $min) $replicas (ge (div (add (mul (atoi (trimSuffix "%" $min)) (atoi $replicas)) 99) 100) (atoi $replicas)) -}}
{{- $errors = append $errors (printf "agent-backend: podDisruptionBudget.minAvailable %s keeps all %s replica(s) (Kubernetes rounds a percentage up) and would block every node drain; lower it, use maxUnavailable, or run more replicas (extraOptionsSpec.replicas or autoscaling.minReplicas)" $min $replicas) -}}
{{- else if and $min $replicas (regexMatch "^[0-9]+$" $min) (ge (atoi $replicas) 1) (ge (atoi $min) (atoi $replicas)) -}}
{{- $errors = append $errors (printf "agent-backend: podDisruptionBudget.minAvailable %s would block every node drain with %s replica(s); run more replicas (extraOptionsSpec.replicas or autoscaling.minReplicas) or lower it" $min $replicas) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.autoscaling: takes the root context; returns, while autoscaling.enabled, its failures (minReplicas at most maxReplicas, at least one target above 0, each utilization target with its resources.requests, no extraOptionsSpec.replicas), one message per line. */}}
{{- define "agent-backend.validate.autoscaling" -}}
{{- $hpa := .Values.autoscaling -}}
{{- $errors := list -}}
{{- if $hpa.enabled -}}
{{- if gt ($hpa.minReplicas | int) ($hpa.maxReplicas | int) -}}
{{- $errors = append $errors (printf "agent-backend: autoscaling.minReplicas %d is above autoscaling.maxReplicas %d" ($hpa.minReplicas | int) ($hpa.maxReplicas | int)) -}}
{{- end -}}
{{- $requests := (.Values.resources | default dict).requests | default dict -}}
{{- $targets := dict "cpu" $hpa.targetCPUUtilizationPercentage "memory" $hpa.targetMemoryUtilizationPercentage -}}
{{- $keys := dict "cpu" "autoscaling.targetCPUUtilizationPercentage" "memory" "autoscaling.targetMemoryUtilizationPercentage" -}}
{{- if not (or (gt ($targets.cpu | int) 0) (gt ($targets.memory | int) 0)) -}}
{{- $errors = append $errors "agent-backend: set autoscaling.targetCPUUtilizationPercentage or autoscaling.targetMemoryUtilizationPercentage (the autoscaler needs a target)" -}}
{{- end -}}
{{- range $resource, $target := $targets -}}
{{- if and (gt ($target | int) 0) (not (get $requests $resource)) -}}
{{- $errors = append $errors (printf "agent-backend: %s needs resources.requests.%s (utilization is a percentage of the request)" (get $keys $resource) $resource) -}}
{{- end -}}
{{- end -}}
{{- if hasKey (.Values.extraOptionsSpec | default dict) "replicas" -}}
{{- $errors = append $errors "agent-backend: extraOptionsSpec.replicas cannot be set with autoscaling.enabled (the autoscaler owns the replica count, and every helm upgrade would reset it); use autoscaling.minReplicas and autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.networkPolicy: takes the root context; returns, while networkPolicy.enabled, the peers of networkPolicy.ingress.from, networkPolicy.egress.<service>.to and networkPolicy.egress.extra[].to that combine an ipBlock with a selector (Kubernetes rejects them), one message per line. */}}
{{- define "agent-backend.validate.networkPolicy" -}}
{{- $np := .Values.networkPolicy -}}
{{- $errors := list -}}
{{- if $np.enabled -}}
{{- $lists := dict "networkPolicy.ingress.from" $np.ingress.from -}}
{{- range $service := list "dns" "database" "platform" "mcp" "anthropic" "langsmith" -}}
{{- $_ := set $lists (printf "networkPolicy.egress.%s.to" $service) (get $np.egress $service).to -}}
{{- end -}}
{{- range $i, $rule := ($np.egress.extra | default list) -}}
{{- $_ := set $lists (printf "networkPolicy.egress.extra[%d].to" $i) (get $rule "to") -}}
{{- end -}}
{{- range $path, $peers := $lists -}}
{{- range $i, $peer := ($peers | default list) -}}
{{- if and $peer.ipBlock (or (hasKey $peer "podSelector") (hasKey $peer "namespaceSelector")) -}}
{{- $errors = append $errors (printf "agent-backend: %s[%d] combines ipBlock with a selector; give them as two peers" $path $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.extraDeploy: takes the root context; returns the failures of extraDeploy, rendered with tpl (each item one object with apiVersion, kind and metadata.name), one message per line. */}}
{{- define "agent-backend.validate.extraDeploy" -}}
{{- $errors := list -}}
{{- range $i, $item := (.Values.extraDeploy | default list) -}}
{{- $obj := include "agent-backend.tpl.render" (dict "value" $item "context" $) | fromYaml -}}
{{- if or (hasKey $obj "Error") (not $obj.apiVersion) (not $obj.kind) (not (($obj.metadata | default dict).name)) -}}
{{- $errors = append $errors (printf "agent-backend: extraDeploy[%d] must be one Kubernetes object with apiVersion, kind and metadata.name" $i) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.templates: takes the root context; returns, for each value evaluated as a template that still holds "{{" after agent-backend.tpl.passes passes of tpl, a message naming its key, one per line. */}}
{{- define "agent-backend.validate.templates" -}}
{{- $v := .Values -}}
{{- $values := dict
  "global.platformExternalDomain" $v.global.platformExternalDomain
  "global.agentBackendDomain" $v.global.agentBackendDomain
  "global.mcpDomain" $v.global.mcpDomain
  "service.extraOptions" $v.service.extraOptions
  "initContainers" $v.initContainers
  "extraOptionsSpec" $v.extraOptionsSpec
  "extraOptionsTemplateSpec" $v.extraOptionsTemplateSpec
  "extraVolumes" $v.extraVolumes
  "extraVolumeMounts" $v.extraVolumeMounts
  "ingress.defaultBackend" $v.ingress.defaultBackend
  "ingress.tls" $v.ingress.tls
  "networkPolicy.egress.extra" $v.networkPolicy.egress.extra -}}
{{- range $probe := list "startupProbe" "readinessProbe" "livenessProbe" -}}
{{- $_ := set $values (printf "%s.httpGet.port" $probe) (toString (get (get $v $probe).httpGet "port")) -}}
{{- end -}}
{{- $maps := dict "podLabels" $v.podLabels "podAnnotations" $v.podAnnotations "ingress.annotations" $v.ingress.annotations "ingress.extraLabels" $v.ingress.extraLabels "secretLabels" $v.secretLabels "secretAnnotations" $v.secretAnnotations "configMapLabels" $v.configMapLabels "configMapAnnotations" $v.configMapAnnotations "serviceAccount.annotations" $v.serviceAccount.annotations -}}
{{- range $path, $map := $maps -}}
{{- range $key, $value := ($map | default dict) -}}
{{- $_ := set $values (printf "%s.%s" $path $key) $value -}}
{{- end -}}
{{- end -}}
{{- range $i, $h := ($v.ingress.extraHosts | default list) -}}
{{- range $field := list "host" "serviceName" "portNumber" -}}
{{- $_ := set $values (printf "ingress.extraHosts[%d].%s" $i $field) (get $h $field) -}}
{{- end -}}
{{- end -}}
{{- range $i, $item := ($v.extraDeploy | default list) -}}
{{- $_ := set $values (printf "extraDeploy[%d]" $i) $item -}}
{{- end -}}
{{- $rendered := dict -}}
{{- range $path, $value := $values -}}
{{- $_ := set $rendered $path (include "agent-backend.tpl.render" (dict "value" $value "context" $)) -}}
{{- end -}}
{{- range $path, $image := dict "image.tag" $v.image "initContainerDependencies.waitForMySQL.image.tag" $v.initContainerDependencies.waitForMySQL.image -}}
{{- $_ := set $rendered $path (include "agent-backend.tpl.withChart" (dict "value" (include "agent-backend.images.tagText" $image.tag) "context" $)) -}}
{{- end -}}
{{- $errors := list -}}
{{- range $path, $out := $rendered -}}
{{- if contains "{{" $out -}}
{{- $errors = append $errors (printf "agent-backend: %s still holds a template after %s passes of tpl (it renders \"{{\" again, or refers to itself); make it render to plain text" $path (include "agent-backend.tpl.passes" $)) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $errors -}}
{{- end -}}

{{/* agent-backend.validate.values: takes the root context; stops the render with every requirement failure, returns "" when there is none. `helm lint` turns fail() into a log line, so under lint the messages are then raised as the name of a missing template, which lint reports as an error. */}}
{{- define "agent-backend.validate.values" -}}
{{- $messages := include "agent-backend.validate.messages" . -}}
{{- if $messages -}}
{{- fail $messages -}}
{{- include (printf "invalid values: %s" (replace "\n" " | " $messages)) . -}}
{{- end -}}
{{- end -}}
