// The one place that talks to the backend: Tauri `invoke`/`listen` inside the desktop shell,
// same-origin HTTP (+ Server-Sent Events over fetch) in a browser. Everything above this module
// calls `call(command, args)` and `subscribeExecutionEvents(...)` and never knows which it got.

import { invoke } from '@tauri-apps/api/core'
import { listen } from '@tauri-apps/api/event'
import { ApiError, errorFromHttp, normalizeError } from './errors'
import { readSse } from './sse'
import type {
  ApiKeyCreate,
  ApiKeyInfo,
  AuditEntry,
  AuditFilter,
  AuditVerification,
  ControlAction,
  CreatedApiKey,
  CredentialCreate,
  CredentialInfo,
  CredentialUpdate,
  ExecuteRequest,
  Execution,
  ExecutionEvent,
  ExecutionStatus,
  Me,
  OutputPage,
  Page,
  Runbook,
  RunbookDraft,
  RunbookSummary,
  RunbookUpdate,
  User,
  UserCreate,
  UserUpdate,
  VaultStatus,
  VersionInfo,
} from './types'
import { isFinished } from './types'

/** Every command: its arguments (camelCase keys, as Tauri expects) and its result. */
export interface Commands {
  list_runbooks: { args: { q?: string; tag?: string; limit?: number; offset?: number }; result: Page<RunbookSummary> }
  get_runbook: { args: { id: string }; result: Runbook }
  create_runbook: { args: { body: RunbookDraft }; result: Runbook }
  update_runbook: { args: { id: string; body: RunbookUpdate }; result: Runbook }
  delete_runbook: { args: { id: string }; result: null }
  list_versions: { args: { id: string }; result: { items: VersionInfo[] } }
  get_version: { args: { id: string; version: number }; result: Runbook }
  rollback_runbook: { args: { id: string; version: number }; result: Runbook }
  execute_runbook: { args: { id: string; body: ExecuteRequest }; result: Execution }
  get_execution: { args: { id: string }; result: Execution }
  list_executions: {
    args: { runbookId?: string; status?: ExecutionStatus; limit?: number; offset?: number }
    result: Page<Execution>
  }
  read_output: { args: { id: string; offset: number; limit: number }; result: OutputPage }
  control_execution: { args: { id: string; action: ControlAction; blockId?: string }; result: Execution }
  retry_execution: { args: { id: string }; result: Execution }
  whoami: { args: Record<string, never>; result: Me }
  list_credentials: { args: Record<string, never>; result: { items: CredentialInfo[] } }
  get_credential: { args: { id: string }; result: CredentialInfo }
  create_credential: { args: { body: CredentialCreate }; result: CredentialInfo }
  update_credential: { args: { id: string; body: CredentialUpdate }; result: CredentialInfo }
  delete_credential: { args: { id: string }; result: null }
  list_users: { args: Record<string, never>; result: { items: User[] } }
  create_user: { args: { body: UserCreate }; result: User }
  update_user: { args: { id: string; body: UserUpdate }; result: User }
  delete_user: { args: { id: string }; result: null }
  list_api_keys: { args: Record<string, never>; result: { items: ApiKeyInfo[] } }
  create_api_key: { args: { body: ApiKeyCreate }; result: CreatedApiKey }
  revoke_api_key: { args: { id: string }; result: null }
  list_audit: { args: AuditFilter; result: Page<AuditEntry> }
  verify_audit: { args: Record<string, never>; result: AuditVerification }
  vault_status: { args: Record<string, never>; result: VaultStatus }
}
export type CommandName = keyof Commands
type Args<K extends CommandName> = Commands[K]['args']

type Query = Record<string, string | number | undefined>
interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: string
  query?: Query
  body?: unknown
}

const enc = encodeURIComponent

/** How each command maps onto the REST API. */
const ROUTES: { [K in CommandName]: (args: Args<K>) => HttpRequest } = {
  list_runbooks: (a) => ({ method: 'GET', path: 'runbooks', query: a }),
  get_runbook: (a) => ({ method: 'GET', path: `runbooks/${enc(a.id)}` }),
  create_runbook: (a) => ({ method: 'POST', path: 'runbooks', body: a.body }),
  update_runbook: (a) => ({ method: 'PUT', path: `runbooks/${enc(a.id)}`, body: a.body }),
  delete_runbook: (a) => ({ method: 'DELETE', path: `runbooks/${enc(a.id)}` }),
  list_versions: (a) => ({ method: 'GET', path: `runbooks/${enc(a.id)}/versions` }),
  get_version: (a) => ({ method: 'GET', path: `runbooks/${enc(a.id)}/versions/${a.version}` }),
  rollback_runbook: (a) => ({
    method: 'POST',
    path: `runbooks/${enc(a.id)}/rollback`,
    body: { version: a.version },
  }),
  execute_runbook: (a) => ({ method: 'POST', path: `runbooks/${enc(a.id)}/execute`, body: a.body }),
  get_execution: (a) => ({ method: 'GET', path: `executions/${enc(a.id)}` }),
  list_executions: (a) => ({
    method: 'GET',
    path: 'executions',
    query: { runbook_id: a.runbookId, status: a.status, limit: a.limit, offset: a.offset },
  }),
  read_output: (a) => ({
    method: 'GET',
    path: `executions/${enc(a.id)}/output`,
    query: { offset: a.offset, limit: a.limit },
  }),
  control_execution: (a) => ({
    method: 'POST',
    path: `executions/${enc(a.id)}/control`,
    body: a.blockId === undefined ? { action: a.action } : { action: a.action, block_id: a.blockId },
  }),
  retry_execution: (a) => ({ method: 'POST', path: `executions/${enc(a.id)}/retry`, body: {} }),
  whoami: () => ({ method: 'GET', path: 'me' }),
  list_credentials: () => ({ method: 'GET', path: 'credentials' }),
  get_credential: (a) => ({ method: 'GET', path: `credentials/${enc(a.id)}` }),
  create_credential: (a) => ({ method: 'POST', path: 'credentials', body: a.body }),
  update_credential: (a) => ({ method: 'PUT', path: `credentials/${enc(a.id)}`, body: a.body }),
  delete_credential: (a) => ({ method: 'DELETE', path: `credentials/${enc(a.id)}` }),
  list_users: () => ({ method: 'GET', path: 'users' }),
  create_user: (a) => ({ method: 'POST', path: 'users', body: a.body }),
  update_user: (a) => ({ method: 'PUT', path: `users/${enc(a.id)}`, body: a.body }),
  delete_user: (a) => ({ method: 'DELETE', path: `users/${enc(a.id)}` }),
  list_api_keys: () => ({ method: 'GET', path: 'keys' }),
  create_api_key: (a) => ({ method: 'POST', path: 'keys', body: a.body }),
  revoke_api_key: (a) => ({ method: 'DELETE', path: `keys/${enc(a.id)}` }),
  list_audit: (a) => ({ method: 'GET', path: 'audit', query: { ...a } }),
  verify_audit: () => ({ method: 'GET', path: 'audit/verify' }),
  vault_status: () => ({ method: 'GET', path: 'vault' }),
}

/** True inside the Tauri desktop shell. */
export function isTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window
}

// ---- API key (browser only) ----

const KEY_STORAGE = 'runbook-studio.api-key'
const keyListeners = new Set<() => void>()

export function getApiKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE)
  } catch {
    return null
  }
}

export function setApiKey(key: string | null): void {
  if (key) localStorage.setItem(KEY_STORAGE, key)
  else localStorage.removeItem(KEY_STORAGE)
  keyListeners.forEach((listener) => listener())
}

export function onApiKeyChange(listener: () => void): () => void {
  keyListeners.add(listener)
  return () => keyListeners.delete(listener)
}

// ---- HTTP ----

/** Builds a same-origin URL relative to the page, so the UI also works under a sub-path. */
export function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== '') params.set(key, String(value))
  }
  const search = params.toString()
  return search ? `${path}?${search}` : path
}

function authHeaders(): Record<string, string> {
  const key = getApiKey()
  return key ? { 'X-API-KEY': key } : {}
}

async function httpCall(request: HttpRequest): Promise<unknown> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders() }
  let body: string | undefined
  if (request.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(request.body)
  }
  let response: Response
  try {
    response = await fetch(buildUrl(request.path, request.query), { method: request.method, headers, body })
  } catch (error) {
    throw normalizeError(error)
  }
  const text = await response.text()
  if (!response.ok) throw errorFromHttp(response.status, text, response.statusText)
  if (!text) return null
  try {
    return JSON.parse(text)
  } catch {
    throw new ApiError('invalid_response', 'The server sent a response that is not JSON.', response.status)
  }
}

/** Calls one backend command over whichever transport this window has. */
export async function call<K extends CommandName>(command: K, args: Args<K>): Promise<Commands[K]['result']> {
  if (isTauri()) {
    try {
      return await invoke<Commands[K]['result']>(command, args)
    } catch (error) {
      // Arguments the shell cannot read are refused by Tauri itself, in a sentence.
      if (typeof error === 'string' && error.startsWith('invalid args')) throw new ApiError('invalid_type', error)
      throw normalizeError(error)
    }
  }
  const route = ROUTES[command] as (a: Args<K>) => HttpRequest
  return (await httpCall(route(args))) as Commands[K]['result']
}

// ---- Run reports ----

/** A run's report, saved: by the desktop in the Downloads directory (`path`), by a browser as a download. */
export interface SavedReport {
  fileName: string
  /** Where the desktop saved it; a browser does not tell. */
  path: string | null
  /** The console was cut at 16 MiB. */
  truncated: boolean
}

/** The file name a `Content-Disposition: attachment; filename="…"` header gives, if any. */
export function attachmentName(disposition: string | null): string | null {
  const match = /filename="([^"]+)"/.exec(disposition ?? '')
  return match ? match[1] : null
}

/** A file the server sent as an attachment, handed to the browser as a download. */
interface Downloaded {
  fileName: string
  bytes: number
  headers: Headers
}

/**
 * Fetches an attachment and hands it to the browser as a download. The API key travels in a
 * header, which a plain link cannot send: the file is read into a blob first.
 */
async function downloadAttachment(path: string, fallbackName: string): Promise<Downloaded> {
  let response: Response
  try {
    response = await fetch(buildUrl(path), { headers: authHeaders() })
  } catch (error) {
    throw normalizeError(error)
  }
  if (!response.ok) throw errorFromHttp(response.status, await response.text(), response.statusText)
  const fileName = attachmentName(response.headers.get('Content-Disposition')) ?? fallbackName
  let blob: Blob
  try {
    blob = await response.blob()
  } catch (error) {
    // The server cuts the body short when it fails after the first page: no file that looks whole.
    const reason = error instanceof Error ? ` (${error.message})` : ''
    throw new ApiError('network_error', `The download broke off before its end${reason}.`)
  }
  const url = URL.createObjectURL(blob)
  try {
    const link = document.createElement('a')
    link.href = url
    link.download = fileName
    document.body.appendChild(link)
    link.click()
    link.remove()
  } finally {
    // Revoked after the click has handed the file to the browser.
    setTimeout(() => URL.revokeObjectURL(url), 0)
  }
  return { fileName, bytes: blob.size, headers: response.headers }
}

/** Saves the run's Markdown report (summary, steps, console as plain text) as a file. */
export async function exportExecution(id: string): Promise<SavedReport> {
  if (isTauri()) {
    try {
      const saved = await invoke<{ path: string; file_name: string; truncated: boolean }>('export_execution', { id })
      return { fileName: saved.file_name, path: saved.path, truncated: saved.truncated }
    } catch (error) {
      throw normalizeError(error)
    }
  }
  const { fileName, headers } = await downloadAttachment(`executions/${enc(id)}/export`, `run-${id}.md`)
  return { fileName, path: null, truncated: headers.get('X-Console-Truncated') === 'true' }
}

/** A run's whole console, saved as a plain-text log: like a report, in Downloads or as a download. */
export interface SavedConsole {
  fileName: string
  /** Where the desktop saved it; a browser does not tell. */
  path: string | null
  /** The file's size, when known. */
  bytes: number | null
}

/**
 * Saves the run's console from its first byte to where it is now (a live run's so far), its
 * escape sequences stripped: unlike the run view and the report, with no cut.
 */
export async function saveConsole(id: string): Promise<SavedConsole> {
  if (isTauri()) {
    try {
      const saved = await invoke<{ path: string; file_name: string; bytes: number }>('save_console', { id })
      return { fileName: saved.file_name, path: saved.path, bytes: saved.bytes }
    } catch (error) {
      throw normalizeError(error)
    }
  }
  // The server strips the escapes by default.
  const { fileName, bytes } = await downloadAttachment(`executions/${enc(id)}/console`, `run-${id}.log`)
  return { fileName, path: null, bytes }
}

// ---- Events ----

export interface EventSubscription {
  onEvent: (event: ExecutionEvent) => void
  /**
   * Called when the stream could not be opened or broke; the caller falls back to polling. A
   * transient failure (the network, a server error) is retried with the same pauses as a stream
   * the server ended, and the stream's next event tells the caller it is back.
   */
  onError?: (error: ApiError) => void
}

const EVENT_TYPES = new Set(['step_started', 'output', 'step_finished', 'status', 'stop_requested', 'countdown'])

/** Accepts an event payload only if it has the fields the UI relies on. */
export function parseExecutionEvent(value: unknown): ExecutionEvent | null {
  if (typeof value !== 'object' || value === null) return null
  const record = value as Record<string, unknown>
  if (typeof record.type !== 'string' || !EVENT_TYPES.has(record.type)) return null
  if (typeof record.execution_id !== 'string') return null
  if (record.type === 'output' && (typeof record.offset !== 'number' || typeof record.text !== 'string')) {
    return null
  }
  if (record.type === 'stop_requested' && (typeof record.by !== 'string' || typeof record.at !== 'string')) return null
  if (
    record.type === 'countdown' &&
    (typeof record.block_id !== 'string' || typeof record.remaining_ms !== 'number' || typeof record.total_ms !== 'number')
  ) {
    return null
  }
  return value as ExecutionEvent
}

/** Streams the events of one execution until the returned function is called. */
export function subscribeExecutionEvents(executionId: string, subscription: EventSubscription): () => void {
  return isTauri() ? subscribeTauri(executionId, subscription) : subscribeSse(executionId, subscription)
}

function subscribeTauri(executionId: string, { onEvent, onError }: EventSubscription): () => void {
  let closed = false
  let unlisten: (() => void) | null = null
  // Whether the app follows the run for this subscription, which then tells it when it leaves.
  let following = false
  let retry: ReturnType<typeof setTimeout> | undefined
  const unfollow = () => void invoke('unfollow_execution', { id: executionId }).catch(() => {})
  // A run another process executes (a terminal's `run`, another desktop on the shared
  // database) has its events told only while someone follows it. Asked again while that fails
  // for a reason that can pass (the database away for a moment), each pause doubling; the
  // outage is reported once, and the console polls the stored output meanwhile.
  const follow = (pause: number, failing: boolean): Promise<void> =>
    invoke<boolean>('follow_execution', { id: executionId }).then(
      (followed) => {
        if (!followed) return
        if (closed) unfollow()
        else following = true
      },
      (error: unknown) => {
        if (closed) return
        const problem = normalizeError(error)
        if (!failing) onError?.(problem)
        if (!isTransient(problem)) return
        retry = setTimeout(() => {
          if (!closed) void follow(Math.min(pause * 2, SSE_RECONNECT_MS[1]), true)
        }, pause)
      },
    )
  listen<unknown>('execution-event', ({ payload }) => {
    const event = parseExecutionEvent(payload)
    // All executions share the one channel.
    if (!closed && event && event.execution_id === executionId) onEvent(event)
  })
    .then((stop) => {
      if (closed) {
        stop()
        return
      }
      unlisten = stop
      // Asked once listening, so nothing told is missed.
      return follow(SSE_RECONNECT_MS[0], false)
    })
    .catch((error: unknown) => {
      if (!closed) onError?.(normalizeError(error))
    })
  return () => {
    closed = true
    clearTimeout(retry)
    unlisten?.()
    if (following) unfollow()
  }
}

/** First pause before following a run again (a stream the server ended while the run goes on, a follow that failed); it doubles up to the last. */
export const SSE_RECONNECT_MS = [250, 5000] as const

function subscribeSse(executionId: string, { onEvent, onError }: EventSubscription): () => void {
  const abort = new AbortController()
  let ended = false
  // One connection: resolves when the server ends the stream; true if it carried a run's change.
  const follow = async (): Promise<boolean> => {
    const response = await fetch(buildUrl(`executions/${enc(executionId)}/events`), {
      headers: { Accept: 'text/event-stream', ...authHeaders() },
      signal: abort.signal,
    })
    if (!response.ok) throw errorFromHttp(response.status, await response.text(), response.statusText)
    if (!response.body) throw new ApiError('no_stream', 'The server sent no event stream.')
    let news = false
    await readSse(response.body, (message) => {
      let data: unknown
      try {
        data = JSON.parse(message.data)
      } catch {
        return
      }
      const event = parseExecutionEvent(data)
      if (!event || event.execution_id !== executionId) return
      if (event.type === 'status') ended = isFinished(event.status)
      else news = true
      onEvent(event)
    })
    return news
  }
  const run = async () => {
    let pause: number = SSE_RECONNECT_MS[0]
    let failing = false
    for (;;) {
      let news = false
      try {
        news = await follow()
        failing = false
      } catch (error) {
        if (abort.signal.aborted) return
        const problem = normalizeError(error)
        if (!isTransient(problem)) throw problem
        // Reported once per outage; the caller polls meanwhile and each reconnection's first
        // event (the run's status) says the stream is back.
        if (!failing) onError?.(problem)
        failing = true
      }
      if (ended || abort.signal.aborted) return
      // The server ends a stream that fell behind (what it missed is in the stored console), or
      // an older server the stream of a run another instance executes: follow again, sooner
      // after news.
      if (news) pause = SSE_RECONNECT_MS[0]
      await new Promise((resolve) => setTimeout(resolve, pause))
      if (abort.signal.aborted) return
      pause = Math.min(pause * 2, SSE_RECONNECT_MS[1])
    }
  }
  run().catch((error: unknown) => {
    if (!abort.signal.aborted) onError?.(normalizeError(error))
  })
  return () => abort.abort()
}

/** What the desktop app answers for its own trouble or a database away for a moment (a server's 5xx). */
const PASSING_CODES = new Set(['internal', 'unavailable', 'runner_unavailable'])

/** A failure that can pass by itself: the network, or the server's or the app's own trouble. */
function isTransient(error: ApiError): boolean {
  return (
    error.code === 'network_error' ||
    error.code === 'no_stream' ||
    PASSING_CODES.has(error.code) ||
    (error.status !== undefined && error.status >= 500)
  )
}

/** Checks an API key against `/me` without storing it. */
export async function verifyApiKey(key: string): Promise<Me> {
  let response: Response
  try {
    response = await fetch(buildUrl('me'), { headers: { Accept: 'application/json', 'X-API-KEY': key } })
  } catch (error) {
    throw normalizeError(error)
  }
  const text = await response.text()
  if (!response.ok) throw errorFromHttp(response.status, text, response.statusText)
  return JSON.parse(text) as Me
}
