// The admin pages' gate: a clear message, never a crash, for anyone who is not an admin, whether
// the UI knows it from `whoami` or the server said so with a 403.

import { ShieldAlert } from 'lucide-react'
import type { ReactNode } from 'react'
import { useMe } from '../api/queries'

export function AdminOnly({ page }: { page: string }) {
  const me = useMe()
  return (
    <div className="page">
      <div className="admin-only card" role="alert" data-testid="admin-only">
        <span className="admin-only-mark" aria-hidden>
          <ShieldAlert size={26} />
        </span>
        <div>
          <h1 className="admin-only-title">Admin only</h1>
          <p className="muted">
            {page} can only be opened by an admin.
            {me.data && (
              <>
                {' '}
                You are signed in as <strong>{me.data.name}</strong> with the <strong>{me.data.role}</strong> role.
              </>
            )}{' '}
            Ask an admin if you need access.
          </p>
        </div>
      </div>
    </div>
  )
}

/** Renders `children` for admins only; everyone else sees the admin-only message. */
export function RequireAdmin({ page, children }: { page: string; children: ReactNode }) {
  const me = useMe()
  if (me.isPending) return <div className="page loading">Loading…</div>
  if (me.data?.role !== 'admin') return <AdminOnly page={page} />
  return children
}
