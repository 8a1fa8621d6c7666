import { render, screen } from '@testing-library/react'
import { MemoryRouter } from 'react-router'
import { describe, expect, it } from 'vitest'
import type { Execution } from '../api/types'
import { ExecutionTable } from './RunsTab'

const run: Execution = {
  id: 'run-1',
  runbook_id: 'rb',
  runbook_version: 3,
  runbook_name: 'Restart payments',
  status: 'failed',
  params: {},
  started_by: 'alice',
  created_at: '2026-01-01T00:00:00Z',
  started_at: '2026-01-01T00:00:00Z',
  finished_at: '2026-01-01T00:00:05Z',
  steps: [],
}

describe('ExecutionTable', () => {
  it('names each run\'s link with its status, which the link\'s label would otherwise hide', () => {
    render(
      <MemoryRouter>
        <ExecutionTable executions={[run]} />
      </MemoryRouter>,
    )
    expect(screen.getByRole('link', { name: 'Open run run-1, failed' })).toHaveAttribute('href', '/executions/run-1')
  })

  it('marks a live run whose stop was accepted as stopping, with who asked, and an ended one not', () => {
    const stop_requested = { by: 'bob', at: '2026-01-01T00:00:03Z' }
    render(
      <MemoryRouter>
        <ExecutionTable
          executions={[
            { ...run, id: 'live', status: 'running', finished_at: null, stop_requested },
            { ...run, id: 'ended', status: 'stopped', stop_requested },
          ]}
        />
      </MemoryRouter>,
    )
    const live = screen.getByRole('link', { name: 'Open run live, running, stop requested by bob' })
    expect(live).toHaveTextContent('stopping')
    expect(screen.getByRole('link', { name: 'Open run ended, stopped' })).not.toHaveTextContent('stopping')
  })
})
