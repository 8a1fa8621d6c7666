import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { getApiKey } from '../api/transport'
import { SignIn } from './SignIn'

function renderSignIn() {
  const client = new QueryClient()
  render(
    <QueryClientProvider client={client}>
      <SignIn />
    </QueryClientProvider>,
  )
  return client
}

afterEach(() => vi.unstubAllGlobals())

describe('SignIn', () => {
  it('refuses a key the server rejects and keeps nothing', async () => {
    const fetchMock = vi.fn<typeof fetch>().mockResolvedValue(
      new Response('{"error":{"code":"unauthorized","message":"bad key"}}', { status: 401 }),
    )
    vi.stubGlobal('fetch', fetchMock)
    const user = userEvent.setup()
    renderSignIn()
    await user.type(screen.getByLabelText('API key'), 'wrong')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByRole('alert')).toHaveTextContent('That API key was not accepted.')
    expect(getApiKey()).toBeNull()
  })

  it('stores an accepted key and caches who signed in', async () => {
    const fetchMock = vi.fn<typeof fetch>().mockResolvedValue(new Response('{"name":"alice","role":"admin"}', { status: 200 }))
    vi.stubGlobal('fetch', fetchMock)
    const user = userEvent.setup()
    const client = renderSignIn()
    await user.type(screen.getByLabelText('API key'), ' rk_good ')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))
    await vi.waitFor(() => expect(getApiKey()).toBe('rk_good'))
    const [url, init] = fetchMock.mock.calls[0]
    expect(url).toBe('me')
    expect(new Headers(init?.headers).get('X-API-KEY')).toBe('rk_good')
    expect(client.getQueryData(['me'])).toEqual({ name: 'alice', role: 'admin' })
  })
})
