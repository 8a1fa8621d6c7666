import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { act, cleanup, render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { createMemoryRouter, RouterProvider } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import { keys } from '../api/queries'
import type { Me, Runbook, RunbookUpdate } from '../api/types'
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
/** Who `whoami` says is signed in; null while it has not answered. */
let me: Me | null = null
/** Answers a `whoami` that was asked while `me` was null. */
let answerWhoami: (who: Me) => void = () => {}
/** Saves not answered yet: resolving one stores the body it was sent with. */
let pendingSaves: (() => void)[] = []
const saves = () => call.mock.calls.filter(([command]) => command === 'update_runbook').map(([, args]) => args as { body: RunbookUpdate })

function renderPage() {
  call.mockImplementation(async (command: string, args: { body?: RunbookUpdate }) => {
    switch (command) {
      case 'whoami':
        return me ?? new Promise<Me>((resolve) => (answerWhoami = resolve))
      case 'list_versions':
        return { items: [1, 2].map((version) => ({ version, created_at: stored.created_at, created_by: 'alice', message: '' })) }
      case 'get_version':
        return { ...stored, version: (args as { version: number }).version }
      case 'get_runbook':
        if (server.down) throw new ApiError('network_error', 'Could not reach the server (Failed to fetch).')
        return server.runbook
      case 'update_runbook': {
        const { version: _basedOn, message: _message, ...content } = args.body as RunbookUpdate
        await new Promise<void>((resolve) => pendingSaves.push(resolve))
        server.runbook = { ...server.runbook, ...content, version: server.runbook.version + 1 }
        return server.runbook
      }
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
  pendingSaves = []
  me = null
  answerWhoami = () => {}
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

  it('keeps what is typed while a save is under way, unsaved, and saves it next', async () => {
    const user = userEvent.setup()
    renderPage()
    const name = await screen.findByLabelText('Name')
    await user.type(name, ' now')
    await user.click(screen.getByRole('button', { name: 'Save' }))
    expect(screen.getByRole('button', { name: 'Saving…' })).toBeDisabled()
    await user.type(name, ' please')

    await act(async () => pendingSaves.shift()?.())
    await screen.findByText('v3')
    expect(name).toHaveValue('Restart payments now please')
    expect(screen.getByTestId('dirty-indicator')).toHaveTextContent('Unsaved changes')

    await user.click(screen.getByRole('button', { name: 'Save' }))
    await act(async () => pendingSaves.shift()?.())
    await screen.findByText('Saved · version 4')
    expect(saves().map(({ body }) => [body.version, body.name])).toEqual([
      [2, 'Restart payments now'],
      [3, 'Restart payments now please'],
    ])
  })

  it('disables what the signed-in role may not do, naming the role it needs', async () => {
    const user = userEvent.setup()
    me = { name: 'vi', role: 'viewer' }
    renderPage()
    const name = await screen.findByLabelText('Name')
    const run = screen.getByRole('button', { name: 'Run' })
    await vi.waitFor(() => expect(run).toBeDisabled())
    expect(run).toHaveAttribute('title', 'Needs the operator role or higher; you are signed in as viewer.')
    const remove = screen.getByRole('button', { name: 'Delete' })
    expect(remove).toBeDisabled()
    expect(remove).toHaveAttribute('title', 'Needs the editor role or higher; you are signed in as viewer.')

    // Saving is not offered at all: the editor is read only.
    await user.type(name, ' now')
    expect(name).toHaveValue('Restart payments')
    expect(screen.queryByRole('button', { name: 'Save' })).toBeNull()
    expect(screen.queryByLabelText('Change note')).toBeNull()
    await user.keyboard('{Control>}s{/Control}')
    expect(saves()).toEqual([])
  })

  it('disables rolling back for an operator, naming the role it needs', async () => {
    const user = userEvent.setup()
    me = { name: 'oscar', role: 'operator' }
    renderPage()
    await screen.findByLabelText('Name')
    await user.click(screen.getByRole('tab', { name: 'History' }))
    await user.click(await screen.findByTestId('version-1'))
    const rollback = await screen.findByRole('button', { name: 'Roll back to this version' })
    await vi.waitFor(() => expect(rollback).toHaveAttribute('title', 'Needs the editor role or higher; you are signed in as operator.'))
    expect(rollback).toBeDisabled()
  })

  it('lets an operator run but not save or delete', async () => {
    me = { name: 'oscar', role: 'operator' }
    renderPage()
    await screen.findByLabelText('Name')
    await vi.waitFor(() => expect(screen.getByRole('button', { name: 'Delete' })).toBeDisabled())
    expect(screen.getByRole('button', { name: 'Run' })).toBeEnabled()
    expect(screen.getByRole('button', { name: 'Delete' })).toHaveAttribute('title', 'Needs the editor role or higher; you are signed in as operator.')
  })

  it('tells a role below editor, near the save bar, that the editor is read only', async () => {
    const user = userEvent.setup()
    me = { name: 'vi', role: 'viewer' }
    renderPage()
    const name = await screen.findByLabelText('Name')
    const notice = await screen.findByTestId('read-only-notice')
    expect(notice).toHaveTextContent('Read only: editing needs the editor role or higher (you are signed in as viewer).')
    expect(notice).toBeVisible()
    expect(screen.getByTestId('dirty-indicator')).toHaveTextContent('Read only · version 2')
    // Typing changes nothing, but the text can still be focused to select and copy it.
    await user.type(name, ' now')
    expect(name).toHaveValue('Restart payments')
    expect(name).toHaveFocus()
    expect(screen.getByRole('tab', { name: 'Editor' })).not.toHaveTextContent('unsaved')
  })

  it('turns the editor read only once the role is known, keeping (but never saving) edits typed before', async () => {
    const user = userEvent.setup()
    renderPage()
    const name = await screen.findByLabelText('Name')
    await user.type(name, ' now')
    const card = screen.getByRole('region', { name: 'Instruction block intro' })
    expect(within(card).getByRole('textbox', { name: 'Instructions' })).toBeInTheDocument()

    await act(async () => answerWhoami({ name: 'oscar', role: 'operator' }))
    await screen.findByTestId('read-only-notice')
    expect(name).toHaveValue('Restart payments now')
    expect(name).toHaveAttribute('readonly')
    expect(screen.getByTestId('dirty-indicator')).toHaveTextContent('Read only · unsaved changes')
    // The instruction now shows rendered, as it cannot be edited.
    expect(within(card).queryByRole('textbox', { name: 'Instructions' })).toBeNull()
    expect(within(card).getByText('Check the dashboard')).toBeInTheDocument()
    expect(within(card).queryByRole('button', { name: 'Delete block' })).toBeNull()
    expect(screen.queryByRole('button', { name: 'Save' })).toBeNull()
    await user.keyboard('{Control>}s{/Control}')
    expect(saves()).toEqual([])
  })

  it('shows no read-only notice while the role is still loading, nor to an editor', async () => {
    renderPage()
    await screen.findByLabelText('Name')
    await act(async () => new Promise((resolve) => setTimeout(resolve, 0)))
    expect(screen.queryByTestId('read-only-notice')).toBeNull()
    cleanup()

    call.mockClear() // the first whoami does not count
    me = { name: 'eve', role: 'editor' }
    renderPage()
    await screen.findByLabelText('Name')
    await vi.waitFor(() => expect(call).toHaveBeenCalledWith('whoami', {}))
    await act(async () => new Promise((resolve) => setTimeout(resolve, 0)))
    expect(screen.queryByTestId('read-only-notice')).toBeNull()
  })

  it('leaves every action enabled while the role is still loading', async () => {
    const user = userEvent.setup()
    renderPage()
    const name = await screen.findByLabelText('Name')
    await user.type(name, ' now')
    expect(screen.getByRole('button', { name: 'Run' })).toBeEnabled()
    expect(screen.getByRole('button', { name: 'Delete' })).toBeEnabled()
    expect(screen.getByRole('button', { name: 'Save' })).toBeEnabled()
  })
})
