// The browser sign-in screen: an API key, checked against /me before it is stored.

import { useQueryClient } from '@tanstack/react-query'
import { KeyRound, Workflow } from 'lucide-react'
import { useState, type FormEvent } from 'react'
import { ApiError } from '../api/errors'
import { keys } from '../api/queries'
import { setApiKey, verifyApiKey } from '../api/transport'

export function SignIn({ notice }: { notice?: string }) {
  const [key, setKey] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const client = useQueryClient()

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const token = key.trim()
    if (!token) return
    setBusy(true)
    setError(null)
    try {
      const me = await verifyApiKey(token)
      client.clear()
      client.setQueryData(keys.me, me)
      setApiKey(token)
    } catch (err) {
      const apiError = err instanceof ApiError ? err : null
      setError(
        apiError?.status === 401
          ? 'That API key was not accepted.'
          : apiError?.status === 429
            ? 'Too many failed attempts. Wait a moment and try again.'
            : (apiError?.message ?? 'Could not reach the server.'),
      )
    } finally {
      setBusy(false)
    }
  }

  return (
    <main className="signin">
      <form className="signin-card" onSubmit={submit}>
        <div className="signin-brand">
          <span className="brand-mark" aria-hidden>
            <Workflow size={22} />
          </span>
          <h1>Runbook Studio</h1>
        </div>
        <p className="muted">Sign in with an API key. Ask an admin for one, or create it with <code>runbook-studio keys create</code>.</p>
        {notice && !error && <div className="banner banner-warning">{notice}</div>}
        <label htmlFor="api-key" className="field-label">
          API key
        </label>
        <div className="input-with-icon">
          <KeyRound size={16} aria-hidden />
          <input
            id="api-key"
            className="input"
            type="password"
            autoComplete="current-password"
            value={key}
            autoFocus
            onChange={(e) => setKey(e.target.value)}
          />
        </div>
        {error && (
          <div className="banner banner-error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" className="btn btn-primary btn-block" disabled={busy || !key.trim()}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  )
}
