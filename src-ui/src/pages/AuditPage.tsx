// Audit (admin): the append-only trail of every mutation, run control, credential use and failed
// sign-in, filterable and paged newest first; a row opens to its detail and hashes, and
// "Verify chain" re-checks the whole hash chain on the server.

import { ChevronDown, ChevronRight, ShieldCheck, ShieldX } from 'lucide-react'
import { Fragment, useState } from 'react'
import { useAudit, useVerifyAudit } from '../api/queries'
import { AUDIT_OUTCOMES, type AuditEntry, type AuditOutcome, type AuditVerification } from '../api/types'
import { isForbidden } from '../api/errors'
import { AdminOnly, RequireAdmin } from '../components/AdminOnly'
import { ErrorBanner } from '../components/ErrorBanner'
import { formatDateTime, formatRelative, shortId } from '../util/format'
import { useDebounced, useNow } from '../util/hooks'
import { localDate } from './access'
import {
  AUDIT_ACTIONS,
  auditFilter,
  detailText,
  EMPTY_AUDIT_FILTER,
  isFiltered,
  snapshotUntil,
  verificationText,
  type AuditFilterForm,
} from './audit'
import { Pager } from './RunsTab'

export const AUDIT_PAGE_SIZE = 50

export function AuditPage() {
  return (
    <RequireAdmin page="The audit trail">
      <Audit />
    </RequireAdmin>
  )
}

function Audit() {
  const [form, setForm] = useState<AuditFilterForm>(EMPTY_AUDIT_FILTER)
  const applied = useDebounced(form, 300)
  const [offset, setOffset] = useState(0)
  // Pages after the first show the trail as the first page showed it (see `snapshotUntil`).
  const [until, setUntil] = useState<string | undefined>(undefined)
  // A new filter starts again on the first page.
  const [seenFilter, setSeenFilter] = useState(applied)
  if (applied !== seenFilter) {
    setSeenFilter(applied)
    setOffset(0)
    setUntil(undefined)
  }
  const audit = useAudit(auditFilter(applied, AUDIT_PAGE_SIZE, offset, until))
  const verify = useVerifyAudit()
  const set = (patch: Partial<AuditFilterForm>) => setForm((current) => ({ ...current, ...patch }))
  const turnPage = (next: number) => {
    // The first page is the live trail; leaving it holds the pages to what it showed.
    if (next === 0) setUntil(undefined)
    else if (offset === 0 && audit.data && !audit.isPlaceholderData) setUntil(snapshotUntil(audit.data.items))
    setOffset(next)
  }
  const today = localDate(useNow(false))

  if (audit.isError && isForbidden(audit.error)) return <AdminOnly page="The audit trail" />

  return (
    <div className="page page-wide">
      <header className="page-header">
        <div className="page-title-block">
          <h1 className="page-title">Audit trail</h1>
          <p className="page-lead muted">
            Every change, run control, credential use and refused sign-in, append-only. Each record carries the hash of the one
            before it, so any edit or removal breaks the chain.
          </p>
        </div>
        <div className="page-actions">
          <button type="button" className="btn btn-primary" disabled={verify.isPending} onClick={() => verify.mutate()}>
            <ShieldCheck size={16} aria-hidden /> {verify.isPending ? 'Verifying…' : 'Verify chain'}
          </button>
        </div>
      </header>
      {verify.data && <VerifyResult result={verify.data} />}
      {verify.isError && <ErrorBanner error={verify.error} title="The chain could not be verified" />}

      <form className="filters card" role="search" aria-label="Filter the audit trail" onSubmit={(e) => e.preventDefault()}>
        <label className="filter">
          <span className="field-label">Actor</span>
          <input className="input" value={form.actor} placeholder="alice" onChange={(e) => set({ actor: e.target.value })} />
        </label>
        <label className="filter">
          <span className="field-label">Action</span>
          <input
            className="input mono"
            value={form.action}
            placeholder="credential."
            list="audit-actions"
            title="An exact action, or a prefix ending in “.”"
            onChange={(e) => set({ action: e.target.value })}
          />
          <datalist id="audit-actions">
            {AUDIT_ACTIONS.map((action) => (
              <option key={action} value={action} />
            ))}
          </datalist>
        </label>
        <label className="filter">
          <span className="field-label">Target</span>
          <input className="input mono" value={form.target} placeholder="payments-token" title="A name (any kind), or a whole target such as credential:payments-token" onChange={(e) => set({ target: e.target.value })} />
        </label>
        <label className="filter filter-sm">
          <span className="field-label">Outcome</span>
          <select className="input" value={form.outcome} onChange={(e) => set({ outcome: e.target.value as AuditOutcome | '' })}>
            <option value="">any</option>
            {AUDIT_OUTCOMES.map((outcome) => (
              <option key={outcome}>{outcome}</option>
            ))}
          </select>
        </label>
        <label className="filter filter-sm">
          <span className="field-label">Since</span>
          <input className="input" type="date" max={today} value={form.since} onChange={(e) => set({ since: e.target.value })} />
        </label>
        {isFiltered(form) && (
          <button type="button" className="btn btn-ghost btn-sm filter-clear" onClick={() => setForm(EMPTY_AUDIT_FILTER)}>
            Clear filters
          </button>
        )}
      </form>

      {audit.isPending && <div className="loading">Loading the audit trail…</div>}
      {audit.isError && <ErrorBanner error={audit.error} title="Could not load the audit trail" />}
      {audit.data && audit.data.items.length === 0 && offset === 0 && (
        <div className="empty-card">{isFiltered(applied) ? 'No records match these filters.' : 'The audit trail is empty.'}</div>
      )}
      {audit.data && (audit.data.items.length > 0 || offset > 0) && (
        <div className="card card-flush table-scroll">
          <AuditTable entries={audit.data.items} />
          <Pager
            offset={offset}
            limit={AUDIT_PAGE_SIZE}
            total={audit.data.total ?? audit.data.items.length}
            shown={audit.data.items.length}
            onOffset={turnPage}
          />
        </div>
      )}
    </div>
  )
}

/** The outcome of "Verify chain", said plainly. */
export function VerifyResult({ result }: { result: AuditVerification }) {
  const Icon = result.ok ? ShieldCheck : ShieldX
  return (
    <div className={`verify-result ${result.ok ? 'verify-ok' : 'verify-broken'}`} role="status" data-testid="verify-result">
      <Icon size={22} aria-hidden />
      <strong>{verificationText(result)}</strong>
    </div>
  )
}

export function AuditTable({ entries }: { entries: AuditEntry[] }) {
  const [open, setOpen] = useState<ReadonlySet<number>>(() => new Set())
  const toggle = (seq: number) => {
    const next = new Set(open)
    if (next.has(seq)) next.delete(seq)
    else next.add(seq)
    setOpen(next)
  }
  return (
    <table className="table audit-table" aria-label="Audit records">
      <thead>
        <tr>
          <th className="audit-toggle-cell">
            <span className="visually-hidden">Details</span>
          </th>
          <th>Time</th>
          <th>Actor</th>
          <th>Action</th>
          <th>Target</th>
          <th>Outcome</th>
          <th>Request id</th>
        </tr>
      </thead>
      <tbody>
        {entries.map((entry) => {
          const expanded = open.has(entry.seq)
          return (
            <Fragment key={entry.seq}>
              <tr
                className={`audit-row${expanded ? ' is-open' : ''}`}
                data-testid={`audit-${entry.seq}`}
                onClick={(e) => {
                  // The toggle button handles its own click; a click on a selected text keeps the selection.
                  if ((e.target as HTMLElement).closest('button') || window.getSelection()?.toString()) return
                  toggle(entry.seq)
                }}
              >
                <td className="audit-toggle-cell">
                  <button
                    type="button"
                    className="icon-btn icon-btn-sm"
                    aria-expanded={expanded}
                    aria-label={`Details of record ${entry.seq}`}
                    onClick={() => toggle(entry.seq)}
                  >
                    {expanded ? <ChevronDown size={15} /> : <ChevronRight size={15} />}
                  </button>
                </td>
                <td className="nowrap" title={`${formatRelative(entry.at)} · ${entry.at}`}>
                  {formatDateTime(entry.at)}
                </td>
                <td>{entry.actor}</td>
                <td className="mono audit-action">{entry.action}</td>
                <td className="mono audit-target" title={entry.target ?? undefined}>
                  {entry.target ?? <span className="muted">—</span>}
                </td>
                <td>
                  <OutcomeBadge outcome={entry.outcome} />
                </td>
                <td className="mono audit-request" title={entry.request_id ?? undefined}>
                  {entry.request_id ? shortId(entry.request_id) : <span className="muted">—</span>}
                </td>
              </tr>
              {expanded && (
                <tr className="audit-detail-row">
                  <td colSpan={7}>
                    <dl className="audit-detail" aria-label={`Record ${entry.seq}`}>
                      <dt>Record</dt>
                      <dd className="mono">#{entry.seq}</dd>
                      {entry.request_id && (
                        <>
                          <dt>Request id</dt>
                          <dd className="mono">{entry.request_id}</dd>
                        </>
                      )}
                      <dt>Hash</dt>
                      <dd className="mono hash">{entry.hash}</dd>
                      <dt>Previous hash</dt>
                      <dd className="mono hash">{entry.prev_hash}</dd>
                      <dt>Detail</dt>
                      <dd>
                        <pre className="code-view audit-json">{detailText(entry.detail)}</pre>
                      </dd>
                    </dl>
                  </td>
                </tr>
              )}
            </Fragment>
          )
        })}
      </tbody>
    </table>
  )
}

function OutcomeBadge({ outcome }: { outcome: AuditOutcome }) {
  return <span className={`badge badge-outcome-${outcome}`}>{outcome}</span>
}
