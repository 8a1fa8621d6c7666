// The parameter form shown before a run starts.

import { Play } from 'lucide-react'
import { useId, useState, type FormEvent } from 'react'
import type { Param, ParamValue } from '../api/types'
import { runParams } from '../editor/draft'
import { ErrorBanner } from './ErrorBanner'
import { Field } from './Field'
import { Modal } from './Modal'

interface RunDialogProps {
  runbookName: string
  version: number
  params: Param[]
  unsavedChanges: boolean
  starting: boolean
  error: unknown
  onRun: (values: Record<string, ParamValue>) => void
  onClose: () => void
}

function initialValues(params: Param[]): Record<string, string> {
  return Object.fromEntries(params.map((p) => [p.name, p.default === null || p.default === undefined ? '' : String(p.default)]))
}

/** The description, then "Required" for a value that must be given. */
function paramHint(param: Param): string | undefined {
  const parts = [param.description?.trim(), param.required ? 'Required' : undefined].filter(Boolean)
  return parts.length > 0 ? parts.join(' · ') : undefined
}

export function RunDialog({ runbookName, version, params, unsavedChanges, starting, error, onRun, onClose }: RunDialogProps) {
  const [values, setValues] = useState(() => initialValues(params))
  const hintId = useId()
  const missing = params.filter((p) => p.required && p.type !== 'boolean' && (values[p.name] ?? '').trim() === '')
  const missingHint = missing.length > 0 ? `Fill in ${missing.map((p) => p.name).join(', ')} to start.` : undefined

  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (missing.length > 0) return
    onRun(runParams(params, values))
  }

  return (
    <Modal title={`Run “${runbookName}”`} onClose={onClose}>
      <form onSubmit={submit} className="run-form">
        {unsavedChanges && (
          <div className="banner banner-warning">
            You have unsaved changes. This run uses the saved version {version}.
          </div>
        )}
        {params.length === 0 && <p className="muted">This runbook has no parameters.</p>}
        {params.map((param) => (
          <Field key={param.name} label={param.name} hint={paramHint(param)}>
            {(id) =>
              param.type === 'boolean' ? (
                <select
                  id={id}
                  className="input"
                  value={values[param.name] === 'true' ? 'true' : 'false'}
                  onChange={(e) => setValues({ ...values, [param.name]: e.target.value })}
                >
                  <option value="false">false</option>
                  <option value="true">true</option>
                </select>
              ) : (
                <input
                  id={id}
                  className="input"
                  type={param.type === 'number' ? 'number' : 'text'}
                  value={values[param.name] ?? ''}
                  required={param.required}
                  onChange={(e) => setValues({ ...values, [param.name]: e.target.value })}
                />
              )
            }
          </Field>
        ))}
        {error !== null && error !== undefined && <ErrorBanner error={error} title="The run did not start" />}
        <div className="modal-footer">
          {missingHint && (
            <span className="modal-footer-hint" id={hintId}>
              {missingHint}
            </span>
          )}
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button
            type="submit"
            className="btn btn-run"
            disabled={starting || missing.length > 0}
            title={missingHint}
            aria-describedby={missingHint ? hintId : undefined}
          >
            <Play size={16} aria-hidden /> {starting ? 'Starting…' : 'Start run'}
          </button>
        </div>
      </form>
    </Modal>
  )
}
