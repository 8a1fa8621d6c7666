// A text input for a short list of numbers ("0, 2"), keeping the typed text while it is incomplete.

import { useState } from 'react'
import { parseNumberList } from '../util/lists'
import { useReadOnly } from './readOnly'

interface ListInputProps {
  id?: string
  value: number[]
  onChange: (value: number[]) => void
  placeholder?: string
}

export function NumberListInput({ id, value, onChange, placeholder }: ListInputProps) {
  const readOnly = useReadOnly()
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
      readOnly={readOnly}
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
