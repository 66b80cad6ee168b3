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

{{/* repository@digest when image.digest is set (what production should pin), else repository:tag. */}}
{{- define "aviary.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
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
{{/* Each of these in a Secret of its own, so a node runs only pods that read it. */}}
{{/* (list $ service): the Secret holding that service's own AVIARY_PG_DSN. */}}
{{- define "aviary.pgSecret" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- default (printf "%s-pg-%s" (include "aviary.fullname" $root) $name) (get $root.Values.postgres.existingSecrets $name) -}}
{{- end -}}
{{- define "aviary.s3Secret" -}}{{ default (printf "%s-s3" (include "aviary.fullname" .)) .Values.s3.existingSecret }}{{- end -}}
{{- define "aviary.pageTokenSecret" -}}{{ default (printf "%s-page-tokens" (include "aviary.fullname" .)) .Values.pageTokens.existingSecret }}{{- end -}}
{{- define "aviary.stripeSecret" -}}{{ default (printf "%s-stripe" (include "aviary.fullname" .)) .Values.stripe.existingSecret }}{{- end -}}
{{- define "aviary.jwtSecret" -}}{{ default (printf "%s-jwt" (include "aviary.fullname" .)) .Values.jwt.existingSecret }}{{- end -}}

{{/* The mesh's mutual TLS (services/kit/mesh.py): (list $ identity) -> the
Secret holding that identity's certificate in cert-manager's layout (tls.crt,
tls.key, ca.crt), made by cert-manager (mesh.certManager) or the operator. */}}
{{- define "aviary.meshSecret" -}}
{{- printf "%s-mesh-%s" (include "aviary.fullname" (index . 0)) (index . 1) -}}
{{- end -}}
{{- define "aviary.meshCertDir" -}}/etc/aviary/mesh{{- end -}}

{{/* The volume of one identity's certificate, named as the kit reads it
(<identity>.pem, <identity>-key.pem, ca.pem): (list $ identity). */}}
{{- define "aviary.meshVolume" -}}
{{- $identity := index . 1 -}}
- name: mesh
  secret:
    secretName: {{ include "aviary.meshSecret" . }}
    defaultMode: 0400
    items:
      - {key: tls.crt, path: {{ $identity }}.pem}
      - {key: tls.key, path: {{ $identity }}-key.pem}
      - {key: ca.crt, path: ca.pem}
{{- end -}}

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

{{/* The services holding a secret of their own: the object store's keys
(media stores the uploads) and the Stripe key (payments charges). */}}
{{- define "aviary.s3Service" -}}media{{- end -}}
{{- define "aviary.stripeService" -}}payments{{- end -}}

{{/* The secrets one service reads, and only those: (list $ name entry), the
entry from files/services.json (pageTokens: its code signs page tokens). */}}
{{- define "aviary.secretEnv" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}{{- $entry := index . 2 -}}
{{- if eq $name (include "aviary.s3Service" $root) }}
- name: AVIARY_S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ include "aviary.s3Secret" $root }}, key: AVIARY_S3_ACCESS_KEY}}
- name: AVIARY_S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ include "aviary.s3Secret" $root }}, key: AVIARY_S3_SECRET_KEY}}
{{- end }}
{{- if eq $name (include "aviary.stripeService" $root) }}
- name: AVIARY_STRIPE_API_KEY
  valueFrom: {secretKeyRef: {name: {{ include "aviary.stripeSecret" $root }}, key: AVIARY_STRIPE_API_KEY}}
{{- end }}
{{- if $entry.pageTokens }}
- name: AVIARY_PAGE_TOKEN_SECRET
  valueFrom: {secretKeyRef: {name: {{ include "aviary.pageTokenSecret" $root }}, key: AVIARY_PAGE_TOKEN_SECRET}}
{{- end }}
{{- if $entry.pgDatabase }}
# Its own database, from a Secret no other service reads.
- name: AVIARY_PG_DSN
  valueFrom: {secretKeyRef: {name: {{ include "aviary.pgSecret" (list $root $name) }}, key: AVIARY_PG_DSN}}
{{- end }}
{{- end -}}

{{/* One egress rule to a backend: (list $ kind), kind a key of
networkPolicy.backends (a store kind of the manifest, kafka, stripe or
zipkin). No `to` means any address, on the backend's ports only; s3's ports
default to s3.endpoint's, zipkin's to tracing.zipkin.port. */}}
{{- define "aviary.backendEgress" -}}
{{- $root := index . 0 -}}{{- $kind := index . 1 -}}
{{- $backend := get $root.Values.networkPolicy.backends $kind -}}
{{- if not $backend }}{{ fail (printf "networkPolicy.backends.%s is required (a store kind in services/manifest.toml)" $kind) }}{{ end -}}
{{- $ports := $backend.ports -}}
{{- if and (not $ports) (eq $kind "s3") }}{{ $ports = list (include "aviary.s3Port" $root | int) }}{{ end -}}
{{- if and (not $ports) (eq $kind "zipkin") }}{{ $ports = list (include "aviary.zipkinPort" $root | int) }}{{ end -}}
# {{ $kind }}
- ports:
    {{- range $port := $ports }}
    - {protocol: TCP, port: {{ $port | int }}}
    {{- end }}
  {{- with $backend.to }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Envoy's metrics listener: the port helm/render_envoy.py writes into files/envoy.yaml. */}}
{{- define "aviary.envoyMetricsPort" -}}9902{{- end -}}

{{/* The trace store (tracing.zipkin), "" when tracing is off. */}}
{{- define "aviary.zipkinHost" -}}
{{- $zipkin := (default (dict) .Values.tracing).zipkin | default (dict) -}}
{{- $zipkin.host | default "" -}}
{{- end -}}
{{- define "aviary.zipkinPort" -}}
{{- $zipkin := (default (dict) .Values.tracing).zipkin | default (dict) -}}
{{- $zipkin.port | default 9411 | int -}}
{{- end -}}

{{/* The ServiceAccount of a workload (no API token is mounted): (list $ name). */}}
{{- define "aviary.serviceAccount" -}}
{{- printf "%s-%s" (include "aviary.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "aviary.envFrom" -}}
- configMapRef: {name: {{ include "aviary.fullname" . }}-env}
{{- end -}}

{{/* Pod-level bits shared by all workloads. */}}
{{- define "aviary.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}
