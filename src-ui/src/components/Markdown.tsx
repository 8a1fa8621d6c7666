// Markdown rendering (no raw HTML) and a textarea with an Edit/Preview toggle (Source/Preview when
// read only).

import { useId, useState } from 'react'
import ReactMarkdown from 'react-markdown'
import { useReadOnly } from './readOnly'

export function Markdown({ text }: { text: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown>{text}</ReactMarkdown>
    </div>
  )
}

interface MarkdownFieldProps {
  label: string
  value: string
  onChange: (value: string) => void
  placeholder?: string
  rows?: number
  /** A problem with the text, shown under it. */
  error?: string
}

export function MarkdownField({ label, value, onChange, placeholder, rows = 4, error }: MarkdownFieldProps) {
  const readOnly = useReadOnly()
  // Until the user picks a mode, text that cannot be edited is shown rendered. Read-only may
  // arrive after mount (the role loads later), so it is not baked into the initial state.
  const [picked, setPreview] = useState<boolean | null>(null)
  const preview = picked ?? readOnly
  const id = useId()
  return (
    <div className={`field${error ? ' field-invalid' : ''}`}>
      <div className="field-label-row">
        <label htmlFor={id} className="field-label">
          {label}
        </label>
        <div className="segmented" role="group" aria-label={`${label} mode`}>
          <button type="button" aria-pressed={!preview} onClick={() => setPreview(false)}>
            {readOnly ? 'Source' : 'Edit'}
          </button>
          <button type="button" aria-pressed={preview} onClick={() => setPreview(true)}>
            Preview
          </button>
        </div>
      </div>
      {preview ? (
        <div className="markdown-preview" aria-label={`${label} preview`}>
          {value.trim() ? <Markdown text={value} /> : <p className="muted">Nothing to preview.</p>}
        </div>
      ) : (
        <textarea
          id={id}
          className="input textarea"
          value={value}
          rows={rows}
          placeholder={placeholder}
          readOnly={readOnly}
          onChange={(e) => onChange(e.target.value)}
        />
      )}
      {error && (
        <div className="field-error" role="alert">
          {error}
        </div>
      )}
    </div>
  )
}
