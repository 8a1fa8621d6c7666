// Text inputs for short lists — numbers ("0, 2") or words ("api.example.com, *.example.com") —
// keeping the typed text while it is incomplete.

import { useState } from 'react'
import { looseNumberList, parseNumberList, parseTextList } from '../util/lists'
import { useReadOnly } from './readOnly'

/**
 * The text of a list input: kept as typed while it is incomplete, replaced when the value changes
 * from outside (a reset, a rollback). `edit` takes what was typed and returns the entries to store:
 * the list it means, or while it is not one yet, what `loose` reads in it, so that what a save
 * sends is what the input shows and the server names what is wrong with it.
 */
function useListText<T>(value: T[], parse: (text: string) => T[] | null, loose: (text: string) => T[]) {
  const joined = value.join(', ')
  const [text, setText] = useState(joined)
  const [seen, setSeen] = useState(joined)
  if (joined !== seen) {
    setSeen(joined)
    if ((parse(text) ?? loose(text)).join(', ') !== joined) setText(joined)
  }
  const edit = (typed: string): T[] => {
    setText(typed)
    const entries = parse(typed) ?? loose(typed)
    setSeen(entries.join(', '))
    return entries
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
  const [text, edit] = useListText(value, parseNumberList, looseNumberList)
  const invalid = parseNumberList(text) === null
  return (
    <input
      id={id}
      className={`input${invalid ? ' input-invalid' : ''}`}
      value={text}
      placeholder={placeholder}
      aria-invalid={invalid}
      readOnly={readOnly}
      onChange={(e) => onChange(edit(e.target.value))}
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
  const [text, edit] = useListText(value, parseTextList, parseTextList)
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
      onChange={(e) => onChange(edit(e.target.value))}
    />
  )
}
