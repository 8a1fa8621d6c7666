// The credential form's rules: which fields each kind needs, the name pattern, the hosts an HTTP
// credential is bound to, the body sent to the server (only the fields the kind uses) and where
// the server's refusals are shown.

import type { CredentialCreate, CredentialInfo, CredentialKind, CredentialUpdate } from '../api/types'

export interface KindSpec {
  label: string
  /** What the value is for this kind. */
  valueHint: string
  /** A multi-line value (a PEM key) gets a textarea. */
  multiline: boolean
  /** The extra field the kind requires. */
  needs: 'username' | 'header_name' | null
  /** An HTTP credential, which api_call blocks send and which may be bound to hosts. */
  http: boolean
}

export const KIND_SPECS: Record<CredentialKind, KindSpec> = {
  bearer: { label: 'Bearer token', valueHint: 'Sent as “Authorization: Bearer <value>”.', multiline: false, needs: null, http: true },
  basic: { label: 'Basic auth', valueHint: 'The password; sent with the username as HTTP Basic authentication.', multiline: false, needs: 'username', http: true },
  header: { label: 'Custom header', valueHint: 'Sent as the value of the header named below.', multiline: false, needs: 'header_name', http: true },
  secret: { label: 'Secret', valueHint: 'A plain secret, e.g. for a command’s environment.', multiline: false, needs: null, http: false },
  ssh_key: { label: 'SSH private key', valueHint: 'The whole private key, PEM or OpenSSH format, including its BEGIN and END lines.', multiline: true, needs: null, http: false },
}

export const NAME_PATTERN = /^[A-Za-z0-9._-]+$/
export const MAX_NAME_LENGTH = 100
export const MAX_VALUE_BYTES = 64 * 1024
export const MAX_HOSTS = 32

export type CredentialField = 'name' | 'kind' | 'value' | 'username' | 'header_name' | 'description' | 'hosts'
export const CREDENTIAL_FIELDS: readonly CredentialField[] = ['name', 'kind', 'value', 'username', 'header_name', 'description', 'hosts']

/** The server's error codes and the field each is about. */
export const CREDENTIAL_ERROR_FIELDS: Readonly<Record<string, CredentialField>> = {
  invalid_name: 'name',
  duplicate_name: 'name',
  invalid_kind: 'kind',
  missing_value: 'value',
  invalid_value: 'value',
  value_too_large: 'value',
  missing_username: 'username',
  invalid_username: 'username',
  missing_header_name: 'header_name',
  invalid_header_name: 'header_name',
  invalid_description: 'description',
  invalid_hosts: 'hosts',
  hosts_not_applicable: 'hosts',
}

export interface CredentialForm {
  name: string
  kind: CredentialKind
  value: string
  username: string
  header_name: string
  description: string
  hosts: string[]
}

export const EMPTY_CREDENTIAL_FORM: CredentialForm = {
  name: '',
  kind: 'bearer',
  value: '',
  username: '',
  header_name: '',
  description: '',
  hosts: [],
}

/** What is wrong with a name as typed, before the server is asked. */
export function nameProblem(name: string): string | null {
  if (name === '') return null
  if (name.length > MAX_NAME_LENGTH) return `At most ${MAX_NAME_LENGTH} characters.`
  if (!NAME_PATTERN.test(name)) return 'Only letters, digits, “.”, “_” and “-”.'
  return null
}

export function valueProblem(value: string): string | null {
  const bytes = new TextEncoder().encode(value).length
  return bytes > MAX_VALUE_BYTES ? `At most 64 KiB (this is ${Math.ceil(bytes / 1024)} KiB).` : null
}

/** The hosts as the server stores them: trimmed, lowercase, without empty or repeated entries. */
export function normalizeHosts(hosts: readonly string[]): string[] {
  const normalized = hosts.map((host) => host.trim().toLowerCase()).filter(Boolean)
  return [...new Set(normalized)]
}

/**
 * What is plainly wrong with the hosts as typed: a URL instead of a host, a space, too many. The
 * server checks the rest (wildcards, ports, IP addresses).
 */
export function hostsProblem(hosts: readonly string[]): string | null {
  const normalized = normalizeHosts(hosts)
  if (normalized.length > MAX_HOSTS) return `At most ${MAX_HOSTS} hosts.`
  for (const host of normalized) {
    if (/\s/.test(host)) return `“${host}” contains a space; separate hosts with commas.`
    if (host.includes('://')) return `“${host}” is a URL: give only the host, e.g. api.example.com, without “https://”.`
    if (host.includes('/')) return `“${host}” has a path: give only the host (and port), without “/…”.`
  }
  return null
}

/** True when every field the kind needs is filled in and nothing typed is known to be wrong. */
export function canSubmit(form: CredentialForm): boolean {
  const spec = KIND_SPECS[form.kind]
  if (form.name === '' || nameProblem(form.name) || form.value === '' || valueProblem(form.value)) return false
  if (spec.needs === 'username' && form.username.trim() === '') return false
  if (spec.needs === 'header_name' && form.header_name.trim() === '') return false
  if (spec.http && hostsProblem(form.hosts)) return false
  return true
}

/** The create request: the value as typed (never trimmed), and only the fields the kind uses. */
export function createBody(form: CredentialForm): CredentialCreate {
  const spec = KIND_SPECS[form.kind]
  const body: CredentialCreate = {
    name: form.name,
    kind: form.kind,
    value: form.value,
    username: spec.needs === 'username' ? form.username.trim() : null,
    header_name: spec.needs === 'header_name' ? form.header_name.trim() : null,
    description: form.description.trim(),
  }
  // The server refuses hosts on a secret or an SSH key, even an empty list.
  if (spec.http) body.hosts = normalizeHosts(form.hosts)
  return body
}

export interface ReplaceForm {
  value: string
  username: string
  header_name: string
  description: string
  hosts: string[]
}

export function replaceForm(credential: CredentialInfo): ReplaceForm {
  return {
    value: '',
    username: credential.username ?? '',
    header_name: credential.header_name ?? '',
    description: credential.description,
    hosts: credential.hosts,
  }
}

/** The update request: the new value if one was typed, plus the metadata that changed (hosts as a whole list). */
export function updateBody(credential: CredentialInfo, form: ReplaceForm): CredentialUpdate {
  const body: CredentialUpdate = {}
  if (form.value !== '') body.value = form.value
  const spec = KIND_SPECS[credential.kind]
  if (spec.needs === 'username' && form.username.trim() !== (credential.username ?? '')) body.username = form.username.trim()
  if (spec.needs === 'header_name' && form.header_name.trim() !== (credential.header_name ?? '')) body.header_name = form.header_name.trim()
  if (form.description.trim() !== credential.description) body.description = form.description.trim()
  const hosts = normalizeHosts(form.hosts)
  if (spec.http && hosts.join(',') !== credential.hosts.join(',')) body.hosts = hosts
  return body
}

/** "user alice" for basic, "header X-Token" for header credentials. */
export function credentialDetail(credential: CredentialInfo): { label: string; value: string } | null {
  if (credential.kind === 'basic' && credential.username) return { label: 'user', value: credential.username }
  if (credential.kind === 'header' && credential.header_name) return { label: 'header', value: credential.header_name }
  return null
}
