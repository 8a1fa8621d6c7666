// The credential dialogs: create (fields follow the kind) and replace value (write-only: the
// field starts empty, the current value is never fetched). Values live only in the form's state,
// which is cleared on success, and in a mutation that is dropped as soon as it is done.

import { Lock, Plus, RefreshCw } from 'lucide-react'
import { useState, type FormEvent } from 'react'
import { useCreateCredential, useUpdateCredential } from '../api/queries'
import { CREDENTIAL_KINDS, type CredentialInfo, type CredentialKind } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { Field } from '../components/Field'
import { Modal } from '../components/Modal'
import { SecretInput } from '../components/SecretInput'
import { useRoutedErrors } from '../util/serverErrors'
import {
  canSubmit,
  createBody,
  CREDENTIAL_ERROR_FIELDS,
  CREDENTIAL_FIELDS,
  EMPTY_CREDENTIAL_FORM,
  KIND_SPECS,
  nameProblem,
  replaceForm,
  updateBody,
  valueProblem,
  type CredentialField,
  type CredentialForm,
  type ReplaceForm,
} from './credentialForm'

interface CreateCredentialDialogProps {
  onClose: () => void
  onCreated: (credential: CredentialInfo) => void
}

export function CreateCredentialDialog({ onClose, onCreated }: CreateCredentialDialogProps) {
  const [form, setForm] = useState<CredentialForm>(EMPTY_CREDENTIAL_FORM)
  const create = useCreateCredential()
  const errors = useRoutedErrors(create.error, CREDENTIAL_ERROR_FIELDS, CREDENTIAL_FIELDS)
  const spec = KIND_SPECS[form.kind]
  const set = <K extends CredentialField>(field: K, value: CredentialForm[K]) => {
    setForm((current) => ({ ...current, [field]: value }))
    errors.edited(field)
  }

  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (!canSubmit(form) || create.isPending) return
    create.mutate(createBody(form), {
      onSuccess: (credential) => {
        setForm(EMPTY_CREDENTIAL_FORM)
        create.reset()
        onCreated(credential)
      },
    })
  }

  return (
    <Modal title="New credential" onClose={onClose} className="modal-wide">
      <form onSubmit={submit} className="credential-form" autoComplete="off">
        <div className="field-row">
          <Field label="Name" error={errors.fields.name ?? nameProblem(form.name) ?? undefined} hint="Runbooks refer to it by this name.">
            {(id) => (
              <input
                id={id}
                className="input mono"
                value={form.name}
                maxLength={200}
                placeholder="payments-token"
                autoComplete="off"
                spellCheck={false}
                onChange={(e) => set('name', e.target.value)}
              />
            )}
          </Field>
          <Field label="Kind" error={errors.fields.kind} className="w-kind">
            {(id) => (
              <select id={id} className="input" value={form.kind} onChange={(e) => set('kind', e.target.value as CredentialKind)}>
                {CREDENTIAL_KINDS.map((kind) => (
                  <option key={kind} value={kind}>
                    {KIND_SPECS[kind].label}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        {spec.needs === 'username' && (
          <Field label="Username" error={errors.fields.username}>
            {(id) => (
              <input
                id={id}
                className="input"
                value={form.username}
                autoComplete="off"
                spellCheck={false}
                onChange={(e) => set('username', e.target.value)}
              />
            )}
          </Field>
        )}
        {spec.needs === 'header_name' && (
          <Field label="Header name" error={errors.fields.header_name} hint="For example X-API-Key.">
            {(id) => (
              <input
                id={id}
                className="input mono"
                value={form.header_name}
                autoComplete="off"
                spellCheck={false}
                onChange={(e) => set('header_name', e.target.value)}
              />
            )}
          </Field>
        )}
        <Field
          label="Value"
          error={errors.fields.value ?? valueProblem(form.value) ?? undefined}
          hint={`${spec.valueHint} Write-only: it can be replaced later, never shown again.`}
        >
          {(id) => (
            <SecretInput id={id} value={form.value} multiline={spec.multiline} invalid={Boolean(errors.fields.value)} onChange={(value) => set('value', value)} />
          )}
        </Field>
        <Field label="Description" error={errors.fields.description}>
          {(id) => (
            <input
              id={id}
              className="input"
              value={form.description}
              placeholder="What it is for, who owns it"
              onChange={(e) => set('description', e.target.value)}
            />
          )}
        </Field>
        {errors.banner && <ErrorBanner error={errors.banner} title="The credential was not created" />}
        <div className="modal-footer">
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={!canSubmit(form) || create.isPending}>
            <Plus size={16} aria-hidden /> {create.isPending ? 'Creating…' : 'Create credential'}
          </button>
        </div>
      </form>
    </Modal>
  )
}

type ReplaceField = keyof ReplaceForm
const REPLACE_FIELDS: readonly ReplaceField[] = ['value', 'username', 'header_name', 'description']
const REPLACE_ERROR_FIELDS: Readonly<Record<string, ReplaceField>> = {
  missing_value: 'value',
  invalid_value: 'value',
  value_too_large: 'value',
  missing_username: 'username',
  invalid_username: 'username',
  missing_header_name: 'header_name',
  invalid_header_name: 'header_name',
  invalid_description: 'description',
}

interface ReplaceValueDialogProps {
  credential: CredentialInfo
  onClose: () => void
  onReplaced: (credential: CredentialInfo) => void
}

export function ReplaceValueDialog({ credential, onClose, onReplaced }: ReplaceValueDialogProps) {
  const [form, setForm] = useState<ReplaceForm>(() => replaceForm(credential))
  const update = useUpdateCredential(credential.id)
  const errors = useRoutedErrors(update.error, REPLACE_ERROR_FIELDS, REPLACE_FIELDS)
  const spec = KIND_SPECS[credential.kind]
  const set = (field: ReplaceField, value: string) => {
    setForm((current) => ({ ...current, [field]: value }))
    errors.edited(field)
  }
  const ready =
    form.value !== '' &&
    !valueProblem(form.value) &&
    !(spec.needs === 'username' && form.username.trim() === '') &&
    !(spec.needs === 'header_name' && form.header_name.trim() === '')

  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (!ready || update.isPending) return
    update.mutate(updateBody(credential, form), {
      onSuccess: (updated) => {
        setForm(replaceForm(updated))
        update.reset()
        onReplaced(updated)
      },
    })
  }

  return (
    <Modal title={`Replace value of “${credential.name}”`} onClose={onClose} className="modal-wide">
      <form onSubmit={submit} autoComplete="off">
        <p className="write-only-note">
          <Lock size={15} aria-hidden />
          <span>
            The current value is never shown. The new value replaces it for every runbook that uses{' '}
            <code>{credential.name}</code>.
          </span>
        </p>
        {spec.needs === 'username' && (
          <Field label="Username" error={errors.fields.username}>
            {(id) => (
              <input id={id} className="input" value={form.username} autoComplete="off" onChange={(e) => set('username', e.target.value)} />
            )}
          </Field>
        )}
        {spec.needs === 'header_name' && (
          <Field label="Header name" error={errors.fields.header_name}>
            {(id) => (
              <input id={id} className="input mono" value={form.header_name} autoComplete="off" onChange={(e) => set('header_name', e.target.value)} />
            )}
          </Field>
        )}
        <Field label="New value" error={errors.fields.value ?? valueProblem(form.value) ?? undefined} hint={spec.valueHint}>
          {(id) => <SecretInput id={id} value={form.value} multiline={spec.multiline} onChange={(value) => set('value', value)} />}
        </Field>
        <Field label="Description" error={errors.fields.description}>
          {(id) => <input id={id} className="input" value={form.description} onChange={(e) => set('description', e.target.value)} />}
        </Field>
        {errors.banner && <ErrorBanner error={errors.banner} title="The value was not replaced" />}
        <div className="modal-footer">
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={!ready || update.isPending}>
            <RefreshCw size={16} aria-hidden /> {update.isPending ? 'Replacing…' : 'Replace value'}
          </button>
        </div>
      </form>
    </Modal>
  )
}
