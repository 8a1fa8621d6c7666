import { describe, expect, it } from 'vitest'
import { ApiError } from '../api/errors'
import { routeServerError } from './serverErrors'

type F = 'name' | 'value'
const FIELDS: readonly F[] = ['name', 'value']
const CODES: Record<string, F> = { duplicate_name: 'name', value_too_large: 'value' }

describe('routeServerError', () => {
  it('puts an error on the field its code is about', () => {
    const routed = routeServerError(new ApiError('duplicate_name', 'A credential named db exists.', 409), CODES, FIELDS)
    expect(routed.fields).toEqual({ name: 'A credential named db exists.' })
    expect(routed.banner).toBeNull()
  })

  it('puts 422 details on the fields their paths name', () => {
    const error = new ApiError('invalid', 'Invalid', 422, [
      { path: 'name', code: 'invalid_name', message: 'Bad characters.' },
      { path: 'value', code: 'missing_value', message: 'Required.' },
    ])
    expect(routeServerError(error, CODES, FIELDS)).toEqual({ fields: { name: 'Bad characters.', value: 'Required.' }, banner: null })
  })

  it('keeps a banner for what names no field of the form', () => {
    const forbidden = new ApiError('forbidden', 'Admins only.', 403)
    expect(routeServerError(forbidden, CODES, FIELDS)).toEqual({ fields: {}, banner: forbidden })
    const mixed = new ApiError('invalid', 'Invalid', 422, [
      { path: 'name', code: 'x', message: 'Bad.' },
      { path: 'kind', code: 'invalid_kind', message: 'Unknown kind.' },
    ])
    const routed = routeServerError(mixed, CODES, FIELDS)
    expect(routed.fields).toEqual({ name: 'Bad.' })
    expect(routed.banner).toBe(mixed)
    expect(routeServerError(null, CODES, FIELDS)).toEqual({ fields: {}, banner: null })
  })
})
