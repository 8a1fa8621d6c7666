import { screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { useState } from 'react'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { CreatedApiKey, User } from '../api/types'
import { cachedText, renderWithClient } from '../test/render'

const call = vi.fn()
vi.mock('../api/transport', () => ({ call: (...args: unknown[]) => call(...args) }))

import { localDate } from './access'
import { CreateApiKeyDialog } from './CreateApiKeyDialog'

const TOKEN = `rbs_${'ab12'.repeat(16)}`
const users: User[] = [
  { id: 'u1', name: 'bob', role: 'editor', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', disabled_at: null },
  { id: 'u2', name: 'gone', role: 'viewer', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', disabled_at: '2026-02-01T00:00:00Z' },
]

function created(body: { name: string; role?: string; user_id?: string }): CreatedApiKey {
  return {
    id: 'k1',
    name: body.name,
    role: body.user_id ? 'editor' : (body.role as CreatedApiKey['role']),
    user_id: body.user_id ?? null,
    user_name: body.user_id ? 'bob' : null,
    created_at: new Date().toISOString(),
    last_used_at: null,
    expires_at: null,
    revoked_at: null,
    token: TOKEN,
  }
}

/** The dialog behind a "New API key" button, as the Access page opens it. */
function Opener() {
  const [open, setOpen] = useState(false)
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Open
      </button>
      {open && <CreateApiKeyDialog onClose={() => setOpen(false)} />}
    </>
  )
}

beforeEach(() => {
  call.mockReset()
  call.mockImplementation(async (command: string, args: { body: { name: string } }) => {
    if (command === 'list_users') return { items: users }
    if (command === 'create_api_key') return created(args.body)
    return { items: [] }
  })
})

afterEach(() => {
  vi.useRealTimers()
})

describe('CreateApiKeyDialog', () => {
  it('shows the token once, with the warning, and forgets it when closed', async () => {
    const user = userEvent.setup()
    const { client } = renderWithClient(<Opener />)
    await user.click(screen.getByRole('button', { name: 'Open' }))
    await user.type(screen.getByLabelText('Name'), 'ci-deploy')
    await user.selectOptions(screen.getByLabelText('Role'), 'editor')
    await user.click(screen.getByRole('button', { name: /Create key/ }))

    const dialog = await screen.findByRole('dialog', { name: 'API key “ci-deploy” created' })
    expect(within(dialog).getByLabelText('API key token')).toHaveValue(TOKEN)
    expect(within(dialog).getByRole('alert')).toHaveTextContent('Copy this token now — you will not see it again.')
    expect(call).toHaveBeenCalledWith('create_api_key', { body: { name: 'ci-deploy', role: 'editor' } })

    // Copy puts it on the clipboard.
    await user.click(within(dialog).getByRole('button', { name: 'Copy' }))
    expect(await navigator.clipboard.readText()).toBe(TOKEN)
    expect(within(dialog).getByRole('button', { name: 'Copied' })).toBeInTheDocument()

    // Neither Escape nor a click beside the dialog loses the token by accident.
    await user.keyboard('{Escape}')
    expect(screen.getByLabelText('API key token')).toHaveValue(TOKEN)
    // It is nowhere in TanStack Query's caches, only on screen.
    await waitFor(() => expect(cachedText(client)).not.toContain(TOKEN))

    await user.click(screen.getByRole('button', { name: /Done/ }))
    expect(screen.queryByRole('dialog')).toBeNull()
    expect(document.body.textContent).not.toContain(TOKEN)
    // Opening the dialog again starts a new key; the old token is gone for good.
    await user.click(screen.getByRole('button', { name: 'Open' }))
    expect(screen.getByRole('dialog', { name: 'New API key' })).toBeInTheDocument()
    expect(screen.getByLabelText('Name')).toHaveValue('')
    expect(document.body.innerHTML).not.toContain(TOKEN)
    expect(cachedText(client)).not.toContain(TOKEN)
  })

  it('makes a key that acts as an active user, with an expiry', async () => {
    const user = userEvent.setup()
    renderWithClient(<CreateApiKeyDialog onClose={() => {}} />)
    await user.type(screen.getByLabelText('Name'), 'bob-laptop')
    await user.click(screen.getByLabelText(/A user/))
    const pick = screen.getByLabelText('User')
    await waitFor(() => expect(within(pick).getAllByRole('option')).toHaveLength(2))
    // Disabled users cannot own a new key.
    expect(within(pick).queryByRole('option', { name: /gone/ })).toBeNull()
    expect(screen.getByRole('button', { name: /Create key/ })).toBeDisabled()
    await user.selectOptions(pick, 'u1')
    await user.type(screen.getByLabelText('Expires'), '2099-06-30')
    await user.click(screen.getByRole('button', { name: /Create key/ }))
    await screen.findByLabelText('API key token')
    const body = call.mock.calls.find(([command]) => command === 'create_api_key')?.[1].body
    expect(body).toMatchObject({ name: 'bob-laptop', user_id: 'u1' })
    expect(body).not.toHaveProperty('role')
    expect(new Date(body.expires_at).getDate()).toBe(30)
    expect(screen.getByText('editor (from user bob)')).toBeInTheDocument()
  })

  it('puts the focus on the token, so a second Enter after creating does not close it unseen', async () => {
    const user = userEvent.setup()
    renderWithClient(<Opener />)
    await user.click(screen.getByRole('button', { name: 'Open' }))
    await user.type(screen.getByLabelText('Name'), 'ci-deploy')
    // Submitted with Enter, as people do, and Enter pressed once more as the answer arrives.
    await user.keyboard('{Enter}')
    const token = await screen.findByLabelText('API key token')
    expect(token).toHaveFocus()
    await user.keyboard('{Enter}')
    expect(screen.getByRole('dialog', { name: 'API key “ci-deploy” created' })).toBeInTheDocument()
    expect(screen.getByLabelText('API key token')).toHaveValue(TOKEN)
  })

  it('lets a key expire at the end of today', async () => {
    // Only the clock is fixed (at noon), so that "today" is not about to end.
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date(2026, 2, 10, 12, 0, 0))
    const user = userEvent.setup()
    renderWithClient(<CreateApiKeyDialog onClose={() => {}} />)
    await user.type(screen.getByLabelText('Name'), 'incident-bot')
    await user.type(screen.getByLabelText('Expires'), localDate(Date.now()))
    await user.click(screen.getByRole('button', { name: /Create key/ }))
    await screen.findByLabelText('API key token')
    const body = call.mock.calls.find(([command]) => command === 'create_api_key')?.[1].body
    const expires = new Date(body.expires_at)
    expect([expires.getFullYear(), expires.getMonth(), expires.getDate(), expires.getHours()]).toEqual([2026, 2, 10, 23])
  })
})
