// Text inputs for short lists — numbers ("0, 2") or words ("api.example.com, *.example.com") —
// keeping the typed text while it is incomplete.

import { useState } from 'react'
import { parseNumberList, parseTextList } from '../util/lists'
import { useReadOnly } from './readOnly'

/**
 * The text of a list input: kept as typed while it is incomplete, replaced when the value changes
 * from outside (a reset, a rollback). `edit` takes what was typed and returns its entries, or null
 * while it is not a list yet.
 */
function useListText<T>(value: T[], parse: (text: string) => T[] | null) {
  const joined = value.join(', ')
  const [text, setText] = useState(joined)
  const [seen, setSeen] = useState(joined)
  if (joined !== seen) {
    setSeen(joined)
    if (parse(text)?.join(', ') !== joined) setText(joined)
  }
  const edit = (typed: string): T[] | null => {
    setText(typed)
    const parsed = parse(typed)
    if (parsed) setSeen(parsed.join(', '))
    return parsed
  }
  return [text, edit] as const
}

interface ListInputProps {
  id?: string
  value: number[]
  onChange: (value: number[]) => void
  placeholder?: string
}

export function NumberListInput({ id, value, onChange, placeholder }: ListInputProps) {
  const readOnly = useReadOnly()
  const [text, edit] = useListText(value, parseNumberList)
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
        const parsed = edit(e.target.value)
        if (parsed) onChange(parsed)
      }}
    />
  )
}

interface TextListInputProps {
  id?: string
  value: string[]
  onChange: (value: string[]) => void
  placeholder?: string
  /** Marks the input when the entries are known to be wrong. */
  invalid?: boolean
  className?: string
}

export function TextListInput({ id, value, onChange, placeholder, invalid = false, className }: TextListInputProps) {
  const readOnly = useReadOnly()
  const [text, edit] = useListText(value, parseTextList)
  const classes = ['input', className, invalid ? 'input-invalid' : null].filter(Boolean).join(' ')
  return (
    <input
      id={id}
      className={classes}
      value={text}
      placeholder={placeholder}
      aria-invalid={invalid}
      autoComplete="off"
      spellCheck={false}
      readOnly={readOnly}
      onChange={(e) => onChange(edit(e.target.value) ?? [])}
    />
  )
}
