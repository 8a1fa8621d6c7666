// The Audit page's rules: the filter sent to the server and how a chain check reads.

import type { AuditEntry, AuditFilter, AuditOutcome, AuditVerification } from '../api/types'
import { startOfLocalDay } from './access'

export interface AuditFilterForm {
  actor: string
  /** Exact action, or a prefix ending in “.”. */
  action: string
  target: string
  outcome: AuditOutcome | ''
  /** `YYYY-MM-DD`: from the start of that local day. */
  since: string
}

export const EMPTY_AUDIT_FILTER: AuditFilterForm = { actor: '', action: '', target: '', outcome: '', since: '' }

/** The request for one page: blank fields left out, the date as an RFC 3339 time; `until` see `snapshotUntil`. */
export function auditFilter(form: AuditFilterForm, limit: number, offset: number, until?: string): AuditFilter {
  const filter: AuditFilter = { limit, offset }
  if (until) filter.until = until
  if (form.actor.trim()) filter.actor = form.actor.trim()
  if (form.action.trim()) filter.action = form.action.trim()
  if (form.target.trim()) filter.target = form.target.trim()
  if (form.outcome) filter.outcome = form.outcome
  const since = form.since ? startOfLocalDay(form.since) : null
  if (since) filter.since = since
  return filter
}

/** An RFC 3339 time in microseconds since the epoch (the precision of the trail's times; exact in a double). */
function epochMicros(at: string): number | null {
  const match = /^(.+?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i.exec(at)
  if (!match) return null
  const seconds = Date.parse(`${match[1]}${match[3]}`)
  if (Number.isNaN(seconds)) return null
  return seconds * 1000 + Number((match[2] ?? '').slice(0, 6).padEnd(6, '0'))
}

function fromEpochMicros(micros: number): string {
  const ms = Math.floor(micros / 1000)
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micros - ms * 1000).padStart(3, '0')}Z`
}

/**
 * The `until` (exclusive) that holds later pages to the trail a first page showed: just after
 * its newest time. Records appended since go on top of an offset-paged list, newest first, and
 * would push records already shown onto the next page.
 */
export function snapshotUntil(entries: readonly AuditEntry[]): string | undefined {
  const times = entries.map((entry) => epochMicros(entry.at)).filter((time): time is number => time !== null)
  return times.length > 0 ? fromEpochMicros(Math.max(...times) + 1) : undefined
}

export function isFiltered(form: AuditFilterForm): boolean {
  return Object.values(form).some((value) => value.trim() !== '')
}

/** Every action the trail records, and the prefixes that group them. */
export const AUDIT_ACTIONS = [
  'runbook.',
  'runbook.create',
  'runbook.update',
  'runbook.delete',
  'runbook.rollback',
  'execution.',
  'execution.start',
  'execution.retry',
  'execution.pause',
  'execution.resume',
  'execution.stop',
  'execution.acknowledge',
  'execution.kill',
  'execution.finish',
  'credential.',
  'credential.create',
  'credential.update',
  'credential.delete',
  'credential.use',
  'key.',
  'key.create',
  'key.revoke',
  'user.',
  'user.create',
  'user.update',
  'user.delete',
  'auth.failure',
  'vault.rotate',
] as const

const count = (n: number) => `${n.toLocaleString('en-US')} ${n === 1 ? 'record' : 'records'}`

/** The headline of a chain check: intact with how much was checked, or where it broke and why. */
export function verificationText(result: AuditVerification): string {
  if (result.ok) return `Chain intact — ${count(result.checked)} checked`
  if (result.broken) return `Broken at record #${result.broken.seq}: ${result.broken.reason}`
  return `Chain broken — ${count(result.checked)} checked`
}

/** `detail` as indented JSON, or a note that there is none. */
export function detailText(detail: Record<string, unknown> | null): string {
  return detail === null || Object.keys(detail).length === 0 ? '(no detail)' : JSON.stringify(detail, null, 2)
}
