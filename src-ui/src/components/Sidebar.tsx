// The dark left sidebar: app name, search, runbook list, "New runbook", the admin pages (for
// admins), and who is signed in.

import { useQueryClient } from '@tanstack/react-query'
import { History, KeyRound, LogOut, Moon, Plus, ScrollText, Search, Sun, Users, Workflow } from 'lucide-react'
import { useState, useSyncExternalStore } from 'react'
import { NavLink, useNavigate } from 'react-router'
import { useCreateRunbook, useMe, useRunbookList } from '../api/queries'
import { useRoleRefusal } from '../api/roles'
import { isTauri, setApiKey } from '../api/transport'
import { NEW_RUNBOOK } from '../editor/draft'
import { dirtyRunbookIds, onDraftsChange } from '../editor/draftCache'
import { useTheme } from '../theme'
import { useDebounced } from '../util/hooks'

export function Sidebar() {
  const [search, setSearch] = useState('')
  const q = useDebounced(search.trim(), 200)
  const list = useRunbookList(q)
  const create = useCreateRunbook()
  const createRefusal = useRoleRefusal('editor')
  const navigate = useNavigate()
  const dirty = useSyncExternalStore(onDraftsChange, dirtyRunbookIds)

  return (
    <aside className="sidebar">
      <div className="brand">
        <span className="brand-mark" aria-hidden>
          <Workflow size={18} />
        </span>
        <span className="brand-name">Runbook Studio</span>
      </div>
      <button
        type="button"
        className="btn btn-new"
        disabled={create.isPending || createRefusal !== null}
        title={createRefusal ?? undefined}
        onClick={() => create.mutate(NEW_RUNBOOK, { onSuccess: (runbook) => navigate(`/runbooks/${runbook.id}`) })}
      >
        <Plus size={16} aria-hidden /> New runbook
      </button>
      {create.isError && <div className="sidebar-error">{create.error.message}</div>}
      <label className="search">
        <Search size={15} aria-hidden />
        <input
          type="search"
          placeholder="Search runbooks"
          aria-label="Search runbooks"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
      </label>
      <nav className="runbook-nav" aria-label="Runbooks">
        {list.isPending && <div className="sidebar-note">Loading…</div>}
        {list.isError && <div className="sidebar-error">{list.error.message}</div>}
        {list.data && list.data.items.length === 0 && (
          <div className="sidebar-note">{q ? `No runbook matches “${q}”.` : 'No runbooks yet.'}</div>
        )}
        <ul>
          {list.data?.items.map((runbook) => (
            <li key={runbook.id}>
              <NavLink to={`/runbooks/${runbook.id}`} className="runbook-link">
                <span className="runbook-link-name">
                  {runbook.name}
                  {dirty.has(runbook.id) && <span className="unsaved-dot" title="Unsaved changes" aria-label="unsaved changes" />}
                </span>
                {(runbook.tags ?? []).length > 0 && (
                  <span className="runbook-link-tags">
                    {(runbook.tags ?? []).map((tag) => (
                      <span key={tag} className="tag">
                        {tag}
                      </span>
                    ))}
                  </span>
                )}
              </NavLink>
            </li>
          ))}
        </ul>
        {list.data && list.data.total > list.data.items.length && (
          <div className="sidebar-note">
            {list.data.items.length} of {list.data.total} — refine the search
          </div>
        )}
      </nav>
      <NavLink to="/executions" className="nav-item" end>
        <History size={16} aria-hidden /> All runs
      </NavLink>
      <AdminNav />
      <SidebarFooter />
    </aside>
  )
}

/** Links to the admin pages, for admins only (the pages themselves also refuse anyone else). */
export function AdminNav() {
  const me = useMe()
  if (me.data?.role !== 'admin') return null
  return (
    <nav className="admin-nav" aria-label="Administration">
      <div className="nav-section">Administration</div>
      <NavLink to="/credentials" className="nav-item">
        <KeyRound size={16} aria-hidden /> Credentials
      </NavLink>
      <NavLink to="/access" className="nav-item">
        <Users size={16} aria-hidden /> Users &amp; API keys
      </NavLink>
      <NavLink to="/audit" className="nav-item">
        <ScrollText size={16} aria-hidden /> Audit trail
      </NavLink>
    </nav>
  )
}

function SidebarFooter() {
  const me = useMe()
  const [theme, toggleTheme] = useTheme()
  const client = useQueryClient()
  const name = me.data?.name ?? '…'
  return (
    <div className="sidebar-footer">
      <span className="avatar" aria-hidden>
        {name.slice(0, 1).toUpperCase()}
      </span>
      <span className="who" data-testid="whoami">
        <span className="who-name">{name}</span>
        <span className="who-role">{me.data?.role ?? ''}</span>
      </span>
      <button
        type="button"
        className="icon-btn icon-btn-dark"
        aria-label={theme === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'}
        title={theme === 'dark' ? 'Light theme' : 'Dark theme'}
        onClick={toggleTheme}
      >
        {theme === 'dark' ? <Sun size={16} /> : <Moon size={16} />}
      </button>
      {!isTauri() && (
        <button
          type="button"
          className="icon-btn icon-btn-dark"
          aria-label="Sign out"
          title="Sign out"
          onClick={() => {
            setApiKey(null)
            client.clear()
          }}
        >
          <LogOut size={16} />
        </button>
      )}
    </div>
  )
}
