// Checks a conditional's expression as it is typed, with a CEL parser: the server's parser has
// the last word (and reports the same kind of line:column position), this one answers at once.

import { parse } from '@marcbachmann/cel-js'

/** 1-based line and column of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)))
  const lines = before.split('\n')
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 }
}

function isParseError(error: unknown): error is { summary: string; range?: { start: number } } {
  return typeof error === 'object' && error !== null && typeof (error as { summary?: unknown }).summary === 'string'
}

/** A syntax problem with a conditional expression, as "line:column message"; null when it parses. */
export function expressionProblem(expr: string): string | null {
  if (!expr.trim()) return 'An expression is required, e.g. steps.health.status == 200'
  try {
    parse(expr)
    return null
  } catch (error) {
    if (!isParseError(error)) return null
    const { line, column } = lineColumn(expr, error.range?.start ?? 0)
    const summary = error.summary.replace(/\bEOF\b/, 'end of expression')
    return `${line}:${column}: ${summary}`
  }
}
