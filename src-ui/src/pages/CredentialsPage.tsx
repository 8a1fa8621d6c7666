// Credentials (admin): the stored secrets runbooks use by name. Listed with their metadata and
// when they were last used; a value can be set and replaced, never read back.

import { KeyRound, Pencil, Plus, Trash2 } from 'lucide-react'
import { useState } from 'react'
import { useCredentials, useDeleteCredential } from '../api/queries'
import type { CredentialInfo } from '../api/types'
import { isForbidden } from '../api/errors'
import { AdminOnly, RequireAdmin } from '../components/AdminOnly'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { ErrorBanner } from '../components/ErrorBanner'
import { Notice } from '../components/Notice'
import { formatDateTime, formatLastUsed, formatRelative } from '../util/format'
import { CreateCredentialDialog, ReplaceValueDialog } from './CredentialDialogs'
import { credentialDetail, KIND_SPECS } from './credentialForm'

export function CredentialsPage() {
  return (
    <RequireAdmin page="Credentials">
      <Credentials />
    </RequireAdmin>
  )
}

function Credentials() {
  const list = useCredentials()
  const remove = useDeleteCredential()
  const [creating, setCreating] = useState(false)
  const [replacing, setReplacing] = useState<CredentialInfo | null>(null)
  const [deleting, setDeleting] = useState<CredentialInfo | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  if (list.isError && isForbidden(list.error)) return <AdminOnly page="Credentials" />

  return (
    <div className="page">
      <header className="page-header">
        <div className="page-title-block">
          <h1 className="page-title">Credentials</h1>
          <p className="page-lead muted">
            Secrets that runbooks use by name: command blocks receive them in their environment, API calls authenticate with
            them. Values are encrypted and write-only — they can be replaced, never shown.
          </p>
        </div>
        <div className="page-actions">
          <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
            <Plus size={16} aria-hidden /> New credential
          </button>
        </div>
      </header>
      {notice && <Notice onDismiss={() => setNotice(null)}>{notice}</Notice>}
      {list.isPending && <div className="loading">Loading credentials…</div>}
      {list.isError && <ErrorBanner error={list.error} title="Could not load the credentials" />}
      {list.data && list.data.items.length === 0 && (
        <div className="empty-card">
          <KeyRound size={22} aria-hidden className="empty-icon" />
          <div>No credentials yet. Create one for a runbook to use.</div>
        </div>
      )}
      {list.data && list.data.items.length > 0 && (
        <div className="card card-flush table-scroll">
          <table className="table" aria-label="Credentials">
            <thead>
              <tr>
                <th>Name</th>
                <th>Kind</th>
                <th>Username / header</th>
                <th>Hosts</th>
                <th>Created</th>
                <th>Updated</th>
                <th>Last used</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((credential) => (
                <CredentialRow
                  key={credential.id}
                  credential={credential}
                  onReplace={() => setReplacing(credential)}
                  onDelete={() => {
                    remove.reset()
                    setDeleting(credential)
                  }}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <CreateCredentialDialog
          onClose={() => setCreating(false)}
          onCreated={(credential) => {
            setCreating(false)
            setNotice(`Credential “${credential.name}” created.`)
          }}
        />
      )}
      {replacing && (
        <ReplaceValueDialog
          credential={replacing}
          onClose={() => setReplacing(null)}
          onReplaced={(credential, replacedValue) => {
            setReplacing(null)
            setNotice(replacedValue ? `The value of “${credential.name}” was replaced.` : `Credential “${credential.name}” updated.`)
          }}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete credential “${deleting.name}”?`}
          confirmLabel="Delete credential"
          busy={remove.isPending}
          error={remove.error}
          onClose={() => setDeleting(null)}
          onConfirm={() =>
            remove.mutate(deleting.id, {
              onSuccess: () => {
                setNotice(`Credential “${deleting.name}” deleted.`)
                setDeleting(null)
              },
            })
          }
        >
          <p>
            Runbooks that use <code>{deleting.name}</code> will fail at the step that needs it. The encrypted value is erased;
            this cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </div>
  )
}

interface CredentialRowProps {
  credential: CredentialInfo
  onReplace: () => void
  onDelete: () => void
}

function CredentialRow({ credential, onReplace, onDelete }: CredentialRowProps) {
  const detail = credentialDetail(credential)
  return (
    <tr data-testid={`credential-${credential.name}`}>
      <td>
        <div className="cell-title mono">{credential.name}</div>
        {credential.description && <div className="cell-sub">{credential.description}</div>}
      </td>
      <td>
        <span className={`chip chip-kind chip-kind-${credential.kind}`}>{KIND_SPECS[credential.kind]?.label ?? credential.kind}</span>
      </td>
      <td>
        {detail ? (
          <span className="cell-sub">
            {detail.label} <span className="mono cell-strong">{detail.value}</span>
          </span>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td data-testid="hosts">
        <CredentialHosts credential={credential} />
      </td>
      <td className="nowrap" title={`${formatDateTime(credential.created_at)} by ${credential.created_by}`}>{formatRelative(credential.created_at)}</td>
      <td className="nowrap" title={`${formatDateTime(credential.updated_at)} by ${credential.updated_by}`}>{formatRelative(credential.updated_at)}</td>
      <td className="nowrap" title={formatDateTime(credential.last_used_at) || undefined} data-testid="last-used">
        {credential.last_used_at ? formatLastUsed(credential.last_used_at) : <span className="muted">never</span>}
      </td>
      <td className="row-actions">
        <button type="button" className="btn btn-secondary btn-sm" aria-label={`Edit ${credential.name}`} onClick={onReplace}>
          <Pencil size={14} aria-hidden /> Edit
        </button>
        <button
          type="button"
          className="icon-btn icon-btn-danger"
          aria-label={`Delete credential ${credential.name}`}
          title="Delete"
          onClick={onDelete}
        >
          <Trash2 size={16} />
        </button>
      </td>
    </tr>
  )
}

/** Where an api_call block may send the credential; nothing for kinds that no API call sends. */
function CredentialHosts({ credential }: { credential: CredentialInfo }) {
  if (!KIND_SPECS[credential.kind]?.http) return null
  if (credential.hosts.length === 0) return <span className="cell-sub">hosts written in runbooks</span>
  return (
    <span className="cell-sub">
      <span className="mono cell-strong">{credential.hosts.join(', ')}</span>
    </span>
  )
}
