{{/* Names, labels and the per-service settings shared by the templates. */}}

{{- define "at.name" -}}agentic-tenancy{{- end }}

{{/* Namespace of the tenant pods (K8S_NAMESPACE): tenants.namespace, else the release's. */}}
{{- define "at.tenantsNamespace" -}}{{ .Values.tenants.namespace | default .Release.Namespace }}{{- end }}

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
{{- end }}

{{/* Services that run the Kubernetes runtime (pods, secrets, PVCs in the tenants namespace). */}}
{{- define "at.runtimeServices" -}}waker janitor pool-keeper{{- end }}

{{- define "at.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{- define "at.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "at.name" .)) -}}
{{- end }}

{{- define "at.runtimeServiceAccount" -}}{{ .Values.serviceAccounts.runtime.name }}{{- end }}
{{- define "at.appServiceAccount" -}}{{ .Values.serviceAccounts.app.name }}{{- end }}

{{/* Port a service serves /healthz, /readyz and /metrics on. */}}
{{- define "at.port" -}}
{{- if eq .service "ingress" -}}{{ .root.Values.services.ingress.port }}
{{- else if eq .service "dashboard" -}}{{ .root.Values.services.dashboard.port }}
{{- else -}}{{ .root.Values.adminPort }}{{- end -}}
{{- end }}

{{/* AGENT_PORT: tenants.agentPort, else the profile's own (lib/agent-profiles.ts: OpenClaw's webhook listener 8787, the rest 42617). */}}
{{- define "at.agentPort" -}}
{{- if .Values.tenants.agentPort -}}{{ .Values.tenants.agentPort }}{{- else if eq .Values.agent.profile "openclaw" -}}8787{{- else -}}42617{{- end -}}
{{- end }}
