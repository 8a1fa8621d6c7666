// Parsing of the small list fields of the forms: exit codes, statuses, hosts, name/value maps.

export function parseNumberList(text: string): number[] | null {
  const parts = text.split(/[\s,]+/).filter(Boolean)
  const numbers = parts.map(Number)
  return numbers.length > 0 && numbers.every(Number.isInteger) ? numbers : null
}

/**
 * What a number list that is not one reads as: empty when nothing is typed, otherwise every entry
 * as the number it spells (a fraction stays one; a word becomes NaN, which JSON sends as null).
 */
export function looseNumberList(text: string): number[] {
  return text.split(/[\s,]+/).filter(Boolean).map(Number)
}

/** The entries of a list typed as text ("a.example.com, b.example.com"): split on commas and spaces. */
export function parseTextList(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean)
}

/** Reads a number input: empty means null. */
export function numberOrNull(text: string): number | null {
  if (text.trim() === '') return null
  const value = Number(text)
  return Number.isFinite(value) ? value : null
}

/** One row of a key/value list while it is edited: keys may be empty or repeated for a moment. */
export interface KeyValueRow {
  key: string
  value: string
}

export function recordRows(record: Record<string, string>): KeyValueRow[] {
  return Object.entries(record).map(([key, value]) => ({ key, value }))
}

/** The map the rows stand for: rows without a name are left out, a repeated name keeps its first value. */
export function rowsRecord(rows: KeyValueRow[]): Record<string, string> {
  const record: Record<string, string> = {}
  for (const { key, value } of rows) {
    const name = key.trim()
    if (name && !(name in record)) record[name] = value
  }
  return record
}

/** Same entries in the same order. */
export function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  return JSON.stringify(Object.entries(a)) === JSON.stringify(Object.entries(b))
}
