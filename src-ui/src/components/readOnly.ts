// Whether the form controls below may change what they show. The runbook editor sets it for a
// role that may not save; shared controls (key/value rows, number lists, markdown) read it, and
// stay editable wherever nobody sets it.

import { createContext, useContext } from 'react'

export const ReadOnlyContext = createContext(false)

export function useReadOnly(): boolean {
  return useContext(ReadOnlyContext)
}
