// TanStack Query keys and hooks: all server state of the UI goes through here.

import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { call } from './transport'
import type { ControlAction, ExecuteRequest, Execution, ExecutionStatus, Runbook, RunbookDraft, RunbookUpdate } from './types'
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

export function useExecutions(filter: ExecutionFilter) {
  const { runbookId, status, limit, offset = 0 } = filter
  return useQuery({
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
    mutationFn: (action: ControlAction) => call('control_execution', { id: executionId, action }),
    onSuccess: (execution: Execution) => {
      client.setQueryData(keys.execution(execution.id), execution)
      void client.invalidateQueries({ queryKey: keys.executions })
    },
  })
}
