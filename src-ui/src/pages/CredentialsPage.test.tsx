import { screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import type { CredentialInfo } from '../api/types'
import { ADMIN, cachedText, OPERATOR, renderWithClient } from '../test/render'

const call = vi.fn()
vi.mock('../api/transport', () => ({ call: (...args: unknown[]) => call(...args) }))

import { CreateCredentialDialog, ReplaceValueDialog } from './CredentialDialogs'
import { CredentialsPage } from './CredentialsPage'

const SECRET = 'tok_9f8e7d6c5b4a-super-secret'

function info(patch: Partial<CredentialInfo>): CredentialInfo {
  return {
    id: 'c1',
    name: 'payments-token',
    kind: 'bearer',
    description: '',
    username: null,
    header_name: null,
    hosts: [],
    created_at: new Date(Date.now() - 3 * 86_400_000).toISOString(),
    updated_at: new Date(Date.now() - 2 * 86_400_000).toISOString(),
    last_used_at: null,
    created_by: 'alice',
    updated_by: 'alice',
    ...patch,
  }
}

const calls = (command: string) => call.mock.calls.filter(([c]) => c === command)

beforeEach(() => {
  call.mockReset()
  sessionStorage.clear()
})

describe('CreateCredentialDialog', () => {
  it('shows the fields each kind needs', async () => {
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    const create = screen.getByRole('button', { name: /Create credential/ })
    await user.type(screen.getByLabelText('Name'), 'api')
    await user.type(screen.getByLabelText('Value'), SECRET)
    expect(screen.queryByLabelText('Username')).toBeNull()
    expect(screen.queryByLabelText('Header name')).toBeNull()
    expect(create).toBeEnabled()

    await user.selectOptions(screen.getByLabelText('Kind'), 'basic')
    expect(screen.getByLabelText('Username')).toBeInTheDocument()
    expect(create).toBeDisabled() // a basic credential needs its username
    await user.type(screen.getByLabelText('Username'), 'svc')
    expect(create).toBeEnabled()

    await user.selectOptions(screen.getByLabelText('Kind'), 'header')
    expect(screen.queryByLabelText('Username')).toBeNull()
    expect(screen.getByLabelText('Header name')).toBeInTheDocument()
    expect(create).toBeDisabled()

    await user.selectOptions(screen.getByLabelText('Kind'), 'ssh_key')
    const value = screen.getByLabelText('Value')
    expect(value.tagName).toBe('TEXTAREA')
    expect(value).toHaveClass('secret-masked')
    expect(value).toHaveValue(SECRET)
    expect(create).toBeEnabled()
  })

  it('masks the value until asked to show it', async () => {
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    const value = screen.getByLabelText('Value')
    expect(value).toHaveAttribute('type', 'password')
    expect(value).toHaveAttribute('autocomplete', 'off')
    await user.click(screen.getByRole('button', { name: 'Show value' }))
    expect(screen.getByLabelText('Value')).toHaveAttribute('type', 'text')
    await user.click(screen.getByRole('button', { name: 'Hide value' }))
    expect(screen.getByLabelText('Value')).toHaveAttribute('type', 'password')
  })

  it('flags a badly formed name before asking the server', async () => {
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    await user.type(screen.getByLabelText('Name'), 'my token')
    await user.type(screen.getByLabelText('Value'), SECRET)
    expect(screen.getByText(/Only letters, digits/)).toBeInTheDocument()
    expect(screen.getByRole('button', { name: /Create credential/ })).toBeDisabled()
  })

  it('sends the kind\'s fields, then keeps the value in no cache or storage', async () => {
    call.mockImplementation(async (command: string, args: { body: { name: string } }) => {
      if (command === 'create_credential') return info({ name: args.body.name, kind: 'basic', username: 'svc' })
      return { items: [] }
    })
    const onCreated = vi.fn()
    const user = userEvent.setup()
    const { client } = renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={onCreated} />)
    await user.type(screen.getByLabelText('Name'), 'db-login')
    await user.selectOptions(screen.getByLabelText('Kind'), 'basic')
    await user.type(screen.getByLabelText('Username'), 'svc')
    await user.type(screen.getByLabelText('Value'), SECRET)
    await user.type(screen.getByLabelText('Description'), 'Reporting database')
    await user.click(screen.getByRole('button', { name: /Create credential/ }))

    await waitFor(() => expect(onCreated).toHaveBeenCalledWith(expect.objectContaining({ name: 'db-login' })))
    expect(calls('create_credential')[0][1]).toEqual({
      body: { name: 'db-login', kind: 'basic', value: SECRET, username: 'svc', header_name: null, description: 'Reporting database', hosts: [] },
    })
    // The form is cleared and the mutation (which carried the value) is gone.
    expect(screen.getByLabelText('Value')).toHaveValue('')
    expect(screen.getByLabelText('Name')).toHaveValue('')
    await waitFor(() => expect(cachedText(client)).not.toContain(SECRET))
    expect(JSON.stringify({ ...localStorage })).not.toContain(SECRET)
    expect(JSON.stringify({ ...sessionStorage })).not.toContain(SECRET)
  })

  it('shows a duplicate name on the name field until the name is edited', async () => {
    call.mockRejectedValue(new ApiError('duplicate_name', 'A credential named “api” already exists.', 409))
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    await user.type(screen.getByLabelText('Name'), 'api')
    await user.type(screen.getByLabelText('Value'), SECRET)
    await user.click(screen.getByRole('button', { name: /Create credential/ }))
    const nameField = screen.getByLabelText('Name').closest('.field') as HTMLElement
    expect(await within(nameField).findByRole('alert')).toHaveTextContent('already exists')
    expect(screen.queryByText('The credential was not created')).toBeNull()
    await user.type(screen.getByLabelText('Name'), '2')
    expect(within(nameField).queryByRole('alert')).toBeNull()
  })

  it('puts a missing header name on its field and anything else in a banner', async () => {
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    call.mockRejectedValueOnce(new ApiError('missing_header_name', 'A header credential needs a header name.', 422))
    await user.type(screen.getByLabelText('Name'), 'api')
    await user.selectOptions(screen.getByLabelText('Kind'), 'header')
    await user.type(screen.getByLabelText('Header name'), ' ')
    await user.type(screen.getByLabelText('Value'), SECRET)
    // A blank header name is not sendable: the button waits for a real one.
    expect(screen.getByRole('button', { name: /Create credential/ })).toBeDisabled()
    await user.type(screen.getByLabelText('Header name'), 'X')
    await user.click(screen.getByRole('button', { name: /Create credential/ }))
    const headerField = screen.getByLabelText('Header name').closest('.field') as HTMLElement
    expect(await within(headerField).findByRole('alert')).toHaveTextContent('needs a header name')

    call.mockRejectedValueOnce(new ApiError('vault_unavailable', 'The vault is locked.', 409))
    await user.click(screen.getByRole('button', { name: /Create credential/ }))
    expect(await screen.findByText('The credential was not created')).toBeInTheDocument()
    expect(screen.getByText('The vault is locked.')).toBeInTheDocument()
  })
})

describe('CreateCredentialDialog hosts', () => {
  it('sends the hosts typed for an HTTP credential, trimmed and lowercase', async () => {
    call.mockImplementation(async (command: string) => {
      if (command === 'create_credential') return info({ name: 'api', hosts: ['api.example.com', '*.example.com'] })
      return { items: [] }
    })
    const onCreated = vi.fn()
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={onCreated} />)
    await user.type(screen.getByLabelText('Name'), 'api')
    await user.type(screen.getByLabelText('Value'), SECRET)
    expect(screen.getByText(/An API call sends this credential only to these hosts/)).toBeInTheDocument()
    await user.type(screen.getByLabelText('Hosts'), ' API.example.com, *.example.com ')
    await user.click(screen.getByRole('button', { name: /Create credential/ }))
    await waitFor(() => expect(onCreated).toHaveBeenCalled())
    expect(calls('create_credential')[0][1]).toEqual({
      body: { name: 'api', kind: 'bearer', value: SECRET, username: null, header_name: null, description: '', hosts: ['api.example.com', '*.example.com'] },
    })
  })

  it('flags a URL typed as a host before asking the server', async () => {
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    await user.type(screen.getByLabelText('Name'), 'api')
    await user.type(screen.getByLabelText('Value'), SECRET)
    await user.type(screen.getByLabelText('Hosts'), 'https://api.example.com')
    const hostsField = screen.getByLabelText('Hosts').closest('.field') as HTMLElement
    expect(within(hostsField).getByRole('alert')).toHaveTextContent('is a URL')
    expect(screen.getByRole('button', { name: /Create credential/ })).toBeDisabled()
    await user.clear(screen.getByLabelText('Hosts'))
    await user.type(screen.getByLabelText('Hosts'), 'api.example.com')
    expect(within(hostsField).queryByRole('alert')).toBeNull()
    expect(screen.getByRole('button', { name: /Create credential/ })).toBeEnabled()
  })

  it('shows the server refusing a host under the Hosts field, until the hosts are edited', async () => {
    call.mockRejectedValue(new ApiError('invalid_hosts', '“api..example.com” is not a host name.', 422))
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={() => {}} />)
    await user.type(screen.getByLabelText('Name'), 'api')
    await user.type(screen.getByLabelText('Value'), SECRET)
    await user.type(screen.getByLabelText('Hosts'), 'api..example.com')
    await user.click(screen.getByRole('button', { name: /Create credential/ }))
    const hostsField = screen.getByLabelText('Hosts').closest('.field') as HTMLElement
    expect(await within(hostsField).findByRole('alert')).toHaveTextContent('“api..example.com” is not a host name.')
    expect(screen.queryByText('The credential was not created')).toBeNull()
    await user.clear(screen.getByLabelText('Hosts'))
    expect(within(hostsField).queryByRole('alert')).toBeNull()
  })

  it('hides the hosts for a secret and sends none, even ones typed before the kind changed', async () => {
    call.mockImplementation(async (command: string) => {
      if (command === 'create_credential') return info({ name: 'env-token', kind: 'secret' })
      return { items: [] }
    })
    const onCreated = vi.fn()
    const user = userEvent.setup()
    renderWithClient(<CreateCredentialDialog onClose={() => {}} onCreated={onCreated} />)
    await user.type(screen.getByLabelText('Name'), 'env-token')
    await user.type(screen.getByLabelText('Value'), SECRET)
    await user.type(screen.getByLabelText('Hosts'), 'api.example.com')
    await user.selectOptions(screen.getByLabelText('Kind'), 'secret')
    expect(screen.queryByLabelText('Hosts')).toBeNull()
    await user.selectOptions(screen.getByLabelText('Kind'), 'ssh_key')
    expect(screen.queryByLabelText('Hosts')).toBeNull()
    await user.selectOptions(screen.getByLabelText('Kind'), 'secret')
    await user.click(screen.getByRole('button', { name: /Create credential/ }))
    await waitFor(() => expect(onCreated).toHaveBeenCalled())
    expect(calls('create_credential')[0][1]).toEqual({
      body: { name: 'env-token', kind: 'secret', value: SECRET, username: null, header_name: null, description: '' },
    })
  })
})

describe('ReplaceValueDialog', () => {
  it('starts empty, never reads the current value, and sends only the new value', async () => {
    call.mockImplementation(async (command: string) => {
      if (command === 'update_credential') return info({ updated_at: new Date().toISOString() })
      throw new Error(`unexpected ${command}`)
    })
    const onReplaced = vi.fn()
    const user = userEvent.setup()
    const { client } = renderWithClient(<ReplaceValueDialog credential={info({})} onClose={() => {}} onReplaced={onReplaced} />)
    expect(screen.getByRole('dialog', { name: 'Edit “payments-token”' })).toBeInTheDocument()
    expect(screen.getByText(/The current value is never shown/)).toBeInTheDocument()
    const value = screen.getByLabelText('New value')
    expect(value).toHaveValue('')
    expect(screen.getByRole('button', { name: /Replace value/ })).toBeDisabled()
    await user.type(value, SECRET)
    await user.click(screen.getByRole('button', { name: /Replace value/ }))
    await waitFor(() => expect(onReplaced).toHaveBeenCalled())
    expect(call.mock.calls).toEqual([['update_credential', { id: 'c1', body: { value: SECRET } }]])
    expect(screen.getByLabelText('New value')).toHaveValue('')
    await waitFor(() => expect(cachedText(client)).not.toContain(SECRET))
  })

  it('lets a basic credential change its username with the password', async () => {
    call.mockResolvedValue(info({ kind: 'basic', username: 'new-user' }))
    const user = userEvent.setup()
    renderWithClient(<ReplaceValueDialog credential={info({ kind: 'basic', username: 'old-user' })} onClose={() => {}} onReplaced={() => {}} />)
    const username = screen.getByLabelText('Username')
    expect(username).toHaveValue('old-user')
    await user.clear(username)
    await user.type(username, 'new-user')
    await user.type(screen.getByLabelText('New value'), 'pw')
    await user.click(screen.getByRole('button', { name: /Replace value/ }))
    await waitFor(() => expect(call).toHaveBeenCalledWith('update_credential', { id: 'c1', body: { value: 'pw', username: 'new-user' } }))
  })
})

describe('ReplaceValueDialog hosts', () => {
  it('starts with the stored hosts and saves a changed list without a new value', async () => {
    call.mockImplementation(async (command: string, args: { body: { hosts: string[] } }) => {
      if (command === 'update_credential') return info({ hosts: args.body.hosts })
      throw new Error(`unexpected ${command}`)
    })
    const onReplaced = vi.fn()
    const user = userEvent.setup()
    renderWithClient(<ReplaceValueDialog credential={info({ hosts: ['api.example.com'] })} onClose={() => {}} onReplaced={onReplaced} />)
    const hosts = screen.getByLabelText('Hosts')
    expect(hosts).toHaveValue('api.example.com')
    expect(screen.getByRole('button', { name: /Replace value/ })).toBeDisabled()
    await user.type(hosts, ', Pay.example.com:8443')
    await user.click(screen.getByRole('button', { name: 'Save changes' }))
    await waitFor(() => expect(onReplaced).toHaveBeenCalledWith(expect.objectContaining({ name: 'payments-token' }), false))
    expect(call.mock.calls).toEqual([['update_credential', { id: 'c1', body: { hosts: ['api.example.com', 'pay.example.com:8443'] } }]])
  })

  it('sends the changed list with a new value, and an emptied list as []', async () => {
    call.mockResolvedValue(info({}))
    const onReplaced = vi.fn()
    const user = userEvent.setup()
    renderWithClient(<ReplaceValueDialog credential={info({ hosts: ['api.example.com', '*.example.com'] })} onClose={() => {}} onReplaced={onReplaced} />)
    expect(screen.getByLabelText('Hosts')).toHaveValue('api.example.com, *.example.com')
    await user.clear(screen.getByLabelText('Hosts'))
    await user.type(screen.getByLabelText('New value'), 'pw')
    await user.click(screen.getByRole('button', { name: /Replace value/ }))
    await waitFor(() => expect(onReplaced).toHaveBeenCalledWith(expect.anything(), true))
    expect(call).toHaveBeenCalledWith('update_credential', { id: 'c1', body: { value: 'pw', hosts: [] } })
  })

  it('has no hosts field for a secret', () => {
    renderWithClient(<ReplaceValueDialog credential={info({ kind: 'secret' })} onClose={() => {}} onReplaced={() => {}} />)
    expect(screen.getByLabelText('New value')).toBeInTheDocument()
    expect(screen.queryByLabelText('Hosts')).toBeNull()
  })
})

describe('CredentialsPage', () => {
  it('lists metadata with last use, and deletes only after confirmation', async () => {
    let items = [
      info({ id: 'c1', name: 'db-login', kind: 'basic', username: 'report', description: 'Reporting DB', last_used_at: new Date(Date.now() - 5 * 60_000).toISOString() }),
      info({ id: 'c2', name: 'gateway', kind: 'header', header_name: 'X-Gateway-Key', hosts: ['gw.example.com', '*.internal.example.com:8443'] }),
      info({ id: 'c3', name: 'payments', kind: 'bearer' }),
      info({ id: 'c4', name: 'env-secret', kind: 'secret' }),
    ]
    call.mockImplementation(async (command: string, args: { id: string }) => {
      if (command === 'list_credentials') return { items }
      if (command === 'delete_credential') {
        items = items.filter((item) => item.id !== args.id)
        return null
      }
      throw new Error(`unexpected ${command}`)
    })
    const user = userEvent.setup()
    renderWithClient(<CredentialsPage />, { me: ADMIN })
    const db = await screen.findByTestId('credential-db-login')
    expect(db).toHaveTextContent('Basic auth')
    expect(db).toHaveTextContent('user report')
    expect(db).toHaveTextContent('Reporting DB')
    expect(within(db).getByTestId('last-used')).toHaveTextContent('5 minutes ago')
    const gateway = screen.getByTestId('credential-gateway')
    expect(gateway).toHaveTextContent('header X-Gateway-Key')
    expect(within(gateway).getByTestId('last-used')).toHaveTextContent('never')
    expect(within(gateway).getByTestId('hosts')).toHaveTextContent('gw.example.com, *.internal.example.com:8443')
    expect(within(db).getByTestId('hosts')).toHaveTextContent('hosts written in runbooks')
    expect(within(screen.getByTestId('credential-payments')).getByTestId('hosts')).toHaveTextContent('hosts written in runbooks')
    expect(within(screen.getByTestId('credential-env-secret')).getByTestId('hosts')).toBeEmptyDOMElement()

    await user.click(screen.getByRole('button', { name: 'Delete credential gateway' }))
    const dialog = screen.getByRole('dialog', { name: 'Delete credential “gateway”?' })
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(calls('delete_credential')).toHaveLength(0)

    await user.click(screen.getByRole('button', { name: 'Delete credential gateway' }))
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Delete credential' }))
    await waitFor(() => expect(screen.queryByTestId('credential-gateway')).toBeNull())
    expect(calls('delete_credential')[0][1]).toEqual({ id: 'c2' })
    expect(screen.getByRole('status')).toHaveTextContent('Credential “gateway” deleted.')
  })

  it('shows the admin-only message to a non-admin without asking for the credentials', async () => {
    call.mockResolvedValue({ items: [] })
    renderWithClient(<CredentialsPage />, { me: OPERATOR })
    expect(screen.getByTestId('admin-only')).toHaveTextContent('Admin only')
    expect(screen.getByTestId('admin-only')).toHaveTextContent('signed in as oscar with the operator role')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(calls('list_credentials')).toHaveLength(0)
  })

  it('turns a 403 from the server into the admin-only message', async () => {
    call.mockRejectedValue(new ApiError('forbidden', 'This needs the admin role.', 403))
    renderWithClient(<CredentialsPage />, { me: ADMIN })
    expect(await screen.findByTestId('admin-only')).toHaveTextContent('Credentials can only be opened by an admin.')
  })
})
