// A labelled form control: the label is tied to the control through a generated id.

import { useId, type ReactNode } from 'react'

interface FieldProps {
  label: string
  hint?: ReactNode
  className?: string
  children: (id: string) => ReactNode
}

export function Field({ label, hint, className, children }: FieldProps) {
  const id = useId()
  return (
    <div className={`field${className ? ` ${className}` : ''}`}>
      <label htmlFor={id} className="field-label">
        {label}
      </label>
      {children(id)}
      {hint && <div className="field-hint">{hint}</div>}
    </div>
  )
}
