{{/* Names, labels and the per-service settings shared by the templates. */}}

{{- define "at.name" -}}agentic-tenancy{{- end }}

{{/*
Namespace of the tenant pods, their token Secrets and the warm pool (K8S_NAMESPACE):
tenants.namespace, else "<release namespace>-agents". Their own namespace, so that the runtime's
Roles reach nothing of the release (its Secret, Helm's release Secrets) and Pod Security Admission
`restricted` can be enforced on it without touching the platform's pods.
*/}}
{{- define "at.tenantsNamespace" -}}
{{- .Values.tenants.namespace | default (printf "%s-agents" .Release.Namespace | trunc 63 | trimSuffix "-") -}}
{{- end }}

{{/* The Secret that owns every tenant pod and tenant Secret (templates/pod-owner.yaml; K8S_POD_OWNER). */}}
{{- define "at.podOwner" -}}{{ include "at.name" . }}-owner{{- end }}

{{- define "at.labels" -}}
app.kubernetes.io/name: {{ include "at.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of one service: (dict "root" $ "service" "forwarder"). */}}
{{- define "at.selectorLabels" -}}
app.kubernetes.io/name: {{ include "at.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end }}

{{/* The services and their values keys. */}}
{{- define "at.services" -}}
ingress: ingress
forwarder: forwarder
waker: waker
janitor: janitor
pool-keeper: poolKeeper
dashboard: dashboard
admin-api: adminApi
{{- end }}

{{/* Services that run the Kubernetes runtime (pods, secrets, PVCs in the tenants namespace), each with its own account and Role. */}}
{{- define "at.runtimeServices" -}}waker janitor pool-keeper{{- end }}

{{/*
The keys of the platform Secret each service gets (secretKeyRef, one by one: no envFrom), from
lib/config.ts and services/<name>/main.ts. The internet-facing ingress gets the webhook secret and
Redis only. WARM_POOL_SECRET authorises control calls to every shim: only the runtime services.
WEBHOOK_SECRET: the ingress and forwarder verify and sign with it; the waker and janitor derive
each tenant's secrets from it (the pool-keeper's warm pods carry none). AGENT_LLM_API_KEY goes into
the tenants namespace's warm pool Secret, which the waker (cold start) and the pool-keeper (warm
pool) write. DASHBOARD_*: the dashboard alone.
*/}}
{{- define "at.serviceSecrets" -}}
ingress: [WEBHOOK_SECRET, REDIS_URL]
forwarder: [WEBHOOK_SECRET, REDIS_URL]
waker: [WEBHOOK_SECRET, WARM_POOL_SECRET, REDIS_URL, AGENT_LLM_API_KEY]
janitor: [WEBHOOK_SECRET, WARM_POOL_SECRET, REDIS_URL]
pool-keeper: [WARM_POOL_SECRET, REDIS_URL, AGENT_LLM_API_KEY]
dashboard: [REDIS_URL, DASHBOARD_USER, DASHBOARD_PASSWORD]
admin-api: [REDIS_URL]
{{- end }}

{{/* Keys a service starts without (secretKeyRef optional: true): the model provider's key. */}}
{{- define "at.optionalSecrets" -}}AGENT_LLM_API_KEY{{- end }}

{{- define "at.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{- define "at.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "at.name" .)) -}}
{{- end }}

{{/* The service account of a service: (dict "root" $ "service" "pool-keeper"). Runtime services each their own, the rest `app`. */}}
{{- define "at.serviceAccount" -}}
{{- if has .service (splitList " " (include "at.runtimeServices" .root)) -}}
{{- (index .root.Values.serviceAccounts (index (include "at.services" .root | fromYaml) .service)).name -}}
{{- else -}}
{{- .root.Values.serviceAccounts.app.name -}}
{{- end -}}
{{- end }}

{{/*
Port a service serves /healthz and /readyz on (its probes): the ingress's webhook port (the load
balancer's health check too), the dashboard's port, the workers' admin port.
*/}}
{{- define "at.port" -}}
{{- if eq .service "ingress" -}}{{ .root.Values.services.ingress.port }}
{{- else if eq .service "dashboard" -}}{{ .root.Values.services.dashboard.port }}
{{- else if eq .service "admin-api" -}}{{ .root.Values.services.adminApi.port }}
{{- else -}}{{ .root.Values.adminPort }}{{- end -}}
{{- end }}

{{/* Port a service serves /metrics on: adminPort (the ingress's too: never its webhook port), the dashboard's own. */}}
{{- define "at.metricsPort" -}}
{{- if eq .service "dashboard" -}}{{ .root.Values.services.dashboard.port }}{{- else -}}{{ .root.Values.adminPort }}{{- end -}}
{{- end }}

{{/* AGENT_PORT: tenants.agentPort, else the profile's own (lib/agent-profiles.ts: OpenClaw's webhook listener 8787, the rest 42617). */}}
{{- define "at.agentPort" -}}
{{- if .Values.tenants.agentPort -}}{{ .Values.tenants.agentPort }}{{- else if eq .Values.agent.profile "openclaw" -}}8787{{- else -}}42617{{- end -}}
{{- end }}

{{/*
An environment value as a quoted string. Helm reads numbers in values files as float64, which
toString prints as 1e+06: integral numbers (within 2^53, where float64 is exact) are printed as
integers; other numbers as Go prints them; strings and booleans as written.
*/}}
{{- define "at.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) (lt . 9007199254740992.0) (gt . -9007199254740992.0) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end }}

{{/*
PodDisruptionBudget bound of a service: its pdb's minAvailable or maxUnavailable (the schema allows
at most one; 0 is a value, null is unset), else maxUnavailable 1. The default sets neither so that an override of
either merges cleanly (helm merges maps: a default maxUnavailable would stay beside minAvailable).
*/}}
{{- define "at.pdbSpec" -}}
{{- if not (kindIs "invalid" .minAvailable) -}}
minAvailable: {{ .minAvailable | toYaml }}
{{- else if not (kindIs "invalid" .maxUnavailable) -}}
maxUnavailable: {{ .maxUnavailable | toYaml }}
{{- else -}}
maxUnavailable: 1
{{- end -}}
{{- end }}
