// Server validation errors (422 `error.details`) routed to the card and field they name:
// `blocks[2].then[0].expr` belongs to the `expr` field of the first block of block 2's then-branch.

import type { BlockKind, FieldError } from '../api/types'

/** The errors of one block: on its fields (by field name) and on the block as a whole. */
export interface BlockErrors {
  /** Errors about the block itself or its id and kind. */
  card: FieldError[]
  /** Errors by the field they name: `expr`, `script`, `env`, `then`... */
  fields: Map<string, FieldError[]>
}

/** The fields each kind's editor shows errors on; errors about other fields go on the card. */
export const SHOWN_FIELDS: Record<BlockKind, ReadonlySet<string>> = {
  instruction: new Set(['text']),
  command: new Set(['script', 'shell', 'timeout_secs', 'stop_grace_secs', 'workdir', 'env', 'expect_exit_codes', 'on_failure', 'secrets']),
  api_call: new Set(['method', 'url', 'headers', 'body', 'credential', 'timeout_secs', 'expect_status', 'on_failure']),
  conditional: new Set(['expr', 'then', 'else']),
  timer: new Set(['seconds']),
}

export const NO_ERRORS: BlockErrors = { card: [], fields: new Map() }

const CARD_FIELDS = new Set(['id', 'kind'])

/**
 * The errors whose path lies inside the block at `prefix` (e.g. `blocks[2].then[0]`), leaving out
 * those inside its branches' blocks: those belong to the nested cards.
 */
export function errorsAt(errors: FieldError[], prefix: string): BlockErrors {
  const card: FieldError[] = []
  const fields = new Map<string, FieldError[]>()
  for (const error of errors) {
    if (!error.path.startsWith(prefix)) continue
    const rest = error.path.slice(prefix.length)
    if (rest === '') {
      card.push(error)
      continue
    }
    if (!rest.startsWith('.')) continue // `blocks[1]` is not a prefix of `blocks[12]`
    if (/^\.(then|else)\[\d+\]/.test(rest)) continue
    const match = /^\.([A-Za-z0-9_]+)(.*)$/.exec(rest)
    const field = match?.[1] ?? ''
    if (!field || CARD_FIELDS.has(field)) {
      card.push(error)
      continue
    }
    // `env.TOKEN` or `expect_status[1]`: say which entry of the field is meant.
    const inside = (match?.[2] ?? '').replace(/^\./, '')
    const shown = inside ? { ...error, message: `${inside}: ${error.message}` } : error
    fields.set(field, [...(fields.get(field) ?? []), shown])
  }
  return card.length === 0 && fields.size === 0 ? NO_ERRORS : { card, fields }
}

/** The messages for one field, joined for display; undefined when it has none. */
export function fieldMessage(errors: Map<string, FieldError[]>, field: string): string | undefined {
  const list = errors.get(field)
  if (!list || list.length === 0) return undefined
  return list.map((error) => error.message).join(' · ')
}
