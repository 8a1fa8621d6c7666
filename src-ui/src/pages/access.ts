// Rules of the Access page: a key's state, the create-key request and the expiry date's meaning.

import type { ApiKeyCreate, ApiKeyInfo, Role } from '../api/types'

export type KeyState = 'active' | 'expired' | 'revoked' | 'user_disabled'

/** Whether a key works; `disabledUsers` holds the ids of disabled users, whose keys are refused. */
export function keyState(key: ApiKeyInfo, now: number = Date.now(), disabledUsers: ReadonlySet<string> = new Set()): KeyState {
  if (key.revoked_at) return 'revoked'
  if (key.expires_at && Date.parse(key.expires_at) <= now) return 'expired'
  if (key.user_id && disabledUsers.has(key.user_id)) return 'user_disabled'
  return 'active'
}

/** A date input's `YYYY-MM-DD` as the end of that local day, in RFC 3339: the key works through that day. */
export function endOfLocalDay(date: string): string | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date)
  if (!match) return null
  const [, y, m, d] = match.map(Number)
  const end = new Date(y, m - 1, d, 23, 59, 59)
  return Number.isNaN(end.getTime()) ? null : end.toISOString()
}

/** A date input's `YYYY-MM-DD` as the start of that local day, in RFC 3339. */
export function startOfLocalDay(date: string): string | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date)
  if (!match) return null
  const [, y, m, d] = match.map(Number)
  const start = new Date(y, m - 1, d, 0, 0, 0)
  return Number.isNaN(start.getTime()) ? null : start.toISOString()
}

/** `YYYY-MM-DD` of a local day, for a date input's `min`. */
export function localDate(time: number): string {
  const date = new Date(time)
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
}

export interface KeyForm {
  name: string
  /** Acts with a fixed role, or with the role of a user (following its changes). */
  owner: 'role' | 'user'
  role: Role
  userId: string
  /** `YYYY-MM-DD`, or empty for no expiry. */
  expires: string
}

export const EMPTY_KEY_FORM: KeyForm = { name: '', owner: 'role', role: 'operator', userId: '', expires: '' }

/** What is wrong with the form, or null when it can be sent. */
export function keyFormProblem(form: KeyForm, now: number = Date.now()): string | null {
  if (form.name.trim() === '') return 'Give the key a name.'
  if (form.owner === 'user' && form.userId === '') return 'Pick the user the key belongs to.'
  if (form.expires !== '') {
    const expires = endOfLocalDay(form.expires)
    if (!expires) return 'The expiry is not a date.'
    if (Date.parse(expires) <= now) return 'The expiry date has passed.'
  }
  return null
}

/** The request: exactly one of role and user_id, and the expiry only when one was picked. */
export function keyBody(form: KeyForm): ApiKeyCreate {
  const body: ApiKeyCreate = { name: form.name.trim() }
  if (form.owner === 'user') body.user_id = form.userId
  else body.role = form.role
  const expires = form.expires ? endOfLocalDay(form.expires) : null
  if (expires) body.expires_at = expires
  return body
}
