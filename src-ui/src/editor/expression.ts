// Checks of a conditional's expression that need no server: the server's parser has the last word.

/** A problem with a conditional expression that can be seen without the server. */
export function expressionProblem(expr: string): string | null {
  if (!expr.trim()) return 'An expression is required, e.g. steps.health.status == 200'
  let depth = 0
  for (const ch of expr) {
    if (ch === '(') depth += 1
    if (ch === ')') depth -= 1
    if (depth < 0) return 'A closing parenthesis has no opening one.'
  }
  if (depth > 0) return 'A parenthesis is not closed.'
  const quotes = (expr.match(/"/g) ?? []).length
  if (quotes % 2 !== 0) return 'A string is not closed.'
  return null
}
