// A labelled form control: the label is tied to the control through a generated id, and a
// server error about the field is shown right under it.

import { useId, type ReactNode } from 'react'

interface FieldProps {
  label: string
  hint?: ReactNode
  /** A problem with the value, shown instead of nothing under the control. */
  error?: string
  className?: string
  children: (id: string) => ReactNode
}

export function Field({ label, hint, error, className, children }: FieldProps) {
  const id = useId()
  const classes = ['field', className, error ? 'field-invalid' : null].filter(Boolean).join(' ')
  return (
    <div className={classes}>
      <label htmlFor={id} className="field-label">
        {label}
      </label>
      {children(id)}
      {error && (
        <div className="field-error" role="alert">
          {error}
        </div>
      )}
      {hint && <div className="field-hint">{hint}</div>}
    </div>
  )
}
