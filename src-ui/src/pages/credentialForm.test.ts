import { describe, expect, it } from 'vitest'
import type { CredentialInfo } from '../api/types'
import { canSubmit, createBody, EMPTY_CREDENTIAL_FORM, nameProblem, updateBody, valueProblem } from './credentialForm'

const stored: CredentialInfo = {
  id: 'c1',
  name: 'db',
  kind: 'basic',
  description: 'Reporting database',
  username: 'report',
  header_name: null,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  last_used_at: null,
  created_by: 'alice',
  updated_by: 'alice',
}

describe('credential form rules', () => {
  it('accepts only the names the server accepts', () => {
    expect(nameProblem('payments-token_v2.prod')).toBeNull()
    expect(nameProblem('')).toBeNull() // nothing typed yet: no complaint, but not submittable
    expect(nameProblem('has space')).toMatch(/Only letters/)
    expect(nameProblem('ünïcode')).toMatch(/Only letters/)
    expect(nameProblem('x'.repeat(100))).toBeNull()
    expect(nameProblem('x'.repeat(101))).toMatch(/At most 100/)
  })

  it('needs the username for basic and the header name for header credentials', () => {
    const base = { ...EMPTY_CREDENTIAL_FORM, name: 'api', value: 's3cret' }
    expect(canSubmit({ ...base, kind: 'bearer' })).toBe(true)
    expect(canSubmit({ ...base, kind: 'basic' })).toBe(false)
    expect(canSubmit({ ...base, kind: 'basic', username: 'svc' })).toBe(true)
    expect(canSubmit({ ...base, kind: 'header' })).toBe(false)
    expect(canSubmit({ ...base, kind: 'header', header_name: 'X-Token' })).toBe(true)
    expect(canSubmit({ ...base, value: '' })).toBe(false)
    expect(canSubmit({ ...base, name: 'bad name' })).toBe(false)
  })

  it('refuses values over 64 KiB, counted in UTF-8 bytes', () => {
    expect(valueProblem('a'.repeat(64 * 1024))).toBeNull()
    expect(valueProblem('é'.repeat(32 * 1024 + 1))).toMatch(/64 KiB/)
  })

  it('sends only the fields the kind uses, and the value exactly as typed', () => {
    const form = { ...EMPTY_CREDENTIAL_FORM, name: 'api', value: '  pa ss\n', username: ' svc ', header_name: 'X-Left-Over', description: ' d ' }
    expect(createBody({ ...form, kind: 'basic' })).toEqual({
      name: 'api',
      kind: 'basic',
      value: '  pa ss\n',
      username: 'svc',
      header_name: null,
      description: 'd',
    })
    expect(createBody({ ...form, kind: 'header' })).toMatchObject({ username: null, header_name: 'X-Left-Over' })
    expect(createBody({ ...form, kind: 'ssh_key' })).toMatchObject({ username: null, header_name: null })
  })

  it('replaces the value and sends only the metadata that changed', () => {
    expect(updateBody(stored, { value: 'new', username: 'report', header_name: '', description: 'Reporting database' })).toEqual({ value: 'new' })
    expect(updateBody(stored, { value: 'new', username: 'report2', header_name: 'ignored', description: 'Reporting DB' })).toEqual({
      value: 'new',
      username: 'report2',
      description: 'Reporting DB',
    })
  })
})
