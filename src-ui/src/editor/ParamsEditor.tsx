// The runbook's parameters: name, type, default and whether a value is required.

import { Plus, Trash2 } from 'lucide-react'
import { useState } from 'react'
import type { Param, ParamType, ParamValue } from '../api/types'
import { useReadOnly } from '../components/readOnly'
import { defaultFromText, type EditorAction } from './draft'

function formatDefault(value: ParamValue | undefined): string {
  return value === null || value === undefined ? '' : String(value)
}

interface DefaultInputProps {
  label: string
  type: ParamType
  value: ParamValue | undefined
  onChange: (value: ParamValue) => void
}

/**
 * A string or number default. The text stays as typed ("0." on the way to "0.5") while it means
 * the stored default; a default changed elsewhere (a reset, a type change) shows as it is.
 */
function DefaultInput({ label, type, value, onChange }: DefaultInputProps) {
  const readOnly = useReadOnly()
  const [text, setText] = useState(() => formatDefault(value))
  const shown = defaultFromText(type, text) === (value ?? null) ? text : formatDefault(value)
  const notANumber = type === 'number' && typeof value === 'string'
  return (
    <input
      className="input"
      aria-label={label}
      inputMode={type === 'number' ? 'decimal' : undefined}
      aria-invalid={notANumber || undefined}
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

export function ParamsEditor({ params, dispatch }: { params: Param[]; dispatch: (action: EditorAction) => void }) {
  const readOnly = useReadOnly()
  const update = (index: number, param: Param) => dispatch({ type: 'update_param', index, param })
  return (
    <div className="params">
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
            {params.map((param, index) => (
              <tr key={index}>
                <td>
                  <input
                    className="input mono"
                    aria-label={`Parameter ${index + 1} name`}
                    value={param.name}
                    readOnly={readOnly}
                    onChange={(e) => update(index, { ...param, name: e.target.value })}
                  />
                </td>
                <td>
                  <select
                    className="input"
                    aria-label={`Parameter ${index + 1} type`}
                    value={param.type ?? 'string'}
                    disabled={readOnly}
                    onChange={(e) => {
                      const type = e.target.value as ParamType
                      update(index, { ...param, type, default: defaultFromText(type, String(param.default ?? '')) })
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
                    />
                  )}
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
            ))}
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
