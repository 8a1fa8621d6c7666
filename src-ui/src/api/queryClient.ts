// The app's TanStack Query client: retry policy and the browser's reaction to a revoked key.

import { QueryCache, QueryClient } from '@tanstack/react-query'
import { normalizeError } from './errors'
import { getApiKey, isTauri, onApiKeyChange, setApiKey } from './transport'

let sessionEnded = false

/** True when the last key stopped working (rather than the user signing out). */
export function sessionWasEnded(): boolean {
  return sessionEnded
}
onApiKeyChange(() => {
  if (getApiKey()) sessionEnded = false
})

export function createQueryClient(): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({
      onError: (error) => {
        // A key that stopped working (revoked, server reset) sends the browser back to sign-in.
        if (!isTauri() && normalizeError(error).status === 401 && getApiKey()) {
          sessionEnded = true
          setApiKey(null)
        }
      },
    }),
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        refetchOnWindowFocus: false,
        retry: (count, error) => {
          const status = normalizeError(error).status
          return (status === undefined || status >= 500) && count < 2
        },
      },
    },
  })
}
