// A readable, stable text rendering of a runbook's content, used to diff two versions.

import type { Block, RunbookDraft } from '../api/types'

function scalar(value: unknown): string {
  if (typeof value === 'string') return value
  return JSON.stringify(value)
}

function field(key: string, value: unknown, indent: string, out: string[]): void {
  if (typeof value === 'string' && value.includes('\n')) {
    out.push(`${indent}${key}: |`)
    for (const line of value.split('\n')) out.push(`${indent}  ${line}`)
  } else {
    out.push(`${indent}${key}: ${scalar(value)}`)
  }
}

function blocks(list: Block[], indent: string, out: string[]): void {
  for (const block of list) {
    out.push(`${indent}- ${block.kind} "${block.id}"`)
    for (const [key, value] of Object.entries(block)) {
      if (key === 'id' || key === 'kind') continue
      if (block.kind === 'conditional' && (key === 'then' || key === 'else')) {
        out.push(`${indent}    ${key}:`)
        blocks(value as Block[], `${indent}      `, out)
        continue
      }
      field(key, value, `${indent}    `, out)
    }
  }
}

export function runbookText(runbook: RunbookDraft): string {
  const out: string[] = []
  field('name', runbook.name, '', out)
  field('tags', (runbook.tags ?? []).join(', '), '', out)
  field('description', runbook.description ?? '', '', out)
  out.push('params:')
  for (const param of runbook.params ?? []) {
    out.push(`  - ${param.name}: ${param.type ?? 'string'} = ${JSON.stringify(param.default ?? null)}${param.required ? ' (required)' : ''}`)
  }
  out.push('blocks:')
  blocks(runbook.blocks ?? [], '  ', out)
  return out.join('\n') + '\n'
}
