{{- define "pg.name" -}}{{ .Release.Name }}-proving-ground{{- end -}}

{{- define "pg.labels" -}}
app.kubernetes.io/name: proving-ground
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "pg.selector" -}}
app.kubernetes.io/name: proving-ground
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pg.image" -}}
{{ .root.Values.image.repository }}-{{ .target }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end -}}

{{/* Settings by environment, secrets as files (SECRETS_DIR), the TLS pair as files: the same for every process. */}}
{{- define "pg.environment" -}}
- name: SECRETS_DIR
  value: /run/secrets/app
- name: TLS_CERT_FILE
  value: /run/secrets/tls/tls.crt
- name: TLS_KEY_FILE
  value: /run/secrets/tls/tls.key
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "pg.secretMounts" -}}
- name: app-secrets
  mountPath: /run/secrets/app
  readOnly: true
- name: tls
  mountPath: /run/secrets/tls
  readOnly: true
{{- end -}}

{{- define "pg.secretVolumes" -}}
- name: app-secrets
  secret:
    secretName: {{ .Values.secrets.existingSecret }}
    defaultMode: 0400
- name: tls
  secret:
    secretName: {{ .Values.secrets.tlsSecret }}
    defaultMode: 0400
{{- end -}}

{{- define "pg.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "pg.podSpecCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
