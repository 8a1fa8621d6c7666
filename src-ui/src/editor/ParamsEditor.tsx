// The runbook's parameters: name, type, default and whether a value is required.

import { Plus, Trash2 } from 'lucide-react'
import { useState } from 'react'
import type { FieldError, Param, ParamType, ParamValue } from '../api/types'
import { useReadOnly } from '../components/readOnly'
import { defaultFromText, type EditorAction } from './draft'
import { errorsAt, fieldMessage } from './fieldErrors'

function formatDefault(value: ParamValue | undefined): string {
  return value === null || value === undefined ? '' : String(value)
}

interface DefaultInputProps {
  label: string
  type: ParamType
  value: ParamValue | undefined
  onChange: (value: ParamValue) => void
  /** The server refused this default. */
  refused: boolean
}

/** A server error under one control of a parameter's row. */
function CellError({ message }: { message: string | undefined }) {
  return message ? (
    <div className="field-error" role="alert">
      {message}
    </div>
  ) : null
}

/**
 * A string or number default. The text stays as typed ("0." on the way to "0.5") while it means
 * the stored default; a default changed elsewhere (a reset, a type change) shows as it is.
 */
function DefaultInput({ label, type, value, onChange, refused }: DefaultInputProps) {
  const readOnly = useReadOnly()
  const [text, setText] = useState(() => formatDefault(value))
  const shown = defaultFromText(type, text) === (value ?? null) ? text : formatDefault(value)
  const notANumber = type === 'number' && typeof value === 'string'
  return (
    <input
      className="input"
      aria-label={label}
      inputMode={type === 'number' ? 'decimal' : undefined}
      aria-invalid={notANumber || refused || undefined}
      title={notANumber ? 'Not a number' : undefined}
      value={shown}
      readOnly={readOnly}
      onChange={(e) => {
        setText(e.target.value)
        onChange(defaultFromText(type, e.target.value))
      }}
    />
  )
}

interface ParamsEditorProps {
  params: Param[]
  /** Every server error of the last save; those under `params` are shown here. */
  errors: FieldError[]
  dispatch: (action: EditorAction) => void
}

export function ParamsEditor({ params, errors, dispatch }: ParamsEditorProps) {
  const readOnly = useReadOnly()
  const update = (index: number, param: Param) => dispatch({ type: 'update_param', index, param })
  const listMessage = errors
    .filter((error) => error.path === 'params')
    .map((error) => error.message)
    .join(' · ')
  return (
    <div className="params">
      <CellError message={listMessage} />
      {params.length === 0 && (
        <p className="muted">
          {readOnly ? 'No parameters.' : 'No parameters. Add one to ask for a value (like a service name) when the runbook runs.'}
        </p>
      )}
      {params.length > 0 && (
        <table className="params-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Default</th>
              <th>Required</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {params.map((param, index) => {
              const mine = errorsAt(errors, `params[${index}]`)
              // Errors about the parameter as a whole or a field without a control of its own go with its name.
              const nameMessage = [...mine.card, ...[...mine.fields].filter(([field]) => field !== 'default').flatMap(([, list]) => list)]
                .map((error) => error.message)
                .join(' · ')
              const defaultMessage = fieldMessage(mine.fields, 'default')
              return (
                <tr key={index}>
                  <td>
                    <input
                      className="input mono"
                      aria-label={`Parameter ${index + 1} name`}
                      aria-invalid={nameMessage ? true : undefined}
                      value={param.name}
                      readOnly={readOnly}
                      onChange={(e) => update(index, { ...param, name: e.target.value })}
                    />
                    <CellError message={nameMessage} />
                  </td>
                  <td>
                    <select
                      className="input"
                      aria-label={`Parameter ${index + 1} type`}
                      value={param.type ?? 'string'}
                      disabled={readOnly}
                      onChange={(e) => {
                        const type = e.target.value as ParamType
                        // A yes/no default means nothing as text: a string or number starts without one.
                        const text = typeof param.default === 'boolean' ? '' : String(param.default ?? '')
                        update(index, { ...param, type, default: defaultFromText(type, text) })
                      }}
                    >
                      <option value="string">string</option>
                      <option value="number">number</option>
                      <option value="boolean">boolean</option>
                    </select>
                  </td>
                  <td>
                    {param.type === 'boolean' ? (
                      <select
                        className="input"
                        aria-label={`Parameter ${index + 1} default`}
                        aria-invalid={defaultMessage ? true : undefined}
                        value={String(param.default === true)}
                        disabled={readOnly}
                        onChange={(e) => update(index, { ...param, default: e.target.value === 'true' })}
                      >
                        <option value="false">false</option>
                        <option value="true">true</option>
                      </select>
                    ) : (
                      <DefaultInput
                        label={`Parameter ${index + 1} default`}
                        type={param.type ?? 'string'}
                        value={param.default}
                        onChange={(value) => update(index, { ...param, default: value })}
                        refused={defaultMessage !== undefined}
                      />
                    )}
                    <CellError message={defaultMessage} />
                  </td>
                  <td className="center">
                    <input
                      type="checkbox"
                      aria-label={`Parameter ${index + 1} required`}
                      checked={param.required ?? false}
                      disabled={readOnly}
                      onChange={(e) => update(index, { ...param, required: e.target.checked })}
                    />
                  </td>
                  <td>
                    {!readOnly && (
                      <button
                        type="button"
                        className="icon-btn icon-btn-danger"
                        aria-label={`Remove parameter ${param.name}`}
                        onClick={() => dispatch({ type: 'delete_param', index })}
                      >
                        <Trash2 size={16} />
                      </button>
                    )}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
      {!readOnly && (
        <button type="button" className="btn btn-ghost btn-sm" onClick={() => dispatch({ type: 'add_param' })}>
          <Plus size={14} aria-hidden /> Add parameter
        </button>
      )}
    </div>
  )
}
