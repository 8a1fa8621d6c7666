import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { act, render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { createMemoryRouter, RouterProvider } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import { keys } from '../api/queries'
import type { Runbook } from '../api/types'
import { forgetDraft } from '../editor/draftCache'

const call = vi.fn()
vi.mock('../api/transport', () => ({ call: (...args: unknown[]) => call(...args) }))

import { RunbookPage } from './RunbookPage'

const stored: Runbook = {
  id: 'rb',
  name: 'Restart payments',
  description: '',
  tags: [],
  params: [],
  blocks: [{ id: 'intro', kind: 'instruction', text: 'Check the dashboard', confirm: false }],
  version: 2,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  updated_by: 'alice',
}

/** What `get_runbook` answers, or the error it fails with. */
let server: { runbook: Runbook; down: boolean }

function renderPage() {
  call.mockImplementation(async (command: string) => {
    switch (command) {
      case 'get_runbook':
        if (server.down) throw new ApiError('network_error', 'Could not reach the server (Failed to fetch).')
        return server.runbook
      default:
        throw new Error(`unexpected ${command}`)
    }
  })
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  const router = createMemoryRouter([{ path: '/runbooks/:id', element: <RunbookPage /> }], { initialEntries: ['/runbooks/rb'] })
  render(
    <QueryClientProvider client={client}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  )
  return client
}

beforeEach(() => {
  call.mockReset()
  server = { runbook: stored, down: false }
})

afterEach(() => forgetDraft('rb'))

describe('RunbookPage', () => {
  it('keeps the editor and unsaved edits on screen while a refresh fails, and tries again on request', async () => {
    const user = userEvent.setup()
    const client = renderPage()
    const name = await screen.findByLabelText('Name')
    await user.type(name, ' now')

    server.down = true
    await act(() => client.invalidateQueries({ queryKey: keys.runbook('rb') }))
    const banner = await screen.findByTestId('connection-banner')
    expect(banner).toHaveTextContent('Connection lost — showing what was loaded last.')
    expect(screen.getByLabelText('Name')).toHaveValue('Restart payments now')
    expect(screen.getByRole('button', { name: 'Save' })).toBeEnabled()
    expect(screen.getByRole('button', { name: 'Run' })).toBeEnabled()

    server.down = false
    await user.click(screen.getByRole('button', { name: 'Try again' }))
    await vi.waitFor(() => expect(screen.queryByTestId('connection-banner')).toBeNull())
    expect(screen.getByLabelText('Name')).toHaveValue('Restart payments now')
  })
})
