// JSON shapes of the REST contract (see API.md in the shared brief); the Tauri commands return the same.

export type Shell = 'sh' | 'bash' | 'zsh'
export type FailurePolicy = 'stop' | 'continue'
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS'

export interface InstructionBlock {
  id: string
  kind: 'instruction'
  text: string
  confirm: boolean
}

export interface CommandBlock {
  id: string
  kind: 'command'
  script: string
  shell: Shell
  host: string
  timeout_secs: number | null
  /** SIGTERM to SIGKILL when stopped; unset (omitted) means the server's default. */
  stop_grace_secs?: number | null
  workdir: string | null
  env: Record<string, string>
  expect_exit_codes: number[]
  on_failure: FailurePolicy
  secrets: Record<string, string>
}

export interface ApiCallBlock {
  id: string
  kind: 'api_call'
  method: HttpMethod
  url: string
  headers: Record<string, string>
  body: string | null
  credential: string | null
  timeout_secs: number | null
  expect_status: number[]
  on_failure: FailurePolicy
}

export interface ConditionalBlock {
  id: string
  kind: 'conditional'
  expr: string
  then: Block[]
  else: Block[]
}

export interface TimerBlock {
  id: string
  kind: 'timer'
  seconds: number
}

export type Block = InstructionBlock | CommandBlock | ApiCallBlock | ConditionalBlock | TimerBlock
export type BlockKind = Block['kind']

export type ParamType = 'string' | 'number' | 'boolean'
export type ParamValue = string | number | boolean | null

export interface Param {
  name: string
  type: ParamType
  default: ParamValue
  required: boolean
  description?: string
}

/** The authored content of a runbook: what create takes and what a version stores. */
export interface RunbookDraft {
  name: string
  description: string
  tags: string[]
  params: Param[]
  blocks: Block[]
}

/** An update: the full content plus the version it was based on. */
export interface RunbookUpdate extends RunbookDraft {
  version: number
  message?: string
}

export interface Runbook extends RunbookDraft {
  id: string
  version: number
  created_at: string
  updated_at: string
  updated_by: string
}

/** A runbook as listed: blocks and params may be omitted. */
export interface RunbookSummary {
  id: string
  name: string
  description: string
  tags: string[]
  version: number
  created_at: string
  updated_at: string
  updated_by: string
}

export interface Page<T> {
  items: T[]
  total: number
}

export interface VersionInfo {
  version: number
  created_at: string
  created_by: string
  message: string
}

export const EXECUTION_STATUSES = [
  'queued',
  'running',
  'paused',
  'waiting',
  'succeeded',
  'failed',
  'stopped',
  'interrupted',
] as const
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number]

export type StepStatus =
  | 'pending'
  | 'running'
  | 'paused'
  | 'waiting'
  | 'succeeded'
  | 'failed'
  | 'skipped'
  | 'stopped'

/** What an api_call step received (the body may be cut at the engine's limit). */
export interface HttpResponseRecord {
  status: number
  headers: Record<string, string>
  body: string
  body_bytes: number
  truncated: boolean
}

export type Branch = 'then' | 'else'

export interface StepResult {
  block_id: string
  status: StepStatus
  exit_code: number | null
  http_status: number | null
  started_at: string | null
  finished_at: string | null
  output_bytes: number
  error?: string | null
  /** KEY=VALUE lines the step wrote to the file named by $RUNBOOK_OUTPUT. */
  outputs?: Record<string, string>
  /** The branch a conditional took. */
  branch?: Branch | null
  /** True when a retry copied this step's result from the run it retries. */
  reused?: boolean
  /** A timer's time left as of `at` (less by the time since while it runs). */
  timer?: { total_ms: number; remaining_ms: number; at: string }
  response?: HttpResponseRecord | null
}

export interface Execution {
  id: string
  runbook_id: string
  runbook_version: number
  runbook_name?: string
  status: ExecutionStatus
  params: Record<string, ParamValue>
  started_by: string
  created_at: string
  started_at: string | null
  finished_at: string | null
  steps: StepResult[]
  /** The run this one retries, if it is a retry. */
  retry_of?: string | null
  /** The block the retry restarted from. */
  retry_from?: string | null
  /** Who asked for the run to stop, and when: set once the executing process accepted it. */
  stop_requested?: StopRequest | null
}

export interface StopRequest {
  by: string
  at: string
}

export interface ExecuteRequest {
  params: Record<string, ParamValue>
  version: number | null
}

/** `kill`: a stop without the grace period, also accepted while a stop waits it out. */
export type ControlAction = 'pause' | 'resume' | 'stop' | 'acknowledge' | 'kill'

export interface OutputPage {
  offset: number
  next_offset: number
  complete: boolean
  text: string
}

export const ROLES = ['viewer', 'operator', 'editor', 'admin'] as const
export type Role = (typeof ROLES)[number]

export interface Me {
  name: string
  role: Role
}

/** One problem with one field, as sent in a 422's `error.details`. */
export interface FieldError {
  path: string
  code: string
  message: string
}

export type ExecutionEvent =
  | { type: 'step_started'; execution_id: string; block_id: string }
  | { type: 'output'; execution_id: string; block_id?: string | null; offset: number; text: string }
  | {
      type: 'step_finished'
      execution_id: string
      block_id: string
      status: StepStatus
      exit_code: number | null
      duration_ms: number
    }
  | { type: 'status'; execution_id: string; status: ExecutionStatus }
  | ({ type: 'stop_requested'; execution_id: string } & StopRequest)
  | CountdownEvent

/** A timer step's remaining time: sent when it starts, about every second, and on pause/resume. */
export interface CountdownEvent {
  type: 'countdown'
  execution_id: string
  block_id: string
  remaining_ms: number
  total_ms: number
  paused: boolean
}

export function isFinished(status: ExecutionStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'stopped' || status === 'interrupted'
}

/** A run that ended without succeeding can be retried from its first unsuccessful step. */
export function isRetryable(status: ExecutionStatus): boolean {
  return status === 'failed' || status === 'stopped' || status === 'interrupted'
}

// ---- Security: credentials, users, API keys, audit trail, vault ----

export const CREDENTIAL_KINDS = ['bearer', 'basic', 'header', 'secret', 'ssh_key'] as const
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number]

/** A stored credential as every API lists it: metadata only, never the value. */
export interface CredentialInfo {
  id: string
  name: string
  kind: CredentialKind
  description: string
  /** Set for `basic` credentials only. */
  username: string | null
  /** Set for `header` credentials only. */
  header_name: string | null
  /** The hosts an api_call block may send it to (HTTP kinds only), lowercase; empty: hosts written in the runbook. */
  hosts: string[]
  created_at: string
  updated_at: string
  last_used_at: string | null
  created_by: string
  updated_by: string
}

export interface CredentialCreate {
  name: string
  kind: CredentialKind
  value: string
  username?: string | null
  header_name?: string | null
  description?: string
  /** Only for bearer, basic and header credentials. */
  hosts?: string[]
}

/** Replaces the value and/or metadata; name and kind never change. */
export interface CredentialUpdate {
  value?: string
  username?: string | null
  header_name?: string | null
  description?: string
  /** Replaces the whole list when present. */
  hosts?: string[]
}

export interface User {
  id: string
  name: string
  role: Role
  created_at: string
  updated_at: string
  disabled_at: string | null
}

export interface UserCreate {
  name: string
  role: Role
}

export interface UserUpdate {
  role?: Role
  disabled?: boolean
}

export interface ApiKeyInfo {
  id: string
  name: string
  /** A key owned by a user acts with (and shows) the user's current role. */
  role: Role
  user_id: string | null
  user_name: string | null
  created_at: string
  last_used_at: string | null
  expires_at: string | null
  revoked_at: string | null
}

/** Exactly one of `role` and `user_id`. */
export interface ApiKeyCreate {
  name: string
  role?: Role
  user_id?: string
  expires_at?: string
}

/** The answer to a key creation: the only time the token is ever sent. */
export interface CreatedApiKey extends ApiKeyInfo {
  token: string
}

export const AUDIT_OUTCOMES = ['success', 'denied', 'failure'] as const
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number]

export interface AuditEntry {
  seq: number
  at: string
  actor: string
  action: string
  target: string | null
  outcome: AuditOutcome
  request_id: string | null
  detail: Record<string, unknown> | null
  prev_hash: string
  hash: string
}

/** A type alias, not an interface: it is also the Tauri command's argument record. */
export type AuditFilter = {
  actor?: string
  /** Exact, or a prefix ending in `.` such as `credential.`. */
  action?: string
  target?: string
  outcome?: AuditOutcome
  /** RFC 3339. */
  since?: string
  until?: string
  limit?: number
  offset?: number
}

export interface AuditVerification {
  ok: boolean
  checked: number
  broken: { seq: number; reason: string } | null
}

export type VaultSource = 'keychain' | 'key_file' | 'environment' | 'master_key_file'

export interface VaultStatus {
  source: VaultSource
  warning: string | null
}
