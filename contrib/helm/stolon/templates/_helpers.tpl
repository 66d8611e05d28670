{{/* Labels every object gets. */}}
{{- define "stolon.labels" -}}
app.kubernetes.io/name: stolon
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The labels the kubernetes store selects a component's pods by (and our selectors). */}}
{{- define "stolon.selector" -}}
component: stolon-{{ .component }}
stolon-cluster: {{ .root.Values.clusterName }}
{{- end }}

{{- define "stolon.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{- define "stolon.secretName" -}}
{{ .Values.secret.existingSecret | default .Release.Name }}
{{- end }}

{{/* POD_NAME and POD_NAMESPACE from the downward API: the store annotates the pod. */}}
{{- define "stolon.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
