// The rows of a run's step timeline: the runbook's blocks in order, joined with the run's steps.

import type { Block, Execution, StepResult } from '../api/types'

/** Every block in document order, branches included. */
function flatten(blocks: Block[]): Block[] {
  return blocks.flatMap((block) =>
    block.kind === 'conditional' ? [block, ...flatten(block.then ?? []), ...flatten(block.else ?? [])] : [block],
  )
}

export interface TimelineRow {
  blockId: string
  block?: Block
  step: StepResult | null
}

/** Steps in the runbook's order; blocks the run has not reached yet show as pending. */
export function timelineRows(execution: Execution, blocks: Block[] | undefined): TimelineRow[] {
  const steps = new Map((execution.steps ?? []).map((step) => [step.block_id, step]))
  if (!blocks) return (execution.steps ?? []).map((step) => ({ blockId: step.block_id, step }))
  const all = flatten(blocks)
  const rows: TimelineRow[] = all.map((block) => ({ blockId: block.id, block, step: steps.get(block.id) ?? null }))
  const known = new Set(all.map((block) => block.id))
  for (const step of execution.steps ?? []) {
    if (!known.has(step.block_id)) rows.push({ blockId: step.block_id, step })
  }
  return rows
}

