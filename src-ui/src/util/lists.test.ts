import { describe, expect, it } from 'vitest'
import { coerceParam } from '../editor/draft'
import { expressionProblem } from '../editor/expression'
import { headerLines, numberOrNull, parseHeaderLines, parseNumberList } from './lists'

describe('list fields', () => {
  it('parses exit code / status lists and rejects anything that is not whole numbers', () => {
    expect(parseNumberList('0, 2 3')).toEqual([0, 2, 3])
    expect(parseNumberList('200,')).toEqual([200])
    expect(parseNumberList('')).toBeNull()
    expect(parseNumberList('0, x')).toBeNull()
    expect(parseNumberList('1.5')).toBeNull()
  })

  it('round-trips header lines and skips lines without a name', () => {
    const headers = parseHeaderLines('Accept: application/json\nbroken line\n: nameless\nX-Trace:  a:b ')
    expect(headers).toEqual({ Accept: 'application/json', 'X-Trace': 'a:b' })
    expect(headerLines(headers)).toBe('Accept: application/json\nX-Trace: a:b')
  })

  it('reads empty number inputs as null', () => {
    expect(numberOrNull('')).toBeNull()
    expect(numberOrNull('30')).toBe(30)
  })
})

describe('coerceParam', () => {
  it('keeps values in the parameter type', () => {
    expect(coerceParam('number', '42')).toBe(42)
    expect(coerceParam('number', 'forty')).toBe('forty')
    expect(coerceParam('number', '')).toBe('')
    expect(coerceParam('boolean', 'true')).toBe(true)
    expect(coerceParam('string', '007')).toBe('007')
  })
})

describe('expressionProblem', () => {
  it('flags empty, unbalanced and unterminated expressions only', () => {
    expect(expressionProblem('steps.health.status == 200')).toBeNull()
    expect(expressionProblem('  ')).toMatch(/required/)
    expect(expressionProblem('(a == 1')).toMatch(/not closed/)
    expect(expressionProblem('a == 1)')).toMatch(/no opening/)
    expect(expressionProblem('params.env == "prod')).toMatch(/string/)
  })
})
