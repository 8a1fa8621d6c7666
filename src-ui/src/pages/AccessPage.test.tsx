import { screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import type { ApiKeyInfo, User } from '../api/types'
import { ADMIN, OPERATOR, renderWithClient } from '../test/render'

const call = vi.fn()
vi.mock('../api/transport', () => ({ call: (...args: unknown[]) => call(...args) }))

import { AccessPage } from './AccessPage'

const T = '2026-01-01T00:00:00Z'
let users: User[]
let apiKeys: ApiKeyInfo[]

beforeEach(() => {
  users = [
    { id: 'u1', name: 'alice', role: 'admin', created_at: T, updated_at: T, disabled_at: null },
    { id: 'u2', name: 'bob', role: 'operator', created_at: T, updated_at: T, disabled_at: null },
  ]
  apiKeys = [
    { id: 'k1', name: 'ci', role: 'operator', user_id: null, user_name: null, created_at: T, last_used_at: null, expires_at: null, revoked_at: null },
    { id: 'k2', name: 'bob-laptop', role: 'operator', user_id: 'u2', user_name: 'bob', created_at: T, last_used_at: T, expires_at: '2020-01-01T00:00:00Z', revoked_at: null },
    { id: 'k3', name: 'old', role: 'viewer', user_id: null, user_name: null, created_at: T, last_used_at: null, expires_at: null, revoked_at: T },
  ]
  call.mockReset()
  call.mockImplementation(async (command: string, args: { id: string; body: Partial<User> & { disabled?: boolean } }) => {
    switch (command) {
      case 'list_users':
        return { items: users }
      case 'list_api_keys':
        return { items: apiKeys }
      case 'update_user': {
        users = users.map((u) =>
          u.id === args.id
            ? { ...u, role: args.body.role ?? u.role, disabled_at: args.body.disabled === undefined ? u.disabled_at : args.body.disabled ? T : null }
            : u,
        )
        // A user's keys follow the user's role.
        apiKeys = apiKeys.map((k) => (k.user_id === args.id ? { ...k, role: users.find((u) => u.id === args.id)!.role } : k))
        return users.find((u) => u.id === args.id)
      }
      case 'revoke_api_key':
        apiKeys = apiKeys.map((k) => (k.id === args.id ? { ...k, revoked_at: T } : k))
        return null
      default:
        throw new Error(`unexpected ${command}`)
    }
  })
})

describe('AccessPage', () => {
  it('changes a role, which the user\'s keys follow, and disables a user', async () => {
    const user = userEvent.setup()
    renderWithClient(<AccessPage />, { me: ADMIN })
    const bob = await screen.findByTestId('user-bob')
    expect(within(screen.getByTestId('user-alice')).getByText('you')).toBeInTheDocument()
    await user.selectOptions(within(bob).getByLabelText('Role of bob'), 'editor')
    expect(call).toHaveBeenCalledWith('update_user', { id: 'u2', body: { role: 'editor' } })
    await waitFor(() => expect(within(screen.getByTestId('key-bob-laptop')).getByText('editor')).toBeInTheDocument())

    await user.click(within(bob).getByRole('button', { name: 'Disable bob' }))
    expect(call).toHaveBeenCalledWith('update_user', { id: 'u2', body: { disabled: true } })
    await waitFor(() => expect(screen.getByTestId('user-bob')).toHaveTextContent(/disabled/))
    expect(within(screen.getByTestId('user-bob')).getByRole('button', { name: 'Enable bob' })).toBeInTheDocument()
  })

  it('shows each key\'s owner, last use, expiry and state, and revokes after confirmation', async () => {
    const user = userEvent.setup()
    renderWithClient(<AccessPage />, { me: ADMIN })
    const ci = await screen.findByTestId('key-ci')
    expect(ci).toHaveTextContent('active')
    expect(ci).toHaveTextContent(/never.*never/) // not used, no expiry
    expect(screen.getByTestId('key-bob-laptop')).toHaveTextContent('bob')
    expect(screen.getByTestId('key-bob-laptop')).toHaveTextContent('expired')
    const old = screen.getByTestId('key-old')
    expect(old).toHaveTextContent('revoked')
    expect(within(old).getByRole('button', { name: 'Revoke old' })).toBeDisabled()

    await user.click(within(ci).getByRole('button', { name: 'Revoke ci' }))
    const dialog = screen.getByRole('dialog', { name: 'Revoke API key “ci”?' })
    expect(call).not.toHaveBeenCalledWith('revoke_api_key', expect.anything())
    await user.click(within(dialog).getByRole('button', { name: 'Revoke key' }))
    expect(call).toHaveBeenCalledWith('revoke_api_key', { id: 'k1' })
    await waitFor(() => expect(screen.getByTestId('key-ci')).toHaveTextContent('revoked'))
    expect(screen.getByRole('status')).toHaveTextContent('API key “ci” revoked.')
  })

  it('shows a refused change as an error, not a crash', async () => {
    const user = userEvent.setup()
    renderWithClient(<AccessPage />, { me: ADMIN })
    const alice = await screen.findByTestId('user-alice')
    call.mockRejectedValueOnce(new ApiError('last_admin', 'The last admin cannot lose the admin role.', 409))
    await user.selectOptions(within(alice).getByLabelText('Role of alice'), 'viewer')
    expect(await screen.findByText('The user was not changed')).toBeInTheDocument()
    expect(screen.getByText('The last admin cannot lose the admin role.')).toBeInTheDocument()
  })

  it('shows the keys of a disabled user as not working, and working again once enabled', async () => {
    apiKeys.push({ id: 'k4', name: 'bob-ci', role: 'operator', user_id: 'u2', user_name: 'bob', created_at: T, last_used_at: null, expires_at: null, revoked_at: null })
    const user = userEvent.setup()
    renderWithClient(<AccessPage />, { me: ADMIN })
    expect(await screen.findByTestId('key-bob-ci')).toHaveTextContent('active')
    await user.click(within(screen.getByTestId('user-bob')).getByRole('button', { name: 'Disable bob' }))
    // The server refuses a disabled user's keys.
    await waitFor(() => expect(screen.getByTestId('key-bob-ci')).toHaveTextContent('user disabled'))
    expect(screen.getByTestId('key-bob-ci')).not.toHaveTextContent('active')
    expect(screen.getByTestId('key-bob-ci')).toHaveClass('row-disabled')
    await user.click(within(screen.getByTestId('user-bob')).getByRole('button', { name: 'Enable bob' }))
    await waitFor(() => expect(screen.getByTestId('key-bob-ci')).toHaveTextContent('active'))
  })

  it('reads who you are again after you change your own role', async () => {
    users.push({ id: 'u3', name: 'carol', role: 'admin', created_at: T, updated_at: T, disabled_at: null })
    const served = call.getMockImplementation()!
    call.mockImplementation(async (command: string, args: { id: string; body: Partial<User> }) => {
      const alice = users.find((u) => u.name === 'alice')!
      if (command === 'whoami') return { name: 'alice', role: alice.role }
      if (alice.role !== 'admin' && command.startsWith('list_')) throw new ApiError('forbidden', 'This needs the admin role.', 403)
      return served(command, args)
    })
    const user = userEvent.setup()
    renderWithClient(<AccessPage />, { me: ADMIN })
    const alice = await screen.findByTestId('user-alice')
    await user.selectOptions(within(alice).getByLabelText('Role of alice'), 'editor')
    // Not "signed in with the admin role": that was before the change.
    expect(await screen.findByTestId('admin-only')).toHaveTextContent('with the editor role')
    expect(call).toHaveBeenCalledWith('whoami', {})
  })

  it('is admin only', async () => {
    renderWithClient(<AccessPage />, { me: OPERATOR })
    expect(screen.getByTestId('admin-only')).toHaveTextContent('Access can only be opened by an admin.')
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(call).not.toHaveBeenCalled()
  })
})
