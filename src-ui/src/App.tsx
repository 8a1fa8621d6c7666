// Routing, the sign-in gate and the app shell (sidebar + page).

import { QueryClientProvider } from '@tanstack/react-query'
import { lazy, Suspense, useState, useSyncExternalStore } from 'react'
import { createHashRouter, Outlet, RouterProvider, useRouteError } from 'react-router'
import { normalizeError } from './api/errors'
import { useMe } from './api/queries'
import { createQueryClient, sessionWasEnded } from './api/queryClient'
import { getApiKey, isTauri, onApiKeyChange } from './api/transport'
import { ErrorBanner } from './components/ErrorBanner'
import { Sidebar } from './components/Sidebar'
import { VaultBanner } from './components/VaultBanner'
import { AccessPage } from './pages/AccessPage'
import { AuditPage } from './pages/AuditPage'
import { CredentialsPage } from './pages/CredentialsPage'
import { ExecutionsPage } from './pages/ExecutionsPage'
import { Home } from './pages/Home'
import { SignIn } from './pages/SignIn'

// The editor (CodeMirror) and the console (xterm) are the heavy parts: load them on demand.
const RunbookPage = lazy(() => import('./pages/RunbookPage').then((m) => ({ default: m.RunbookPage })))
const RunView = lazy(() => import('./pages/RunView').then((m) => ({ default: m.RunView })))

function Layout() {
  return (
    <div className="app">
      <Sidebar />
      <main className="main">
        <VaultBanner />
        <Suspense fallback={<div className="page loading">Loading…</div>}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  )
}

function RouteError() {
  const error = useRouteError()
  return (
    <div className="page">
      <ErrorBanner error={error} title="Something went wrong on this page" />
    </div>
  )
}

function NotFound() {
  return (
    <div className="page">
      <div className="empty-card">There is nothing here. Pick a runbook on the left.</div>
    </div>
  )
}

const router = createHashRouter([
  {
    path: '/',
    element: <Layout />,
    errorElement: <RouteError />,
    children: [
      { index: true, element: <Home /> },
      { path: 'runbooks/:id', element: <RunbookPage /> },
      { path: 'executions', element: <ExecutionsPage /> },
      { path: 'executions/:id', element: <RunView /> },
      { path: 'credentials', element: <CredentialsPage /> },
      { path: 'access', element: <AccessPage /> },
      { path: 'audit', element: <AuditPage /> },
      { path: '*', element: <NotFound /> },
    ],
  },
])

function AuthGate() {
  const key = useSyncExternalStore(onApiKeyChange, getApiKey)
  const needKey = !isTauri() && !key
  const me = useMe(!needKey)
  if (needKey) return <SignIn notice={sessionWasEnded() ? 'Your session ended. Sign in again.' : undefined} />
  if (me.isPending) return <div className="splash">Connecting…</div>
  if (me.isError) {
    const error = normalizeError(me.error)
    if (error.status === 401 && !isTauri()) return <SignIn notice="That API key is no longer accepted." />
    return (
      <div className="splash">
        <ErrorBanner error={error} title="Could not connect to Runbook Studio">
          <button type="button" className="btn btn-secondary btn-sm" onClick={() => void me.refetch()}>
            Try again
          </button>
        </ErrorBanner>
      </div>
    )
  }
  return <RouterProvider router={router} />
}

export function App() {
  const [client] = useState(createQueryClient)
  return (
    <QueryClientProvider client={client}>
      <AuthGate />
    </QueryClientProvider>
  )
}
