// A text input for a short list of numbers ("0, 2"), keeping the typed text while it is incomplete.

import { useState } from 'react'
import { headerLines, parseHeaderLines, parseNumberList } from '../util/lists'

interface ListInputProps {
  id?: string
  value: number[]
  onChange: (value: number[]) => void
  placeholder?: string
}

export function NumberListInput({ id, value, onChange, placeholder }: ListInputProps) {
  const joined = value.join(', ')
  const [text, setText] = useState(joined)
  const [seen, setSeen] = useState(joined)
  // The value changed from outside (a reset, a rollback): show it.
  if (joined !== seen) {
    setSeen(joined)
    if (parseNumberList(text)?.join(', ') !== joined) setText(joined)
  }
  const invalid = parseNumberList(text) === null
  return (
    <input
      id={id}
      className={`input${invalid ? ' input-invalid' : ''}`}
      value={text}
      placeholder={placeholder}
      aria-invalid={invalid}
      onChange={(e) => {
        setText(e.target.value)
        const parsed = parseNumberList(e.target.value)
        if (parsed) {
          setSeen(parsed.join(', '))
          onChange(parsed)
        }
      }}
    />
  )
}

export function HeadersInput({ id, value, onChange }: { id?: string; value: Record<string, string>; onChange: (v: Record<string, string>) => void }) {
  const joined = headerLines(value)
  const [text, setText] = useState(joined)
  const [seen, setSeen] = useState(joined)
  if (joined !== seen) {
    setSeen(joined)
    if (headerLines(parseHeaderLines(text)) !== joined) setText(joined)
  }
  return (
    <textarea
      id={id}
      className="input textarea mono"
      rows={2}
      value={text}
      placeholder="Accept: application/json"
      onChange={(e) => {
        setText(e.target.value)
        const parsed = parseHeaderLines(e.target.value)
        setSeen(headerLines(parsed))
        onChange(parsed)
      }}
    />
  )
}
