// Access (admin): the users and their roles, and the API keys that act as a role or as a user.

import { useQueryClient } from '@tanstack/react-query'
import { Ban, KeyRound, Plus, Trash2, UserCheck, UserPlus } from 'lucide-react'
import { useState, type FormEvent } from 'react'
import { keys, useApiKeys, useCreateUser, useDeleteUser, useMe, useRevokeApiKey, useUpdateUser, useUsers } from '../api/queries'
import { ROLES, type ApiKeyInfo, type Role, type User, type UserUpdate } from '../api/types'
import { isForbidden } from '../api/errors'
import { AdminOnly, RequireAdmin } from '../components/AdminOnly'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { ErrorBanner } from '../components/ErrorBanner'
import { Field } from '../components/Field'
import { Modal } from '../components/Modal'
import { Notice } from '../components/Notice'
import { formatDateTime, formatLastUsed, formatRelative } from '../util/format'
import { useNow } from '../util/hooks'
import { useRoutedErrors } from '../util/serverErrors'
import { keyState } from './access'
import { CreateApiKeyDialog } from './CreateApiKeyDialog'

export function AccessPage() {
  return (
    <RequireAdmin page="Access">
      <Access />
    </RequireAdmin>
  )
}

function Access() {
  const users = useUsers()
  const apiKeys = useApiKeys()
  if ((users.isError && isForbidden(users.error)) || (apiKeys.isError && isForbidden(apiKeys.error))) {
    return <AdminOnly page="Access" />
  }
  return (
    <div className="page">
      <header className="page-header">
        <div className="page-title-block">
          <h1 className="page-title">Access</h1>
          <p className="page-lead muted">
            Who may do what. Viewers read, operators also run and control runs, editors also author runbooks, admins also
            manage credentials, users, keys and the audit trail.
          </p>
        </div>
      </header>
      <UsersSection />
      <ApiKeysSection />
    </div>
  )
}

// ---- users ----

function UsersSection() {
  const users = useUsers()
  const me = useMe()
  const update = useUpdateUser()
  const remove = useDeleteUser()
  const [creating, setCreating] = useState(false)
  const [deleting, setDeleting] = useState<User | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const client = useQueryClient()
  const change = (user: User, body: UserUpdate) =>
    update.mutate(
      { id: user.id, body },
      {
        // A change of your own role changes what the app lets you do (the admin pages included).
        onSuccess: () => {
          if (user.name === me.data?.name) void client.invalidateQueries({ queryKey: keys.me })
        },
      },
    )

  return (
    <section aria-labelledby="users-title" className="section">
      <div className="section-header">
        <h2 id="users-title" className="section-title">
          Users
        </h2>
        <span className="spacer" />
        <button type="button" className="btn btn-secondary" onClick={() => setCreating(true)}>
          <UserPlus size={16} aria-hidden /> New user
        </button>
      </div>
      {notice && <Notice onDismiss={() => setNotice(null)}>{notice}</Notice>}
      {update.isError && <ErrorBanner error={update.error} title="The user was not changed" />}
      {users.isPending && <div className="loading">Loading users…</div>}
      {users.isError && <ErrorBanner error={users.error} title="Could not load the users" />}
      {users.data && users.data.items.length === 0 && <div className="empty-card">No users yet.</div>}
      {users.data && users.data.items.length > 0 && (
        <div className="card card-flush table-scroll">
          <table className="table" aria-label="Users">
            <thead>
              <tr>
                <th>Name</th>
                <th>Role</th>
                <th>Status</th>
                <th>Created</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.items.map((user) => {
                const busy = update.isPending && update.variables?.id === user.id
                return (
                  <tr key={user.id} data-testid={`user-${user.name}`} className={user.disabled_at ? 'row-disabled' : undefined}>
                    <td>
                      <span className="cell-title">{user.name}</span>
                      {me.data?.name === user.name && <span className="chip chip-you">you</span>}
                    </td>
                    <td>
                      <select
                        className="input input-sm"
                        aria-label={`Role of ${user.name}`}
                        value={user.role}
                        disabled={busy}
                        onChange={(e) => change(user, { role: e.target.value as Role })}
                      >
                        {ROLES.map((role) => (
                          <option key={role}>{role}</option>
                        ))}
                      </select>
                    </td>
                    <td>
                      {user.disabled_at ? (
                        <span className="chip chip-off" title={formatDateTime(user.disabled_at)}>
                          disabled {formatRelative(user.disabled_at)}
                        </span>
                      ) : (
                        <span className="chip chip-on">active</span>
                      )}
                    </td>
                    <td title={formatDateTime(user.created_at)}>{formatRelative(user.created_at)}</td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="btn btn-secondary btn-sm"
                        disabled={busy}
                        aria-label={`${user.disabled_at ? 'Enable' : 'Disable'} ${user.name}`}
                        onClick={() => change(user, { disabled: !user.disabled_at })}
                      >
                        {user.disabled_at ? <UserCheck size={14} aria-hidden /> : <Ban size={14} aria-hidden />}
                        {user.disabled_at ? 'Enable' : 'Disable'}
                      </button>
                      <button
                        type="button"
                        className="icon-btn icon-btn-danger"
                        aria-label={`Delete user ${user.name}`}
                        title="Delete"
                        onClick={() => {
                          remove.reset()
                          setDeleting(user)
                        }}
                      >
                        <Trash2 size={16} />
                      </button>
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <CreateUserDialog
          onClose={() => setCreating(false)}
          onCreated={(user) => {
            setCreating(false)
            setNotice(`User “${user.name}” created with the ${user.role} role.`)
          }}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete user “${deleting.name}”?`}
          confirmLabel="Delete user"
          busy={remove.isPending}
          error={remove.error}
          onClose={() => setDeleting(null)}
          onConfirm={() =>
            remove.mutate(deleting.id, {
              onSuccess: () => {
                setNotice(`User “${deleting.name}” deleted; their API keys were revoked.`)
                setDeleting(null)
              },
            })
          }
        >
          <p>Every API key of this user is revoked. The audit trail keeps what they did. This cannot be undone.</p>
        </ConfirmDialog>
      )}
    </section>
  )
}

type UserField = 'name' | 'role'
const USER_FIELDS: readonly UserField[] = ['name', 'role']
const USER_ERROR_FIELDS: Readonly<Record<string, UserField>> = { invalid_name: 'name', duplicate_name: 'name', invalid_role: 'role' }

function CreateUserDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (user: User) => void }) {
  const [name, setName] = useState('')
  const [role, setRole] = useState<Role>('operator')
  const create = useCreateUser()
  const errors = useRoutedErrors(create.error, USER_ERROR_FIELDS, USER_FIELDS)
  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (name.trim() === '' || create.isPending) return
    create.mutate({ name: name.trim(), role }, { onSuccess: onCreated })
  }
  return (
    <Modal title="New user" onClose={onClose}>
      <form onSubmit={submit} autoComplete="off">
        <Field label="Name" error={errors.fields.name}>
          {(id) => (
            <input
              id={id}
              className="input"
              value={name}
              onChange={(e) => {
                setName(e.target.value)
                errors.edited('name')
              }}
            />
          )}
        </Field>
        <Field label="Role" error={errors.fields.role}>
          {(id) => (
            <select
              id={id}
              className="input"
              value={role}
              onChange={(e) => {
                setRole(e.target.value as Role)
                errors.edited('role')
              }}
            >
              {ROLES.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          )}
        </Field>
        {errors.banner && <ErrorBanner error={errors.banner} title="The user was not created" />}
        <div className="modal-footer">
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={name.trim() === '' || create.isPending}>
            <UserPlus size={16} aria-hidden /> {create.isPending ? 'Creating…' : 'Create user'}
          </button>
        </div>
      </form>
    </Modal>
  )
}

// ---- API keys ----

function ApiKeysSection() {
  const apiKeys = useApiKeys()
  const users = useUsers()
  const disabledUsers = new Set((users.data?.items ?? []).filter((user) => user.disabled_at).map((user) => user.id))
  const revoke = useRevokeApiKey()
  const [creating, setCreating] = useState(false)
  const [revoking, setRevoking] = useState<ApiKeyInfo | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const now = useNow(true, 30_000)

  return (
    <section aria-labelledby="keys-title" className="section">
      <div className="section-header">
        <h2 id="keys-title" className="section-title">
          API keys
        </h2>
        <span className="spacer" />
        <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
          <Plus size={16} aria-hidden /> New API key
        </button>
      </div>
      {notice && <Notice onDismiss={() => setNotice(null)}>{notice}</Notice>}
      {apiKeys.isPending && <div className="loading">Loading API keys…</div>}
      {apiKeys.isError && <ErrorBanner error={apiKeys.error} title="Could not load the API keys" />}
      {apiKeys.data && apiKeys.data.items.length === 0 && (
        <div className="empty-card">
          <KeyRound size={22} aria-hidden className="empty-icon" />
          <div>No API keys yet.</div>
        </div>
      )}
      {apiKeys.data && apiKeys.data.items.length > 0 && (
        <div className="card card-flush table-scroll">
          <table className="table" aria-label="API keys">
            <thead>
              <tr>
                <th>Name</th>
                <th>Role</th>
                <th>Owner</th>
                <th>Created</th>
                <th>Last used</th>
                <th>Expires</th>
                <th>Status</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {apiKeys.data.items.map((key) => {
                const state = keyState(key, now, disabledUsers)
                return (
                  <tr key={key.id} data-testid={`key-${key.name}`} className={state === 'active' ? undefined : 'row-disabled'}>
                    <td className="cell-title">{key.name}</td>
                    <td>
                      <span className={`chip chip-role chip-role-${key.role}`}>{key.role}</span>
                    </td>
                    <td>{key.user_name ?? <span className="muted">—</span>}</td>
                    <td title={formatDateTime(key.created_at)}>{formatRelative(key.created_at)}</td>
                    <td title={formatDateTime(key.last_used_at) || undefined}>
                      {key.last_used_at ? formatLastUsed(key.last_used_at) : <span className="muted">never</span>}
                    </td>
                    <td title={formatDateTime(key.expires_at) || undefined}>
                      {key.expires_at ? formatRelative(key.expires_at) : <span className="muted">never</span>}
                    </td>
                    <td>
                      {state === 'revoked' && (
                        <span className="chip chip-off" title={formatDateTime(key.revoked_at)}>
                          revoked {formatRelative(key.revoked_at)}
                        </span>
                      )}
                      {state === 'expired' && <span className="chip chip-off">expired</span>}
                      {state === 'user_disabled' && (
                        <span className="chip chip-off" title="Refused while its user is disabled; enabling the user restores it.">
                          user disabled
                        </span>
                      )}
                      {state === 'active' && <span className="chip chip-on">active</span>}
                    </td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="btn btn-secondary btn-sm"
                        aria-label={`Revoke ${key.name}`}
                        disabled={state === 'revoked'}
                        onClick={() => {
                          revoke.reset()
                          setRevoking(key)
                        }}
                      >
                        <Ban size={14} aria-hidden /> Revoke
                      </button>
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {creating && <CreateApiKeyDialog onClose={() => setCreating(false)} />}
      {revoking && (
        <ConfirmDialog
          title={`Revoke API key “${revoking.name}”?`}
          confirmLabel="Revoke key"
          busy={revoke.isPending}
          error={revoke.error}
          onClose={() => setRevoking(null)}
          onConfirm={() =>
            revoke.mutate(revoking.id, {
              onSuccess: () => {
                setNotice(`API key “${revoking.name}” revoked.`)
                setRevoking(null)
              },
            })
          }
        >
          <p>Anything still using this key is refused from now on. The key stays listed as revoked; this cannot be undone.</p>
        </ConfirmDialog>
      )}
    </section>
  )
}
