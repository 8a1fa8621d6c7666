// An editable list of name/value pairs (environment, secrets, HTTP headers), kept as rows while
// typing so an empty or repeated name does not make a row vanish.

import { Plus, X } from 'lucide-react'
import { useState } from 'react'
import { recordRows, rowsRecord, sameRecord, type KeyValueRow } from '../util/lists'
import { useReadOnly } from './readOnly'

interface KeyValueEditorProps {
  /** What one entry is called, for labels: "Variable", "Header", "Secret". */
  noun: string
  value: Record<string, string>
  onChange: (value: Record<string, string>) => void
  keyPlaceholder: string
  valuePlaceholder: string
  /** A name that does not fit is marked (e.g. not a valid environment variable name). */
  keyPattern?: RegExp
  monoValues?: boolean
}

export function KeyValueEditor({ noun, value, onChange, keyPlaceholder, valuePlaceholder, keyPattern, monoValues = true }: KeyValueEditorProps) {
  const readOnly = useReadOnly()
  const [rows, setRows] = useState<KeyValueRow[]>(() => recordRows(value))
  const [seen, setSeen] = useState(value)
  // The value changed from outside (a reset, a rollback): show it, unless the rows already say so.
  if (!sameRecord(value, seen)) {
    setSeen(value)
    if (!sameRecord(rowsRecord(rows), value)) setRows(recordRows(value))
  }
  const update = (next: KeyValueRow[]) => {
    setRows(next)
    const record = rowsRecord(next)
    if (!sameRecord(record, value)) {
      setSeen(record)
      onChange(record)
    }
  }
  const counts = new Map<string, number>()
  for (const row of rows) counts.set(row.key.trim(), (counts.get(row.key.trim()) ?? 0) + 1)
  const lower = noun.toLowerCase()

  return (
    <div className="kv">
      {rows.map((row, i) => {
        const name = row.key.trim()
        const bad = name !== '' && ((counts.get(name) ?? 0) > 1 || (keyPattern !== undefined && !keyPattern.test(name)))
        return (
          <div className="kv-row" key={i}>
            <input
              className={`input mono${bad ? ' input-invalid' : ''}`}
              aria-label={`${noun} ${i + 1} name`}
              aria-invalid={bad}
              value={row.key}
              placeholder={keyPlaceholder}
              spellCheck={false}
              readOnly={readOnly}
              onChange={(e) => update(rows.map((r, j) => (j === i ? { ...r, key: e.target.value } : r)))}
            />
            <span className="kv-sep" aria-hidden>
              =
            </span>
            <input
              className={`input${monoValues ? ' mono' : ''}`}
              aria-label={`${noun} ${i + 1} value`}
              value={row.value}
              placeholder={valuePlaceholder}
              spellCheck={false}
              readOnly={readOnly}
              onChange={(e) => update(rows.map((r, j) => (j === i ? { ...r, value: e.target.value } : r)))}
            />
            {!readOnly && (
              <button
                type="button"
                className="icon-btn icon-btn-danger"
                aria-label={`Remove ${lower} ${name || i + 1}`}
                title={`Remove ${lower}`}
                onClick={() => update(rows.filter((_, j) => j !== i))}
              >
                <X size={14} />
              </button>
            )}
          </div>
        )
      })}
      {readOnly && rows.length === 0 && <p className="muted kv-none">None</p>}
      {!readOnly && (
        <button type="button" className="btn btn-ghost btn-sm kv-add" onClick={() => setRows([...rows, { key: '', value: '' }])}>
          <Plus size={14} aria-hidden /> Add {lower}
        </button>
      )}
    </div>
  )
}
