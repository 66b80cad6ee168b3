{{/* Release-scoped name prefix. */}}
{{- define "aviary.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aviary.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: aviary
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component: (list $ "name"). */}}
{{- define "aviary.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end -}}

{{- define "aviary.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* ClusterIP Service of a gRPC service (peers dial it): (list $ "name"). */}}
{{- define "aviary.svcName" -}}
{{- printf "%s-%s" (include "aviary.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{/* Headless Service host (every pod; Envoy's STRICT_DNS clusters): (list $ "name"). */}}
{{- define "aviary.headlessHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s-headless.%s.svc.%s" (include "aviary.svcName" .) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end -}}

{{- define "aviary.svcHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s.%s.svc.%s" (include "aviary.svcName" .) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end -}}

{{/* Secret names. */}}
{{- define "aviary.backendsSecret" -}}{{ include "aviary.fullname" . }}-backends{{- end -}}
{{/* (list $ service): the Secret holding that service's own AVIARY_PG_DSN. */}}
{{- define "aviary.pgSecret" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- default (printf "%s-pg-%s" (include "aviary.fullname" $root) $name) (get $root.Values.postgres.existingSecrets $name) -}}
{{- end -}}
{{- define "aviary.s3Secret" -}}{{ default (include "aviary.backendsSecret" .) .Values.s3.existingSecret }}{{- end -}}
{{- define "aviary.pageTokenSecret" -}}{{ default (include "aviary.backendsSecret" .) .Values.pageTokens.existingSecret }}{{- end -}}
{{- define "aviary.stripeSecret" -}}{{ default (include "aviary.backendsSecret" .) .Values.stripe.existingSecret }}{{- end -}}
{{- define "aviary.jwtSecret" -}}{{ default (printf "%s-jwt" (include "aviary.fullname" .)) .Values.jwt.existingSecret }}{{- end -}}

{{/* The S3 endpoint, split for Envoy's objectstore cluster. */}}
{{- define "aviary.s3Scheme" -}}{{ (urlParse .Values.s3.endpoint).scheme | default "http" }}{{- end -}}
{{- define "aviary.s3Host" -}}{{ (split ":" (urlParse .Values.s3.endpoint).host)._0 }}{{- end -}}
{{- define "aviary.s3Port" -}}
{{- $parts := split ":" (urlParse .Values.s3.endpoint).host -}}
{{- if $parts._1 -}}{{ $parts._1 }}{{- else if eq (include "aviary.s3Scheme" .) "https" -}}443{{- else -}}80{{- end -}}
{{- end -}}

{{/* " scheme://host[:port]" of media.publicUrl for the web client's CSP
(images and video may come from there), or nothing for a relative URL. */}}
{{- define "aviary.mediaCspSource" -}}
{{- $url := urlParse .Values.media.publicUrl -}}
{{- if and $url.scheme $url.host }} {{ $url.scheme }}://{{ $url.host }}{{ end -}}
{{- end -}}

{{/* Environment every Aviary process gets (mirrors devstack/services.py service_env()). */}}
{{- define "aviary.env" -}}
- name: AVIARY_S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ include "aviary.s3Secret" . }}, key: AVIARY_S3_ACCESS_KEY}}
- name: AVIARY_S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ include "aviary.s3Secret" . }}, key: AVIARY_S3_SECRET_KEY}}
- name: AVIARY_STRIPE_API_KEY
  valueFrom: {secretKeyRef: {name: {{ include "aviary.stripeSecret" . }}, key: AVIARY_STRIPE_API_KEY}}
- name: AVIARY_PAGE_TOKEN_SECRET
  valueFrom: {secretKeyRef: {name: {{ include "aviary.pageTokenSecret" . }}, key: AVIARY_PAGE_TOKEN_SECRET}}
{{- end -}}

{{- define "aviary.envFrom" -}}
- configMapRef: {name: {{ include "aviary.fullname" . }}-env}
{{- end -}}

{{/* Pod-level bits shared by all workloads. */}}
{{- define "aviary.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}
