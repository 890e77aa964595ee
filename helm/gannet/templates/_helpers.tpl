{{/* Names, labels and the values derived from several others. */}}

{{/* The chart name (nameOverride wins). */}}
{{- define "gannet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<name>, or the release name when it already contains the name.
Kept to 52 characters: the StatefulSet adds "-<ordinal>" and the controller-revision-hash label. */}}
{{- define "gannet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gannet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The headless Service: the pods' DNS names <pod>.<headless>.<namespace>.svc.<domain>. */}}
{{- define "gannet.headlessName" -}}
{{- printf "%s-headless" (include "gannet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gannet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gannet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gannet.labels" -}}
helm.sh/chart: {{ include "gannet.chart" . }}
{{ include "gannet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: broker
{{- end -}}

{{- define "gannet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gannet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gannet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the cluster secret (the chart's or an existing one). */}}
{{- define "gannet.clusterSecretName" -}}
{{- if .Values.cluster.existingSecret -}}
{{- .Values.cluster.existingSecret -}}
{{- else -}}
{{- printf "%s-cluster" (include "gannet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the MQTT TLS certificate (the chart's or an existing one). */}}
{{- define "gannet.tlsSecretName" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "gannet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Whether --tls_ca_file is passed (mutual TLS for MQTT clients). */}}
{{- define "gannet.tlsClientCA" -}}
{{- if or (and .Values.tls.existingSecret .Values.tls.clientCA) (and (not .Values.tls.existingSecret) .Values.tls.ca) -}}
true
{{- end -}}
{{- end -}}

{{/* Where things are mounted in the pod. */}}
{{- define "gannet.flagfile" -}}/etc/gannet/gannet.flags{{- end -}}
{{- define "gannet.secretFile" -}}/etc/gannet/secret/{{ .Values.cluster.secretKey }}{{- end -}}
{{- define "gannet.dataDir" -}}/data{{- end -}}

{{/* --peers: every replica, ID@<fullname>-<ordinal>.<headless>.<namespace>.svc.<domain>:<cluster port>,
node id = ordinal + 1. The node's own entry is included (gannet skips its own id). */}}
{{- define "gannet.peers" -}}
{{- $full := include "gannet.fullname" . -}}
{{- $headless := include "gannet.headlessName" . -}}
{{- $peers := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $peers = append $peers (printf "%d@%s-%d.%s.%s.svc.%s:%d" (add1 $i) $full $i $headless $.Release.Namespace $.Values.clusterDomain (int $.Values.ports.cluster)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/* --workers: the value, or with 0 the CPU limit rounded up ("2", 2, "1500m"); with no
CPU limit 0 (gannet then starts one per core it sees, which in a container is the host's count). */}}
{{- define "gannet.workers" -}}
{{- $w := int .Values.gannet.workers -}}
{{- if and (eq $w 0) .Values.resources .Values.resources.limits .Values.resources.limits.cpu -}}
{{- $cpu := toString .Values.resources.limits.cpu -}}
{{- if hasSuffix "m" $cpu -}}
{{- $w = int (ceil (divf (float64 (trimSuffix "m" $cpu)) 1000)) -}}
{{- else -}}
{{- $w = int (ceil (float64 $cpu)) -}}
{{- end -}}
{{- $w = max $w 1 -}}
{{- end -}}
{{- $w -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the value, or --drain_timeout + 15 s. */}}
{{- define "gannet.terminationGracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add (int .Values.gannet.drainTimeout) 15 -}}
{{- end -}}
{{- end -}}

{{/* gannetctl's flags for this node's cluster port (the preStop hook). */}}
{{- define "gannet.gannetctlFlags" -}}
--server=127.0.0.1:{{ .Values.ports.cluster }} --cluster_secret_file={{ include "gannet.secretFile" . }}
{{- if .Values.clusterTls.enabled }} --tls_cert_file=/etc/gannet/cluster-tls/tls.crt --tls_key_file=/etc/gannet/cluster-tls/tls.key --tls_ca_file=/etc/gannet/cluster-tls/ca.crt{{- end -}}
{{- end -}}

{{/* Checks of value combinations that cannot work; fail the render with the reason. */}}
{{- define "gannet.validate" -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- if gt (int .Values.gannet.replicationFactor) (int .Values.replicaCount) -}}
{{- fail (printf "gannet.replicationFactor (%d) cannot exceed replicaCount (%d)" (int .Values.gannet.replicationFactor) (int .Values.replicaCount)) -}}
{{- end -}}
{{- if le (int (include "gannet.terminationGracePeriod" .)) (int .Values.gannet.drainTimeout) -}}
{{- fail (printf "terminationGracePeriodSeconds (%s) must be larger than gannet.drainTimeout (%d): the kubelet would kill a drain in progress" (include "gannet.terminationGracePeriod" .) (int .Values.gannet.drainTimeout)) -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (or (not .Values.tls.cert) (not .Values.tls.key)) -}}
{{- fail "tls.enabled needs tls.existingSecret, or tls.cert and tls.key" -}}
{{- end -}}
{{- if and .Values.clusterTls.enabled (not .Values.clusterTls.existingSecret) -}}
{{- fail "clusterTls.enabled needs clusterTls.existingSecret (tls.crt, tls.key, ca.crt)" -}}
{{- end -}}
{{- if not (has .Values.antiAffinity.type (list "soft" "hard" "none")) -}}
{{- fail "antiAffinity.type must be soft, hard or none" -}}
{{- end -}}
{{- end -}}
