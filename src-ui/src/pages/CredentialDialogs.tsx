// The credential dialogs: create (fields follow the kind) and edit (the value is write-only: its
// field starts empty, the current value is never fetched; the metadata and hosts can be changed
// with or without a new value). Values live only in the form's state, which is cleared on
// success, and in a mutation that is dropped as soon as it is done.

import { Lock, Plus, RefreshCw } from 'lucide-react'
import { useState, type FormEvent } from 'react'
import { useCreateCredential, useUpdateCredential } from '../api/queries'
import { CREDENTIAL_KINDS, type CredentialInfo, type CredentialKind } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { Field } from '../components/Field'
import { TextListInput } from '../components/ListInput'
import { Modal } from '../components/Modal'
import { SecretInput } from '../components/SecretInput'
import { useRoutedErrors } from '../util/serverErrors'
import {
  canSubmit,
  createBody,
  CREDENTIAL_ERROR_FIELDS,
  CREDENTIAL_FIELDS,
  EMPTY_CREDENTIAL_FORM,
  hostsProblem,
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
        {spec.http && <HostsField hosts={form.hosts} serverError={errors.fields.hosts} onChange={(hosts) => set('hosts', hosts)} />}
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

interface HostsFieldProps {
  hosts: string[]
  /** The server's refusal of the hosts last sent. */
  serverError?: string
  onChange: (hosts: string[]) => void
}

/** The hosts an HTTP credential is bound to, with what binding means for the runbooks that use it. */
function HostsField({ hosts, serverError, onChange }: HostsFieldProps) {
  const error = serverError ?? hostsProblem(hosts) ?? undefined
  const hint = (
    <>
      An API call sends this credential only to these hosts, e.g. <code>api.example.com</code>, <code>*.example.com</code> (its
      subdomains), <code>10.0.0.5:8443</code>. Left empty, it is sent only to a host written in the runbook’s URL itself, not one
      from a parameter or an earlier step. A credential with hosts cannot be put in a command’s environment.
    </>
  )
  return (
    <Field label="Hosts" error={error} hint={hint}>
      {(id) => (
        <TextListInput
          id={id}
          className="mono"
          value={hosts}
          invalid={Boolean(error)}
          placeholder="api.example.com, *.example.com"
          onChange={onChange}
        />
      )}
    </Field>
  )
}

type ReplaceField = keyof ReplaceForm
const REPLACE_FIELDS: readonly ReplaceField[] = ['value', 'username', 'header_name', 'description', 'hosts']
const REPLACE_ERROR_FIELDS: Readonly<Record<string, ReplaceField>> = {
  missing_value: 'value',
  invalid_value: 'value',
  value_too_large: 'value',
  missing_username: 'username',
  invalid_username: 'username',
  missing_header_name: 'header_name',
  invalid_header_name: 'header_name',
  invalid_description: 'description',
  invalid_hosts: 'hosts',
  hosts_not_applicable: 'hosts',
}

interface ReplaceValueDialogProps {
  credential: CredentialInfo
  onClose: () => void
  /** `replacedValue` is false when only the metadata or the hosts changed. */
  onReplaced: (credential: CredentialInfo, replacedValue: boolean) => void
}

export function ReplaceValueDialog({ credential, onClose, onReplaced }: ReplaceValueDialogProps) {
  const [form, setForm] = useState<ReplaceForm>(() => replaceForm(credential))
  const update = useUpdateCredential(credential.id)
  const errors = useRoutedErrors(update.error, REPLACE_ERROR_FIELDS, REPLACE_FIELDS)
  const spec = KIND_SPECS[credential.kind]
  const set = <K extends ReplaceField>(field: K, value: ReplaceForm[K]) => {
    setForm((current) => ({ ...current, [field]: value }))
    errors.edited(field)
  }
  const body = updateBody(credential, form)
  const changed = Object.keys(body).length > 0
  // Without a new value the button saves the other changes and the current value stays.
  const metadataOnly = changed && body.value === undefined
  const ready =
    changed &&
    !valueProblem(form.value) &&
    !(spec.http && hostsProblem(form.hosts)) &&
    !(spec.needs === 'username' && form.username.trim() === '') &&
    !(spec.needs === 'header_name' && form.header_name.trim() === '')

  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (!ready || update.isPending) return
    update.mutate(body, {
      onSuccess: (updated) => {
        setForm(replaceForm(updated))
        update.reset()
        onReplaced(updated, !metadataOnly)
      },
    })
  }

  return (
    <Modal title={`Edit “${credential.name}”`} onClose={onClose} className="modal-wide">
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
        <Field
          label="New value"
          error={errors.fields.value ?? valueProblem(form.value) ?? undefined}
          hint={`${spec.valueHint} Leave empty to keep the current value.`}
        >
          {(id) => <SecretInput id={id} value={form.value} multiline={spec.multiline} onChange={(value) => set('value', value)} />}
        </Field>
        {spec.http && <HostsField hosts={form.hosts} serverError={errors.fields.hosts} onChange={(hosts) => set('hosts', hosts)} />}
        <Field label="Description" error={errors.fields.description}>
          {(id) => <input id={id} className="input" value={form.description} onChange={(e) => set('description', e.target.value)} />}
        </Field>
        {errors.banner && <ErrorBanner error={errors.banner} title={metadataOnly ? 'The changes were not saved' : 'The value was not replaced'} />}
        <div className="modal-footer">
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={!ready || update.isPending}>
            <RefreshCw size={16} aria-hidden /> {submitLabel(metadataOnly, update.isPending)}
          </button>
        </div>
      </form>
    </Modal>
  )
}

function submitLabel(metadataOnly: boolean, pending: boolean): string {
  if (metadataOnly) return pending ? 'Saving…' : 'Save changes'
  return pending ? 'Replacing…' : 'Replace value'
}
