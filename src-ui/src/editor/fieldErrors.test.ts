import { describe, expect, it } from 'vitest'
import type { FieldError } from '../api/types'
import { errorsAt, fieldMessage } from './fieldErrors'

const error = (path: string, message = `bad ${path}`, code = 'invalid'): FieldError => ({ path, code, message })

describe('errorsAt', () => {
  const errors = [
    error('blocks[1].expr', '1:7: unexpected token', 'invalid_expression'),
    error('blocks[1].then[0].expr', '1:1: empty', 'invalid_expression'),
    error('blocks[1].then[0].then[2].script', 'unclosed tag', 'invalid_template'),
    error('blocks[1].id', 'a block id is 1 to 64 letters'),
    error('blocks[1]', 'too deep'),
    error('blocks[12].url', 'not a URL'),
    error('blocks[1].env.BAD-NAME', 'not a variable name'),
    error('name', 'required'),
  ]

  it('gives a block the errors on its own fields and leaves those of nested blocks to them', () => {
    const top = errorsAt(errors, 'blocks[1]')
    expect(fieldMessage(top.fields, 'expr')).toBe('1:7: unexpected token')
    expect(top.card.map((e) => e.message)).toEqual(['a block id is 1 to 64 letters', 'too deep'])
    expect(fieldMessage(top.fields, 'env')).toBe('BAD-NAME: not a variable name')
    expect([...top.fields.keys()].sort()).toEqual(['env', 'expr'])
  })

  it('finds errors of blocks nested in branches by their full path', () => {
    expect(fieldMessage(errorsAt(errors, 'blocks[1].then[0]').fields, 'expr')).toBe('1:1: empty')
    expect(fieldMessage(errorsAt(errors, 'blocks[1].then[0].then[2]').fields, 'script')).toBe('unclosed tag')
  })

  it('does not mistake blocks[12] for a child of blocks[1]', () => {
    expect(errorsAt(errors, 'blocks[1]').fields.has('url')).toBe(false)
    expect(fieldMessage(errorsAt(errors, 'blocks[12]').fields, 'url')).toBe('not a URL')
    expect(errorsAt(errors, 'blocks[3]')).toEqual({ card: [], fields: new Map() })
  })
})
