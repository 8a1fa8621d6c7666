import { describe, expect, it } from 'vitest'
import type { ApiKeyInfo } from '../api/types'
import { EMPTY_KEY_FORM, endOfLocalDay, keyBody, keyFormProblem, keyState, localDate } from './access'

const key: ApiKeyInfo = {
  id: 'k1',
  name: 'ci',
  role: 'operator',
  user_id: null,
  user_name: null,
  created_at: '2026-01-01T00:00:00Z',
  last_used_at: null,
  expires_at: null,
  revoked_at: null,
}
const NOW = Date.parse('2026-03-10T12:00:00Z')

describe('API keys', () => {
  it('tells active, expired and revoked keys apart', () => {
    expect(keyState(key, NOW)).toBe('active')
    expect(keyState({ ...key, expires_at: '2026-03-11T00:00:00Z' }, NOW)).toBe('active')
    expect(keyState({ ...key, expires_at: '2026-03-10T11:59:59Z' }, NOW)).toBe('expired')
    expect(keyState({ ...key, expires_at: '2026-03-10T11:59:59Z', revoked_at: '2026-03-01T00:00:00Z' }, NOW)).toBe('revoked')
    // A user's key is refused while the user is disabled.
    const bobs = { ...key, user_id: 'u2', user_name: 'bob' }
    expect(keyState(bobs, NOW, new Set(['u2']))).toBe('user_disabled')
    expect(keyState(bobs, NOW, new Set(['u3']))).toBe('active')
    expect(keyState({ ...bobs, revoked_at: '2026-03-01T00:00:00Z' }, NOW, new Set(['u2']))).toBe('revoked')
  })

  it('sends exactly one of role and user, and the expiry as the end of the local day', () => {
    expect(keyBody({ ...EMPTY_KEY_FORM, name: ' ci ', role: 'editor', userId: 'u1' })).toEqual({ name: 'ci', role: 'editor' })
    expect(keyBody({ ...EMPTY_KEY_FORM, name: 'bot', owner: 'user', userId: 'u1', role: 'admin' })).toEqual({ name: 'bot', user_id: 'u1' })
    const body = keyBody({ ...EMPTY_KEY_FORM, name: 'ci', expires: '2026-04-01' })
    const expires = new Date(body.expires_at ?? '')
    expect([expires.getFullYear(), expires.getMonth(), expires.getDate(), expires.getHours(), expires.getMinutes()]).toEqual([2026, 3, 1, 23, 59])
    expect(body.expires_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
  })

  it('explains what keeps the form from being sent', () => {
    expect(keyFormProblem(EMPTY_KEY_FORM, NOW)).toMatch(/name/)
    expect(keyFormProblem({ ...EMPTY_KEY_FORM, name: 'x', owner: 'user' }, NOW)).toMatch(/user/)
    expect(keyFormProblem({ ...EMPTY_KEY_FORM, name: 'x', expires: '2026-03-01' }, NOW)).toMatch(/passed/)
    expect(keyFormProblem({ ...EMPTY_KEY_FORM, name: 'x', expires: 'soon' }, NOW)).toMatch(/not a date/)
    expect(keyFormProblem({ ...EMPTY_KEY_FORM, name: 'x', expires: localDate(NOW + 86_400_000) }, NOW)).toBeNull()
    expect(endOfLocalDay('2026-13-45x')).toBeNull()
  })
})
