// TanStack Query keys and hooks: all server state of the UI goes through here.

import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { call, exportExecution, saveConsole } from './transport'
import type {
  ApiKeyCreate,
  AuditFilter,
  ControlAction,
  CredentialCreate,
  CredentialUpdate,
  ExecuteRequest,
  Execution,
  ExecutionStatus,
  Runbook,
  RunbookDraft,
  RunbookUpdate,
  UserCreate,
  UserUpdate,
} from './types'
import { isFinished } from './types'

export const keys = {
  me: ['me'] as const,
  runbooks: ['runbooks'] as const,
  runbookList: (q: string) => ['runbooks', 'list', q] as const,
  runbook: (id: string) => ['runbooks', 'detail', id] as const,
  versions: (id: string) => ['runbooks', 'versions', id] as const,
  version: (id: string, version: number) => ['runbooks', 'version', id, version] as const,
  executions: ['executions'] as const,
  executionList: (filter: ExecutionFilter) =>
    ['executions', 'list', filter.runbookId ?? null, filter.status ?? null, filter.limit, filter.offset ?? 0] as const,
  execution: (id: string) => ['executions', 'detail', id] as const,
  credentials: ['credentials'] as const,
  users: ['users'] as const,
  apiKeys: ['keys'] as const,
  audit: ['audit'] as const,
  auditList: (filter: AuditFilter) =>
    [
      'audit',
      'list',
      filter.actor ?? null,
      filter.action ?? null,
      filter.target ?? null,
      filter.outcome ?? null,
      filter.since ?? null,
      filter.until ?? null,
      filter.limit ?? null,
      filter.offset ?? 0,
    ] as const,
  vault: ['vault'] as const,
}

export function useMe(enabled = true) {
  return useQuery({ queryKey: keys.me, queryFn: () => call('whoami', {}), enabled, retry: false })
}

export function useRunbookList(q: string) {
  return useQuery({
    queryKey: keys.runbookList(q),
    queryFn: () => call('list_runbooks', { q: q || undefined, limit: 200 }),
    placeholderData: keepPreviousData,
  })
}

export function useRunbook(id: string) {
  return useQuery({ queryKey: keys.runbook(id), queryFn: () => call('get_runbook', { id }) })
}

export function useVersions(id: string) {
  return useQuery({ queryKey: keys.versions(id), queryFn: () => call('list_versions', { id }) })
}

export function useVersion(id: string, version: number | null) {
  return useQuery({
    queryKey: keys.version(id, version ?? 0),
    queryFn: () => call('get_version', { id, version: version ?? 0 }),
    enabled: version !== null,
    // A version never changes once written.
    staleTime: Infinity,
  })
}

/** Which runs to list, and which page of them. */
export interface ExecutionFilter {
  runbookId?: string
  status?: ExecutionStatus
  limit: number
  offset?: number
}

export function useExecutions(filter: ExecutionFilter, { enabled = true }: { enabled?: boolean } = {}) {
  const { runbookId, status, limit, offset = 0 } = filter
  return useQuery({
    enabled,
    queryKey: keys.executionList(filter),
    queryFn: () => call('list_executions', { runbookId, status, limit, offset }),
    placeholderData: keepPreviousData,
    refetchInterval: (query) =>
      query.state.data?.items.some((execution) => !isFinished(execution.status)) ? 2000 : false,
  })
}

export function useExecution(id: string) {
  return useQuery({
    queryKey: keys.execution(id),
    queryFn: () => call('get_execution', { id }),
    refetchInterval: (query) => {
      const data = query.state.data
      return data && isFinished(data.status) ? false : 500
    },
  })
}

/** Stores a fresh copy of a runbook and marks lists and history as stale. */
function useRunbookSaved() {
  const client = useQueryClient()
  return (runbook: Runbook) => {
    client.setQueryData(keys.runbook(runbook.id), runbook)
    void client.invalidateQueries({ queryKey: keys.runbooks, predicate: (q) => q.queryKey[1] !== 'detail' })
  }
}

export function useCreateRunbook() {
  const saved = useRunbookSaved()
  return useMutation({
    mutationFn: (body: RunbookDraft) => call('create_runbook', { body }),
    onSuccess: saved,
  })
}

export function useUpdateRunbook(id: string) {
  const saved = useRunbookSaved()
  return useMutation({
    mutationFn: (body: RunbookUpdate) => call('update_runbook', { id, body }),
    onSuccess: saved,
  })
}

export function useRollback(id: string) {
  const saved = useRunbookSaved()
  return useMutation({
    mutationFn: (version: number) => call('rollback_runbook', { id, version }),
    onSuccess: saved,
  })
}

export function useDeleteRunbook() {
  const client = useQueryClient()
  return useMutation({
    mutationFn: (id: string) => call('delete_runbook', { id }),
    onSuccess: (_data, id) => {
      client.removeQueries({ queryKey: keys.runbook(id) })
      void client.invalidateQueries({ queryKey: keys.runbooks })
    },
  })
}

export function useExecute(runbookId: string) {
  const client = useQueryClient()
  return useMutation({
    mutationFn: (body: ExecuteRequest) => call('execute_runbook', { id: runbookId, body }),
    // The 202 body may be a partial execution; the run view fetches the full one.
    onSuccess: () => client.invalidateQueries({ queryKey: keys.executions }),
  })
}

/** Starts a new run that continues a failed, stopped or interrupted one from its failed step. */
export function useRetry(executionId: string) {
  const client = useQueryClient()
  return useMutation({
    mutationFn: () => call('retry_execution', { id: executionId }),
    // Like a start, the 202 body may be partial: the run view fetches the full one.
    onSuccess: () => client.invalidateQueries({ queryKey: keys.executions }),
  })
}

export function useControl(executionId: string) {
  const client = useQueryClient()
  return useMutation({
    // An acknowledgement names the step it answers: sent twice, it cannot confirm the next one.
    mutationFn: ({ action, blockId }: { action: ControlAction; blockId?: string }) =>
      call('control_execution', { id: executionId, action, blockId }),
    onSuccess: (execution: Execution) => {
      client.setQueryData(keys.execution(execution.id), execution)
      void client.invalidateQueries({ queryKey: keys.executions })
    },
  })
}

/** Saves the run's Markdown report: a download in a browser, a file in Downloads on the desktop. */
export function useExportReport(executionId: string) {
  return useMutation({ mutationFn: () => exportExecution(executionId) })
}

/** Saves the run's whole console as a plain-text log file, the same way as its report. */
export function useSaveConsole(executionId: string) {
  return useMutation({ mutationFn: () => saveConsole(executionId) })
}

// ---- Security (admin pages) ----
//
// Credential values and API key tokens travel in mutation variables and results. Those mutations
// use `gcTime: 0`, and the dialogs that run them reset them once done, so TanStack Query drops the
// mutation (and the secret in it) as soon as nothing observes it. Queries only ever hold metadata.

const SECRET_MUTATION = { gcTime: 0 } as const

/** Marks what an admin change may have touched as stale, the audit trail included. */
function useInvalidate() {
  const client = useQueryClient()
  return (...queryKeys: (readonly string[])[]) => {
    for (const queryKey of [...queryKeys, keys.audit]) void client.invalidateQueries({ queryKey })
  }
}

export function useCredentials(enabled = true) {
  return useQuery({ queryKey: keys.credentials, queryFn: () => call('list_credentials', {}), enabled })
}

export function useCreateCredential() {
  const invalidate = useInvalidate()
  return useMutation({
    ...SECRET_MUTATION,
    mutationFn: (body: CredentialCreate) => call('create_credential', { body }),
    onSuccess: () => invalidate(keys.credentials),
  })
}

export function useUpdateCredential(id: string) {
  const invalidate = useInvalidate()
  return useMutation({
    ...SECRET_MUTATION,
    mutationFn: (body: CredentialUpdate) => call('update_credential', { id, body }),
    onSuccess: () => invalidate(keys.credentials),
  })
}

export function useDeleteCredential() {
  const invalidate = useInvalidate()
  return useMutation({
    mutationFn: (id: string) => call('delete_credential', { id }),
    onSuccess: () => invalidate(keys.credentials),
  })
}

export function useUsers(enabled = true) {
  return useQuery({ queryKey: keys.users, queryFn: () => call('list_users', {}), enabled })
}

export function useCreateUser() {
  const invalidate = useInvalidate()
  return useMutation({
    mutationFn: (body: UserCreate) => call('create_user', { body }),
    onSuccess: () => invalidate(keys.users),
  })
}

export function useUpdateUser() {
  const invalidate = useInvalidate()
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: UserUpdate }) => call('update_user', { id, body }),
    // A user's keys act with the user's role: their listed role changes with it.
    onSuccess: () => invalidate(keys.users, keys.apiKeys),
  })
}

export function useDeleteUser() {
  const invalidate = useInvalidate()
  return useMutation({
    mutationFn: (id: string) => call('delete_user', { id }),
    // Deleting a user revokes its keys.
    onSuccess: () => invalidate(keys.users, keys.apiKeys),
  })
}

export function useApiKeys(enabled = true) {
  return useQuery({ queryKey: keys.apiKeys, queryFn: () => call('list_api_keys', {}), enabled })
}

/** Creates a key; the result carries the token, shown once and never cached. */
export function useCreateApiKey() {
  const invalidate = useInvalidate()
  return useMutation({
    ...SECRET_MUTATION,
    mutationFn: (body: ApiKeyCreate) => call('create_api_key', { body }),
    onSuccess: () => invalidate(keys.apiKeys),
  })
}

export function useRevokeApiKey() {
  const invalidate = useInvalidate()
  return useMutation({
    mutationFn: (id: string) => call('revoke_api_key', { id }),
    onSuccess: () => invalidate(keys.apiKeys),
  })
}

export function useAudit(filter: AuditFilter, enabled = true) {
  return useQuery({
    queryKey: keys.auditList(filter),
    queryFn: () => call('list_audit', filter),
    placeholderData: keepPreviousData,
    enabled,
  })
}

/** Walks the audit trail's hash chain on demand. */
export function useVerifyAudit() {
  return useMutation({ mutationFn: () => call('verify_audit', {}) })
}

export function useVaultStatus(enabled = true) {
  return useQuery({
    queryKey: keys.vault,
    queryFn: () => call('vault_status', {}),
    enabled,
    staleTime: Infinity,
    retry: false,
  })
}
