{{/* The chart name (app.kubernetes.io/name). */}}
{{- define "mirra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the objects: the release name, unless it lacks the chart name. */}}
{{- define "mirra.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mirra.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "mirra.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "mirra.labels" -}}
{{- $labels := dict "helm.sh/chart" (include "mirra.chart" .) "app.kubernetes.io/version" .Chart.AppVersion "app.kubernetes.io/managed-by" .Release.Service }}
{{- $labels = merge $labels (include "mirra.selectorLabels" . | fromYaml) }}
{{- toYaml (merge $labels (.Values.commonLabels | default dict)) }}
{{- end }}

{{/* The common labels with more on top (a dict; its keys win over commonLabels). Use: include "mirra.labelsWith" (list . $extra) */}}
{{- define "mirra.labelsWith" -}}
{{- $root := index . 0 }}
{{- toYaml (merge (deepCopy (index . 1 | default dict)) (include "mirra.labels" $root | fromYaml)) }}
{{- end }}

{{/* What tells this release's objects apart. */}}
{{- define "mirra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mirra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The agent pods: the DaemonSet's and the Service's selector (and `mirra shards --selector`). */}}
{{- define "mirra.agentSelectorLabels" -}}
{{ include "mirra.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "mirra.peerSelector" -}}
{{- $parts := list }}
{{- range $key, $value := (include "mirra.agentSelectorLabels" . | fromYaml) }}
{{- $parts = append $parts (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," (sortAlpha $parts) }}
{{- end }}

{{- define "mirra.serviceAccountName" -}}
{{- default (include "mirra.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "mirra.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The agent settings: `mirra:` with every key that `spegel:` also sets taken from
there (a Spegel values file carries over). Keys only Spegel has are ignored.
Use: {{- $s := include "mirra.settings" . | fromYaml }}
*/}}
{{- define "mirra.settings" -}}
{{- $settings := deepCopy .Values.mirra }}
{{- range $key, $value := (.Values.spegel | default dict) }}
{{- if hasKey $settings $key }}
{{- $_ := set $settings $key $value }}
{{- end }}
{{- end }}
{{- $level := lower (toString $settings.logLevel) }}
{{- if not (has $level (list "trace" "debug" "info" "warn" "error" "fatal" "silent")) }}
{{- fail (printf "mirra.logLevel: %q is not one of trace, debug, info, warn, error, fatal, silent" $settings.logLevel) }}
{{- end }}
{{- $_ := set $settings "logLevel" $level }}
{{- if and $settings.verifyPullAccess (not .Values.peerAuth.enabled) }}
{{- fail "mirra.verifyPullAccess needs peerAuth.enabled=true: agents assert a verified pull to each other in signed requests" }}
{{- end }}
{{- if not $settings.containerdConfigPath }}
{{- $_ := set $settings "containerdConfigPath" (printf "%s/config.toml" (dir $settings.containerdRegistryConfigPath)) }}
{{- end }}
{{- toYaml $settings }}
{{- end }}

{{/* NODE_IP: where containerd on the node reaches its agent (the hostPort). */}}
{{- define "mirra.nodeIpEnv" -}}
- name: NODE_IP
{{- if .Values.service.registry.nodeIp }}
  value: {{ .Values.service.registry.nodeIp | quote }}
{{- else }}
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- end }}

{{/* The Secret holding the peer auth key: peerAuth.existingSecret, or the one the chart creates. */}}
{{- define "mirra.peerAuthSecretName" -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" (toString .Values.peerAuth.secretKey)) }}
{{- fail (printf "peerAuth.secretKey: %q is not a valid Secret key" (toString .Values.peerAuth.secretKey)) }}
{{- end }}
{{- default (printf "%s-peer-auth" (include "mirra.fullname" .)) .Values.peerAuth.existingSecret }}
{{- end }}
