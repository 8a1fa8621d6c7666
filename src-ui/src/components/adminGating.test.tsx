import { screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ADMIN, OPERATOR, renderWithClient } from '../test/render'

const call = vi.fn()
vi.mock('../api/transport', () => ({
  call: (...args: unknown[]) => call(...args),
  isTauri: () => false,
  setApiKey: () => {},
}))

import { Sidebar } from './Sidebar'
import { VaultBanner } from './VaultBanner'

beforeEach(() => {
  call.mockReset()
  call.mockImplementation(async (command: string) => {
    if (command === 'list_runbooks') return { items: [], total: 0 }
    throw new Error(`unexpected ${command}`)
  })
  sessionStorage.clear()
})

describe('admin links in the sidebar', () => {
  it('are shown to an admin', async () => {
    renderWithClient(<Sidebar />, { me: ADMIN, path: '/' })
    const nav = await screen.findByRole('navigation', { name: 'Administration' })
    expect(screen.getByRole('link', { name: 'Credentials' })).toHaveAttribute('href', '/credentials')
    expect(screen.getByRole('link', { name: 'Users & API keys' })).toHaveAttribute('href', '/access')
    expect(screen.getByRole('link', { name: 'Audit trail' })).toHaveAttribute('href', '/audit')
    expect(nav).toBeVisible()
  })

  it('are not shown to anyone else', async () => {
    for (const me of [OPERATOR, { name: 'ed', role: 'editor' as const }, { name: 'vi', role: 'viewer' as const }]) {
      const { unmount } = renderWithClient(<Sidebar />, { me, path: '/' })
      await screen.findByText('No runbooks yet.')
      expect(screen.queryByRole('navigation', { name: 'Administration' })).toBeNull()
      expect(screen.queryByRole('link', { name: 'Credentials' })).toBeNull()
      unmount()
    }
  })
})

describe('New runbook in the sidebar', () => {
  it('is disabled below the editor role, naming the role it needs', async () => {
    for (const me of [OPERATOR, { name: 'vi', role: 'viewer' as const }]) {
      const { unmount } = renderWithClient(<Sidebar />, { me, path: '/' })
      const button = screen.getByRole('button', { name: 'New runbook' })
      expect(button).toBeDisabled()
      expect(button).toHaveAttribute('title', `Needs the editor role or higher; you are signed in as ${me.role}.`)
      await screen.findByText('No runbooks yet.')
      unmount()
    }
  })

  it('is enabled for editors and admins', async () => {
    for (const me of [ADMIN, { name: 'ed', role: 'editor' as const }]) {
      const { unmount } = renderWithClient(<Sidebar />, { me, path: '/' })
      expect(screen.getByRole('button', { name: 'New runbook' })).toBeEnabled()
      await screen.findByText('No runbooks yet.')
      unmount()
    }
  })
})

describe('VaultBanner', () => {
  const WARNING = 'No system keychain was found; the master key is stored in a key file (~/.local/share/runbook-studio/master.key).'

  it('shows the vault warning until dismissed for the session', async () => {
    call.mockResolvedValue({ source: 'key_file', warning: WARNING })
    const user = userEvent.setup()
    const first = renderWithClient(<VaultBanner />)
    expect(await screen.findByTestId('vault-warning')).toHaveTextContent(WARNING)
    await user.click(screen.getByRole('button', { name: 'Dismiss vault warning' }))
    expect(screen.queryByTestId('vault-warning')).toBeNull()
    first.unmount()

    // The same warning stays dismissed for this session (a reload, another page)...
    renderWithClient(<VaultBanner />).unmount()
    await new Promise((resolve) => setTimeout(resolve, 20))
    renderWithClient(<VaultBanner />)
    await waitFor(() => expect(call).toHaveBeenCalledTimes(3))
    expect(screen.queryByTestId('vault-warning')).toBeNull()
  })

  it('shows a new warning even after an older one was dismissed', async () => {
    sessionStorage.setItem('runbook-studio.vault-warning-dismissed', 'an older warning')
    call.mockResolvedValue({ source: 'key_file', warning: WARNING })
    renderWithClient(<VaultBanner />)
    expect(await screen.findByTestId('vault-warning')).toBeInTheDocument()
  })

  it('shows nothing without a warning, or when the server has no vault status', async () => {
    call.mockResolvedValue({ source: 'keychain', warning: null })
    const { unmount } = renderWithClient(<VaultBanner />)
    await waitFor(() => expect(call).toHaveBeenCalledWith('vault_status', {}))
    expect(screen.queryByTestId('vault-warning')).toBeNull()
    unmount()
    call.mockRejectedValue(new Error('404'))
    renderWithClient(<VaultBanner />)
    await waitFor(() => expect(call).toHaveBeenCalledTimes(2))
    expect(screen.queryByTestId('vault-warning')).toBeNull()
  })
})
