// Routes a refused form submission to the fields it is about: by the error's stable `code`
// (`duplicate_name` → the name field) or by the `path` of each 422 detail. What names no field
// of the form is left for a banner.

import { useMemo, useState } from 'react'
import { ApiError, normalizeError } from '../api/errors'

export interface RoutedErrors<F extends string> {
  /** One message per field of the form. */
  fields: Partial<Record<F, string>>
  /** The error as a whole when no part of it could be put on a field. */
  banner: ApiError | null
}

export function routeServerError<F extends string>(
  error: unknown,
  fieldsByCode: Readonly<Record<string, F>>,
  formFields: readonly F[],
): RoutedErrors<F> {
  if (error === null || error === undefined) return { fields: {}, banner: null }
  const apiError = normalizeError(error)
  const fields: Partial<Record<F, string>> = {}
  let unplaced = false
  for (const detail of apiError.fieldErrors) {
    const field = formFields.find((f) => f === detail.path)
    if (field) fields[field] = fields[field] ? `${fields[field]} ${detail.message}` : detail.message
    else unplaced = true
  }
  const byCode = fieldsByCode[apiError.code]
  if (byCode && !fields[byCode]) fields[byCode] = apiError.message
  const placed = Object.keys(fields).length > 0
  return { fields, banner: placed && !unplaced ? null : apiError }
}

/**
 * The routed errors of a form's last submission; a field's error hides once that field is edited,
 * since it was about the value that was sent.
 */
export function useRoutedErrors<F extends string>(
  error: unknown,
  fieldsByCode: Readonly<Record<string, F>>,
  formFields: readonly F[],
): RoutedErrors<F> & { edited: (field: F) => void } {
  const [seen, setSeen] = useState<unknown>(error)
  const [hidden, setHidden] = useState<ReadonlySet<F>>(() => new Set())
  if (error !== seen) {
    setSeen(error)
    setHidden(new Set())
  }
  const routed = useMemo(() => routeServerError(error, fieldsByCode, formFields), [error, fieldsByCode, formFields])
  const fields: Partial<Record<F, string>> = {}
  for (const field of formFields) {
    const message = routed.fields[field]
    if (message && !hidden.has(field)) fields[field] = message
  }
  const edited = (field: F) => {
    if (routed.fields[field] && !hidden.has(field)) setHidden(new Set([...hidden, field]))
  }
  return { fields, banner: routed.banner, edited }
}
