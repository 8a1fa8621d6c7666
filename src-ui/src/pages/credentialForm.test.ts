import { describe, expect, it } from 'vitest'
import type { CredentialInfo } from '../api/types'
import { canSubmit, createBody, EMPTY_CREDENTIAL_FORM, hostsProblem, nameProblem, updateBody, valueProblem } from './credentialForm'

const stored: CredentialInfo = {
  id: 'c1',
  name: 'db',
  kind: 'basic',
  description: 'Reporting database',
  username: 'report',
  header_name: null,
  hosts: ['db.example.com'],
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
      hosts: [],
    })
    expect(createBody({ ...form, kind: 'header' })).toMatchObject({ username: null, header_name: 'X-Left-Over' })
    expect(createBody({ ...form, kind: 'ssh_key' })).toMatchObject({ username: null, header_name: null })
  })

  it('replaces the value and sends only the metadata that changed', () => {
    const unchanged = { value: 'new', username: 'report', header_name: '', description: 'Reporting database', hosts: ['db.example.com'] }
    expect(updateBody(stored, unchanged)).toEqual({ value: 'new' })
    expect(updateBody(stored, { ...unchanged, username: 'report2', header_name: 'ignored', description: 'Reporting DB' })).toEqual({
      value: 'new',
      username: 'report2',
      description: 'Reporting DB',
    })
    // Without a new value, the value is left out and the stored one stays.
    expect(updateBody(stored, { ...unchanged, value: '', description: 'Reporting DB' })).toEqual({ description: 'Reporting DB' })
    expect(updateBody(stored, { ...unchanged, value: '' })).toEqual({})
  })

  it('sends the hosts, normalised, for HTTP kinds only', () => {
    const form = { ...EMPTY_CREDENTIAL_FORM, name: 'api', value: 's3cret', hosts: [' API.Example.com ', '', '*.example.com:8443', 'api.example.com'] }
    expect(createBody({ ...form, kind: 'bearer' }).hosts).toEqual(['api.example.com', '*.example.com:8443'])
    expect(createBody({ ...form, kind: 'header', header_name: 'X-Key' }).hosts).toEqual(['api.example.com', '*.example.com:8443'])
    expect(createBody({ ...form, kind: 'bearer', hosts: [] }).hosts).toEqual([])
    // The server refuses hosts on the other kinds, even an empty list: the key is left out.
    expect(createBody({ ...form, kind: 'secret' })).not.toHaveProperty('hosts')
    expect(createBody({ ...form, kind: 'ssh_key' })).not.toHaveProperty('hosts')
  })

  it('replaces the whole host list when it changed, and only then', () => {
    const form = { value: '', username: 'report', header_name: '', description: 'Reporting database', hosts: ['db.example.com'] }
    expect(updateBody(stored, { ...form, hosts: [' DB.example.com '] })).toEqual({})
    expect(updateBody(stored, { ...form, hosts: ['db.example.com', '10.0.0.5:5432'] })).toEqual({ hosts: ['db.example.com', '10.0.0.5:5432'] })
    expect(updateBody(stored, { ...form, hosts: [] })).toEqual({ hosts: [] })
    const secret: CredentialInfo = { ...stored, kind: 'secret', username: null, hosts: [] }
    expect(updateBody(secret, { ...form, username: '', hosts: ['a.example.com'] })).toEqual({})
  })

  it('flags a URL, a path, a space or too many hosts, and leaves the rest to the server', () => {
    expect(hostsProblem([])).toBeNull()
    expect(hostsProblem(['api.example.com', '*.example.com', 'api.example.com:8443', '10.0.0.5', '[fd00::1]:8443', 'LOCALHOST'])).toBeNull()
    expect(hostsProblem(['api.example.com', 'https://api.example.com'])).toMatch(/“https:\/\/api.example.com” is a URL/)
    expect(hostsProblem(['api.example.com/v1'])).toMatch(/“api.example.com\/v1” has a path/)
    expect(hostsProblem(['api example.com'])).toMatch(/contains a space/)
    const many = Array.from({ length: 33 }, (_, i) => `h${i}.example.com`)
    expect(hostsProblem(many.slice(0, 32))).toBeNull()
    expect(hostsProblem(many)).toMatch(/At most 32 hosts/)

    const base = { ...EMPTY_CREDENTIAL_FORM, name: 'api', value: 's3cret', hosts: ['https://api.example.com'] }
    expect(canSubmit({ ...base, kind: 'bearer' })).toBe(false)
    // A secret has no hosts field: what was typed there before the kind changed does not block it.
    expect(canSubmit({ ...base, kind: 'secret' })).toBe(true)
  })
})
