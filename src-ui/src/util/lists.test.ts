import { describe, expect, it } from 'vitest'
import { coerceParam } from '../editor/draft'
import { expressionProblem } from '../editor/expression'
import { looseNumberList, numberOrNull, parseNumberList, parseTextList, recordRows, rowsRecord, sameRecord } from './lists'

describe('list fields', () => {
  it('parses exit code / status lists and rejects anything that is not whole numbers', () => {
    expect(parseNumberList('0, 2 3')).toEqual([0, 2, 3])
    expect(parseNumberList('200,')).toEqual([200])
    expect(parseNumberList('')).toBeNull()
    expect(parseNumberList('0, x')).toBeNull()
    expect(parseNumberList('1.5')).toBeNull()
    expect(looseNumberList('')).toEqual([])
    expect(looseNumberList('0, 1.5 x')).toEqual([0, 1.5, NaN])
  })

  it('splits a typed list of words on commas and spaces, leaving out the empty ones', () => {
    expect(parseTextList(' api.example.com,*.example.com  10.0.0.5:8443,, ')).toEqual(['api.example.com', '*.example.com', '10.0.0.5:8443'])
    expect(parseTextList('[fd00::1]:8443')).toEqual(['[fd00::1]:8443'])
    expect(parseTextList('  ')).toEqual([])
  })

  it('turns key/value rows into a map: nameless rows left out, the first of a repeated name kept', () => {
    const rows = [
      { key: ' TOKEN ', value: 'payments-token' },
      { key: '', value: 'half typed' },
      { key: 'TOKEN', value: 'other' },
      { key: 'REGION', value: '' },
    ]
    expect(rowsRecord(rows)).toEqual({ TOKEN: 'payments-token', REGION: '' })
    expect(recordRows({ A: '1', B: '2' })).toEqual([
      { key: 'A', value: '1' },
      { key: 'B', value: '2' },
    ])
    expect(sameRecord({ A: '1', B: '2' }, { B: '2', A: '1' })).toBe(false)
    expect(sameRecord(rowsRecord(recordRows({ A: '1' })), { A: '1' })).toBe(true)
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
  it('accepts CEL over params and steps, macros and lists included', () => {
    expect(expressionProblem('steps.health.status == 200 && params.env == "prod"')).toBeNull()
    expect(expressionProblem('steps.check.outputs.COUNT != "0" || has(steps.api.json.items)')).toBeNull()
    expect(expressionProblem('params.env in ["staging", "prod"] && steps.api.json.items.size() > 0')).toBeNull()
  })

  it('flags empty, unbalanced and unterminated expressions with their line and column', () => {
    expect(expressionProblem('  ')).toMatch(/required/)
    expect(expressionProblem('(a == 1')).toMatch(/^1:8: /)
    expect(expressionProblem('a == 1)')).toMatch(/^1:\d+: /)
    expect(expressionProblem('params.env == "prod')).toMatch(/^1:\d+: .*string/i)
    expect(expressionProblem('steps.a.exit_code == 0 &&\n  params.x ==')).toBe('2:14: Unexpected token: end of expression')
  })
})
