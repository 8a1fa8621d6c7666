import { describe, expect, it } from 'vitest'
import { ApiError, errorFromHttp, normalizeError } from './errors'

describe('errorFromHttp', () => {
  it('reads code, message and field details from a REST error body', () => {
    const body = JSON.stringify({
      error: {
        code: 'validation_failed',
        message: 'blocks[1].script: the script is empty',
        details: [{ path: 'blocks[1].script', code: 'empty_script', message: 'the script is empty' }, 'junk'],
      },
    })
    const error = errorFromHttp(422, body)
    expect(error).toBeInstanceOf(ApiError)
    expect(error.code).toBe('validation_failed')
    expect(error.status).toBe(422)
    expect(error.message).toBe('blocks[1].script: the script is empty')
    expect(error.fieldErrors).toEqual([{ path: 'blocks[1].script', code: 'empty_script', message: 'the script is empty' }])
  })

  it('keeps the version_conflict code of a 409', () => {
    const error = errorFromHttp(409, '{"error":{"code":"version_conflict","message":"based on 2, current is 3"}}')
    expect(error.code).toBe('version_conflict')
    expect(error.status).toBe(409)
  })

  it('falls back to a status-derived code when the body is not the JSON error shape', () => {
    expect(errorFromHttp(404, '').code).toBe('not_found')
    const proxy = errorFromHttp(502, '<html>Bad gateway</html>', 'Bad Gateway')
    expect(proxy.code).toBe('server_error')
    expect(proxy.status).toBe(502)
    expect(proxy.message).toContain('Bad gateway')
    expect(errorFromHttp(401, '{"unexpected":true}').isUnauthorized).toBe(true)
  })
})

describe('normalizeError', () => {
  it('turns a Tauri rejection object into the same ApiError', () => {
    const error = normalizeError({ code: 'version_conflict', message: 'stale', details: { current: 4 } })
    expect(error.code).toBe('version_conflict')
    expect(error.message).toBe('stale')
    expect(error.status).toBeUndefined()
    expect(error.details).toEqual({ current: 4 })
  })

  it('accepts a rejection wrapped like a REST body', () => {
    expect(normalizeError({ error: { code: 'forbidden', message: 'editors only' } }).code).toBe('forbidden')
  })

  it('handles strings, network failures and unknown values', () => {
    expect(normalizeError('boom').message).toBe('boom')
    expect(normalizeError(new TypeError('Failed to fetch')).code).toBe('network_error')
    expect(normalizeError(42).code).toBe('error')
  })

  it('returns an ApiError unchanged', () => {
    const original = new ApiError('not_found', 'gone', 404)
    expect(normalizeError(original)).toBe(original)
  })
})
