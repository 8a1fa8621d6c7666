// All runs, filterable by status.

import { useSearchParams } from 'react-router'
import { EXECUTION_STATUSES, type ExecutionStatus } from '../api/types'
import { PagedRuns } from './RunsTab'

export function ExecutionsPage() {
  const [params, setParams] = useSearchParams()
  const raw = params.get('status')
  const status = EXECUTION_STATUSES.find((s) => s === raw) as ExecutionStatus | undefined
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
      <PagedRuns status={status} showRunbook emptyText="No runs match." />
    </div>
  )
}
