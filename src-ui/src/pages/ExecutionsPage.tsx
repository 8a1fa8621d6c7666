// All runs, filterable by status.

import { useSearchParams } from 'react-router'
import { useExecutions } from '../api/queries'
import { EXECUTION_STATUSES, type ExecutionStatus } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { ExecutionTable } from './RunsTab'

export function ExecutionsPage() {
  const [params, setParams] = useSearchParams()
  const raw = params.get('status')
  const status = EXECUTION_STATUSES.find((s) => s === raw) as ExecutionStatus | undefined
  const executions = useExecutions(undefined, status)
  return (
    <div className="page">
      <header className="page-header">
        <h1 className="page-title">All runs</h1>
        <label className="inline-field">
          Status
          <select className="input" value={status ?? ''} onChange={(e) => setParams(e.target.value ? { status: e.target.value } : {})}>
            <option value="">any</option>
            {EXECUTION_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </header>
      {executions.isError && <ErrorBanner error={executions.error} title="Could not load the runs" />}
      {executions.data && executions.data.items.length === 0 && <div className="empty-card">No runs match.</div>}
      {executions.data && executions.data.items.length > 0 && (
        <div className="card card-flush">
          <ExecutionTable executions={executions.data.items} showRunbook />
        </div>
      )}
    </div>
  )
}
