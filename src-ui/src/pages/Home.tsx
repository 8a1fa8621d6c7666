// The start page: what to do next, and the latest runs.

import { Workflow } from 'lucide-react'
import { useExecutions } from '../api/queries'
import { ExecutionTable } from './RunsTab'

export function Home() {
  const executions = useExecutions({ limit: 10 })
  const recent = executions.data?.items.slice(0, 10) ?? []
  return (
    <div className="page">
      <div className="hero card">
        <span className="hero-mark" aria-hidden>
          <Workflow size={28} />
        </span>
        <div>
          <h1 className="page-title">Welcome to Runbook Studio</h1>
          <p className="muted">Pick a runbook on the left, search by name or tag, or create a new one.</p>
        </div>
      </div>
      <h2 className="section-title">Recent runs</h2>
      {recent.length === 0 ? (
        <div className="empty-card">{executions.isPending ? 'Loading…' : 'No runs yet.'}</div>
      ) : (
        <div className="card card-flush">
          <ExecutionTable executions={recent} showRunbook />
        </div>
      )}
    </div>
  )
}
