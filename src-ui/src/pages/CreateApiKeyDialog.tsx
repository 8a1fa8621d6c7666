// Creating an API key: a name, a fixed role or an owning user, an optional expiry; then the
// token, shown once in a copyable box. The token lives only in this dialog's state: the mutation
// that brought it is reset at once, and closing the dialog forgets it.

import { KeyRound, TriangleAlert } from 'lucide-react'
import { useState, type FormEvent } from 'react'
import { useCreateApiKey, useUsers } from '../api/queries'
import { ROLES, type CreatedApiKey, type Role } from '../api/types'
import { CopyBox } from '../components/CopyBox'
import { ErrorBanner } from '../components/ErrorBanner'
import { Field } from '../components/Field'
import { Modal } from '../components/Modal'
import { formatDateTime } from '../util/format'
import { useNow } from '../util/hooks'
import { useRoutedErrors } from '../util/serverErrors'
import { EMPTY_KEY_FORM, keyBody, keyFormProblem, localDate, type KeyForm } from './access'

type KeyField = 'name' | 'role' | 'user_id' | 'expires_at'
const KEY_FIELDS: readonly KeyField[] = ['name', 'role', 'user_id', 'expires_at']
const KEY_ERROR_FIELDS: Readonly<Record<string, KeyField>> = {
  invalid_name: 'name',
  duplicate_name: 'name',
  invalid_role: 'role',
  unknown_user: 'user_id',
  invalid_expiry: 'expires_at',
}

export function CreateApiKeyDialog({ onClose }: { onClose: () => void }) {
  const [created, setCreated] = useState<CreatedApiKey | null>(null)
  if (created) return <TokenShownOnce apiKey={created} onDone={onClose} />
  return <KeyFormDialog onClose={onClose} onCreated={setCreated} />
}

function KeyFormDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (key: CreatedApiKey) => void }) {
  const [form, setForm] = useState<KeyForm>(EMPTY_KEY_FORM)
  const create = useCreateApiKey()
  const users = useUsers()
  const active = (users.data?.items ?? []).filter((user) => !user.disabled_at)
  const errors = useRoutedErrors(create.error, KEY_ERROR_FIELDS, KEY_FIELDS)
  const now = useNow(false)
  const problem = keyFormProblem(form, now)
  const set = (patch: Partial<KeyForm>, field: KeyField) => {
    setForm((current) => ({ ...current, ...patch }))
    errors.edited(field)
  }

  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (problem || create.isPending) return
    create.mutate(keyBody(form), {
      onSuccess: (key) => {
        // Keep the token in this dialog only, not in the mutation cache.
        create.reset()
        onCreated(key)
      },
    })
  }

  return (
    <Modal title="New API key" onClose={onClose}>
      <form onSubmit={submit} autoComplete="off">
        <Field label="Name" error={errors.fields.name} hint="Where the key is used, e.g. “ci-deploy” or “chat-ops”.">
          {(id) => <input id={id} className="input" value={form.name} onChange={(e) => set({ name: e.target.value }, 'name')} />}
        </Field>
        <fieldset className="fieldset">
          <legend className="field-label">Acts as</legend>
          <label className="radio">
            <input type="radio" name="owner" checked={form.owner === 'role'} onChange={() => set({ owner: 'role' }, 'role')} />
            A role
          </label>
          <label className="radio">
            <input
              type="radio"
              name="owner"
              checked={form.owner === 'user'}
              disabled={active.length === 0}
              onChange={() => set({ owner: 'user' }, 'user_id')}
            />
            A user (the key follows the user’s role)
          </label>
        </fieldset>
        {form.owner === 'role' ? (
          <Field label="Role" error={errors.fields.role}>
            {(id) => (
              <select id={id} className="input" value={form.role} onChange={(e) => set({ role: e.target.value as Role }, 'role')}>
                {ROLES.map((role) => (
                  <option key={role}>{role}</option>
                ))}
              </select>
            )}
          </Field>
        ) : (
          <Field label="User" error={errors.fields.user_id}>
            {(id) => (
              <select id={id} className="input" value={form.userId} onChange={(e) => set({ userId: e.target.value }, 'user_id')}>
                <option value="">Pick a user…</option>
                {active.map((user) => (
                  <option key={user.id} value={user.id}>
                    {user.name} ({user.role})
                  </option>
                ))}
              </select>
            )}
          </Field>
        )}
        <Field label="Expires" error={errors.fields.expires_at} hint="Optional. The key works through the end of this day; empty means it never expires.">
          {(id) => (
            <input
              id={id}
              className="input w-date"
              type="date"
              // Today is allowed (the key works until the day ends); a later `min` would make the
              // browser refuse the form silently.
              min={localDate(now)}
              value={form.expires}
              onChange={(e) => set({ expires: e.target.value }, 'expires_at')}
            />
          )}
        </Field>
        {errors.banner && <ErrorBanner error={errors.banner} title="The key was not created" />}
        {form.name.trim() !== '' && problem && <p className="field-hint">{problem}</p>}
        <div className="modal-footer">
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={problem !== null || create.isPending}>
            <KeyRound size={16} aria-hidden /> {create.isPending ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>
    </Modal>
  )
}

function TokenShownOnce({ apiKey, onDone }: { apiKey: CreatedApiKey; onDone: () => void }) {
  return (
    <Modal
      title={`API key “${apiKey.name}” created`}
      onClose={onDone}
      dismissible={false}
      footer={
        // Not focused first: an Enter pressed once more after creating would close it unseen. The
        // token field takes the focus (and selects the token for Ctrl+C).
        <button type="button" className="btn btn-primary" onClick={onDone}>
          I have copied it — Done
        </button>
      }
    >
      <div className="banner banner-warning token-warning" role="alert">
        <TriangleAlert size={18} aria-hidden className="banner-icon" />
        <div className="banner-body">
          <strong>Copy this token now — you will not see it again.</strong>
          <div>Only its hash is stored. If it is lost, revoke the key and create a new one.</div>
        </div>
      </div>
      <CopyBox value={apiKey.token} label="API key token" />
      <dl className="key-summary">
        <dt>Role</dt>
        <dd>
          {apiKey.role}
          {apiKey.user_name ? ` (from user ${apiKey.user_name})` : ''}
        </dd>
        <dt>Expires</dt>
        <dd>{apiKey.expires_at ? formatDateTime(apiKey.expires_at) : 'never'}</dd>
      </dl>
      <p className="field-hint">
        Send it in the <code>X-API-KEY</code> header, or paste it into the sign-in screen of the web UI.
      </p>
    </Modal>
  )
}
