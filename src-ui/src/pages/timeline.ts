// The rows of a run's step timeline: the runbook's blocks in document order (branches included),
// joined with the run's steps, with how deep each sits and in which branch.

import type { Block, Branch, Execution, StepResult } from '../api/types'

interface Placed {
  block: Block
  depth: number
  parent?: { id: string; branch: Branch }
}

/** Every block in document order, branches included, with its nesting. */
function flatten(blocks: Block[], depth = 0, parent?: Placed['parent']): Placed[] {
  return blocks.flatMap((block) => {
    const here: Placed = { block, depth, parent }
    if (block.kind !== 'conditional') return [here]
    return [
      here,
      ...flatten(block.then ?? [], depth + 1, { id: block.id, branch: 'then' }),
      ...flatten(block.else ?? [], depth + 1, { id: block.id, branch: 'else' }),
    ]
  })
}

export interface TimelineRow {
  blockId: string
  block?: Block
  step: StepResult | null
  /** 0 for the runbook's own blocks, 1 inside a branch, and so on. */
  depth: number
  /** The conditional and branch a nested block belongs to. */
  parent?: { id: string; branch: Branch }
}

/** Steps in the runbook's order; blocks the run has not reached yet show as pending. */
export function timelineRows(execution: Execution, blocks: Block[] | undefined): TimelineRow[] {
  const steps = new Map((execution.steps ?? []).map((step) => [step.block_id, step]))
  if (!blocks) return (execution.steps ?? []).map((step) => ({ blockId: step.block_id, step, depth: 0 }))
  const all = flatten(blocks)
  const rows: TimelineRow[] = all.map(({ block, depth, parent }) => ({
    blockId: block.id,
    block,
    step: steps.get(block.id) ?? null,
    depth,
    parent,
  }))
  const known = new Set(all.map(({ block }) => block.id))
  for (const step of execution.steps ?? []) {
    if (!known.has(step.block_id)) rows.push({ blockId: step.block_id, step, depth: 0 })
  }
  return rows
}

/** The block a retry starts again from: the first step that did not succeed. */
export function firstUnfinishedStep(execution: Execution): string | null {
  return (execution.steps ?? []).find((step) => step.status !== 'succeeded' && step.status !== 'skipped')?.block_id ?? null
}
