{{/* "true" when the workers are a fleet (workers.mode), "" for per-client workers. */}}
{{- define "kgcelery.fleet" -}}
{{- if eq .Values.workers.mode "fleet" -}}
true
{{- else if ne .Values.workers.mode "perClient" -}}
{{- fail (printf "workers.mode must be perClient or fleet, not %q" .Values.workers.mode) -}}
{{- end -}}
{{- end }}

{{/* The image of every role and of the per-client workers. */}}
{{- define "kgcelery.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* Labels Helm adds to every object's metadata (never to selectors). */}}
{{- define "kgcelery.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/* Pod Security "restricted": the pod's part. */}}
{{- define "kgcelery.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- end }}

{{/* Pod Security "restricted": the container's part, and the writable /tmp. */}}
{{- define "kgcelery.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
{{- end }}

{{- define "kgcelery.imagePullPolicy" -}}
{{- if .Values.image.pullPolicy }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- end }}
{{- end }}

{{/* A probe on the liveness file of a role (kgcelery/liveness.py). */}}
{{- define "kgcelery.probes" -}}
livenessProbe:
  exec:
    command: ["python", "-m", "kgcelery.liveness", {{ . | quote }}, "--max-age", "60"]
  initialDelaySeconds: 30
  periodSeconds: 30
  timeoutSeconds: 10
  failureThreshold: 3
readinessProbe:
  exec:
    command: ["python", "-m", "kgcelery.liveness", {{ . | quote }}, "--max-age", "30"]
  periodSeconds: 15
  timeoutSeconds: 10
{{- end }}

{{/* The non-secret settings, the same in both namespaces. */}}
{{- define "kgcelery.config" -}}
KGCELERY_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
KGCELERY_TOPIC_REPLICATION_FACTOR: {{ .Values.topics.replicationFactor | quote }}
KGCELERY_TOPIC_PARTITIONS: {{ .Values.topics.partitions | quote }}
KGCELERY_GRAPH_BACKEND: neo4j
KGCELERY_GRAPH_URI: {{ .Values.neo4j.uri | quote }}
KGCELERY_GRAPH_USER: {{ .Values.neo4j.user | quote }}
KGCELERY_GRAPH_TENANCY: {{ .Values.neo4j.tenancy | quote }}
{{- if include "kgcelery.fleet" . }}
KGCELERY_SCALER_BACKEND: celery
{{- if eq (toString .Values.scaling.maxWorkers) "" }}
KGCELERY_SCALE_MAX_WORKERS: {{ .Values.workers.fleet.replicas | toString | quote }}
{{- end }}
{{- else }}
KGCELERY_SCALER_BACKEND: kubernetes
KGCELERY_KUBERNETES_NAMESPACE: {{ .Values.namespaces.workers | quote }}
KGCELERY_KUBERNETES_MODE: {{ .Values.scaling.mode | quote }}
KGCELERY_KUBERNETES_TEMPLATE_DIR: /app/deploy
KGCELERY_KUBERNETES_WORKER_IMAGE: {{ include "kgcelery.image" . | quote }}
{{- end }}
KGCELERY_LIVENESS_DIR: /tmp
KGCELERY_BRIDGE_METRICS_PORT: {{ .Values.bridge.metricsPort | quote }}
KGCELERY_CONTROL_METRICS_PORT: {{ .Values.controlWorker.metricsPort | quote }}
KGCELERY_BRIDGE_DURABLE: {{ .Values.redis.durable | quote }}
{{- if eq .Values.redis.durable "replicas" }}
KGCELERY_BRIDGE_DURABLE_REPLICAS: {{ .Values.redis.durableReplicas | quote }}
{{- end }}
{{- with .Values.kafka.securityProtocol }}
KGCELERY_KAFKA_SECURITY_PROTOCOL: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.saslMechanism }}
KGCELERY_KAFKA_SASL_MECHANISM: {{ . | quote }}
{{- end }}
{{- $scaling := dict "minWorkers" "KGCELERY_SCALE_MIN_WORKERS" "maxWorkers" "KGCELERY_SCALE_MAX_WORKERS" "globalMaxWorkers" "KGCELERY_SCALE_GLOBAL_MAX_WORKERS" "targetRecordsPerWorker" "KGCELERY_SCALE_TARGET_RECORDS_PER_WORKER" "cooldownSeconds" "KGCELERY_SCALE_COOLDOWN_S" "idleGraceSeconds" "KGCELERY_SCALE_IDLE_GRACE_S" }}
{{- range $key, $name := $scaling }}
{{- $value := index $.Values.scaling $key }}
{{- if ne (toString $value) "" }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.config }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
