{{/*
Names, labels, images and the operator's RBAC rules, shared by every template.
*/}}

{{- define "modelgrid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-modelgrid", or the release name alone when it already says modelgrid. */}}
{{- define "modelgrid.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelgrid.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "modelgrid.labels" -}}
helm.sh/chart: {{ include "modelgrid.chart" . }}
app.kubernetes.io/name: {{ include "modelgrid.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelgrid
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component's objects: call with (dict "root" $ "component" "gateway"). */}}
{{- define "modelgrid.componentLabels" -}}
{{ include "modelgrid.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component (never change between releases: selectors are immutable). */}}
{{- define "modelgrid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgrid.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "modelgrid.operator.fullname" -}}
{{ include "modelgrid.fullname" . }}-operator
{{- end }}

{{- define "modelgrid.operator.leaseName" -}}
{{- default (include "modelgrid.operator.fullname" .) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{- define "modelgrid.gateway.fullname" -}}
{{ include "modelgrid.fullname" . }}-gateway
{{- end }}

{{- define "modelgrid.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "modelgrid.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelgrid.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "modelgrid.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of a component: (dict "root" $ "image" .Values.gateway.image). */}}
{{- define "modelgrid.image" -}}
{{- $repository := default .root.Values.image.repository .image.repository }}
{{- $tag := default .root.Values.image.tag .image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{- define "modelgrid.imagePullPolicy" -}}
{{- default .root.Values.image.pullPolicy .image.pullPolicy }}
{{- end }}

{{/* The headless Service whose DNS name lists every gateway pod (peers sharing key limits). */}}
{{- define "modelgrid.gateway.peersService" -}}
{{ include "modelgrid.gateway.fullname" . }}-peers
{{- end }}

{{/* The Secret holding the gateways' shared peer secret (they read each other's usage). */}}
{{- define "modelgrid.gateway.peerSecret" -}}
{{ include "modelgrid.gateway.fullname" . }}-peer
{{- end }}

{{/* The Secret that holds the gateway's API keys. */}}
{{- define "modelgrid.gateway.apiKeysSecret" -}}
{{- default (printf "%s-api-keys" (include "modelgrid.gateway.fullname" .)) .Values.gateway.apiKeys.existingSecret }}
{{- end }}

{{/* Where the gateway's config file is mounted (used by gateway.args). */}}
{{- define "modelgrid.gateway.configFile" -}}
/etc/modelgrid/gateway/config.yaml
{{- end }}

{{/*
The gateway's config file (serving/modelgrid_serving/gateway/config.py): `auth` points at the
API-keys Secret, which the gateway watches; gateway.config is merged over it.
*/}}
{{- define "modelgrid.gateway.config" -}}
{{- $keys := .Values.gateway.apiKeys }}
{{- $auth := dict "enabled" $keys.enabled }}
{{- if $keys.enabled }}
{{- $_ := set $auth "secret_name" (include "modelgrid.gateway.apiKeysSecret" .) }}
{{- $_ := set $auth "secret_key" $keys.secretKey }}
{{- end }}
{{- $base := dict "auth" $auth }}
{{- with .Values.gateway.admin }}
{{- if .enabled }}
{{- $admin := dict "enabled" true "namespace" (include "modelgrid.gateway.adminNamespace" $) "accelerator" .accelerator "max_models" .maxModels "drain_timeout_s" .drainTimeoutSeconds }}
{{- if .grpcPort }}
{{- $_ := set $admin "grpc_listen" (printf "0.0.0.0:%v" .grpcPort) }}
{{- end }}
{{- $_ := set $base "admin" $admin }}
{{- end }}
{{- end }}
{{- if .Values.gateway.sharedLimits }}
{{- $dns := printf "%s.%s.svc:%v" (include "modelgrid.gateway.peersService" .) .Release.Namespace .Values.gateway.port }}
{{- $_ := set $base "limits" (dict "peers" (dict "dns" $dns)) }}
{{- end }}
{{- with .Values.gateway.cors }}
{{- if .allowOrigins }}
{{- $cors := dict "allow_origins" .allowOrigins "allow_methods" .allowMethods "allow_headers" .allowHeaders "max_age_s" .maxAgeSeconds "allow_credentials" .allowCredentials }}
{{- if .exposeHeaders }}
{{- $_ := set $cors "expose_headers" .exposeHeaders }}
{{- end }}
{{- $_ := set $base "cors" $cors }}
{{- end }}
{{- end }}
{{- toYaml (mergeOverwrite $base (deepCopy .Values.gateway.config)) }}
{{- end }}

{{/*
The operator's least privilege: exactly what kopf and operator/modelgrid_operator/k8s.py call
(tests/unit/chart checks these against e2e/kind's ClusterRole, which tests/unit/fidelity checks
against the operator's code). Rules on namespaced resources go into a Role per watched
namespace when watchNamespaces is set, else into the ClusterRole with the cluster-scoped ones.
*/}}
{{- define "modelgrid.operator.namespacedRules" -}}
# Watch models; kopf patches them for its finalizer and progress annotations.
- apiGroups: [modelgrid.io]
  resources: [inferencemodels]
  verbs: [get, list, watch, patch]
# Phase, conditions, endpoint and replica counts.
- apiGroups: [modelgrid.io]
  resources: [inferencemodels/status]
  verbs: [get, patch]
# The children of each model, one per pool (watched, so a change reconciles the model; read,
# created, corrected on drift, deleted with the model or the pool).
- apiGroups: [ray.io]
  resources: [rayservices]
  verbs: [get, list, watch, create, patch, delete]
# KubeRay's clusters of those RayServices (watched): the operator puts in the bounds and
# tolerations KubeRay ignores, and deletes an outdated one under upgrade strategy None.
- apiGroups: [ray.io]
  resources: [rayclusters]
  verbs: [get, list, watch, patch, delete]
# Each model's NetworkPolicy (watched; created, corrected on drift; deleted with the model by
# its owner reference).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
# Replica readiness per pool, and why a pod cannot start, come from the model's pods
# (heads and workers): their labels, conditions and container statuses.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Phase changes and each new pod failure are reported as Events on the model.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{- define "modelgrid.operator.clusterRules" -}}
# kopf notices CRDs installed after it started (e.g. KubeRay's).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# Memory admission reads node labels and allocatable memory (watched, kept in memory).
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, watch]
{{- end }}

{{/* Only when watching given namespaces: kopf lists and watches namespaces to find them. */}}
{{- define "modelgrid.operator.namespaceScanRules" -}}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/* The gateway lists and watches InferenceModels: it routes by their status. */}}
{{/* Where the admin API creates and deletes InferenceModels. */}}
{{- define "modelgrid.gateway.adminNamespace" -}}
{{- .Values.gateway.admin.namespace | default .Release.Namespace }}
{{- end }}

{{- define "modelgrid.gateway.modelRules" -}}
- apiGroups: [modelgrid.io]
  resources: [inferencemodels]
  verbs: [list, watch]
{{- end }}

{{/* /tmp for both containers: the root file system is read-only. */}}
{{- define "modelgrid.tmpVolume" -}}
- name: tmp
  emptyDir: {}
{{- end }}

{{/*
The service account token, for the containers that call the Kubernetes API. Every pod of the
chart sets automountServiceAccountToken: false, so a container that does not call the API (an
injected sidecar, a pod without --kubernetes) holds no token; the ones that do mount this volume
at the usual path. Its sources are what the kubelet's automatic mount projects (a token the
kubelet renews, the cluster's CA, the namespace), so clients read it as they always do.
*/}}
{{- define "modelgrid.apiAccessVolume" -}}
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end }}

{{- define "modelgrid.apiAccessMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}

{{/* Whether the gateway calls the Kubernetes API: it does with --kubernetes (the default). */}}
{{- define "modelgrid.gateway.callsApi" -}}
{{- if has "--kubernetes" (concat .Values.gateway.args .Values.gateway.extraArgs) }}true{{ end }}
{{- end }}

{{- /*
A component's PodDisruptionBudget: dict "root" $ "component" "gateway" "name" <fullname>
"budget" <its podDisruptionBudget values> (validate.yaml checks one of the two is set).
*/}}
{{- define "modelgrid.podDisruptionBudget" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "modelgrid.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  {{- if ne (toString .budget.minAvailable) "" }}
  minAvailable: {{ .budget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .budget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "modelgrid.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
