// Test helper: renders a piece of the UI with a fresh query client (who is signed in already
// known) and, if asked, inside a memory router.

import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { render } from '@testing-library/react'
import type { ReactNode } from 'react'
import { createMemoryRouter, RouterProvider } from 'react-router'
import type { Me } from '../api/types'

export function renderWithClient(ui: ReactNode, options: { me?: Me; path?: string } = {}) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  if (options.me) {
    // Who is signed in is known, as after the app's sign-in gate: no refetch of it in tests.
    client.setQueryDefaults(['me'], { staleTime: Infinity })
    client.setQueryData(['me'], options.me)
  }
  const tree = options.path ? (
    <RouterProvider router={createMemoryRouter([{ path: '*', element: ui }], { initialEntries: [options.path] })} />
  ) : (
    ui
  )
  const result = render(<QueryClientProvider client={client}>{tree}</QueryClientProvider>)
  return { client, ...result }
}

/** Everything the query and mutation caches hold, as one string to search for leaked secrets. */
export function cachedText(client: QueryClient): string {
  const queries = client.getQueryCache().getAll().map((query) => query.state)
  const mutations = client.getMutationCache().getAll().map((mutation) => mutation.state)
  return JSON.stringify({ queries, mutations })
}

export const ADMIN: Me = { name: 'alice', role: 'admin' }
export const OPERATOR: Me = { name: 'oscar', role: 'operator' }
