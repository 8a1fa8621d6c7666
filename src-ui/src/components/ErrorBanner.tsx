// A readable error box for any failed request, listing per-field problems when there are some.

import { CircleAlert } from 'lucide-react'
import type { ReactNode } from 'react'
import { normalizeError } from '../api/errors'

export function ErrorBanner({ error, title, children }: { error: unknown; title?: string; children?: ReactNode }) {
  const apiError = normalizeError(error)
  const fields = apiError.fieldErrors
  return (
    <div className="banner banner-error" role="alert">
      <CircleAlert size={18} aria-hidden className="banner-icon" />
      <div className="banner-body">
        <strong>{title ?? apiError.message}</strong>
        {/* With per-field problems the message only summarises them, so show the list alone. */}
        {title && fields.length === 0 && <div>{apiError.message}</div>}
        {fields.length > 0 && (
          <ul className="field-errors">
            {fields.map((field, i) => (
              <li key={`${field.path}-${i}`}>
                <code>{field.path}</code> {field.message}
              </li>
            ))}
          </ul>
        )}
        {children}
      </div>
    </div>
  )
}
