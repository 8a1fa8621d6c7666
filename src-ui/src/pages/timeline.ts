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

/** Every block id in `blocks`, nested ones included. */
function allIds(blocks: Block[]): string[] {
  return flatten(blocks).map(({ block }) => block.id)
}

/** Blocks in the branches the run's conditionals did not take (nested ones included). */
function untakenBlocks(blocks: Block[], branches: Map<string, Branch>, out = new Set<string>()): Set<string> {
  for (const block of blocks) {
    if (block.kind !== 'conditional') continue
    const taken = branches.get(block.id)
    // A conditional never decided: the run did not get that far.
    if (taken === undefined) continue
    const [kept, dropped] = taken === 'then' ? [block.then ?? [], block.else ?? []] : [block.else ?? [], block.then ?? []]
    for (const id of allIds(dropped)) out.add(id)
    untakenBlocks(kept, branches, out)
  }
  return out
}

/**
 * The block a retry starts again from, as the server picks it: the first step that did not
 * succeed, where a failure the block lets the run go on from (`on_failure: continue`) and a
 * step skipped in a branch not taken count as done, but a step skipped because the run never
 * reached it does not. Without the runbook's blocks, every failure and no skip counts.
 */
export function firstUnfinishedStep(execution: Execution, blocks?: Block[]): string | null {
  const steps = execution.steps ?? []
  const byId = new Map(blocks ? flatten(blocks).map(({ block }) => [block.id, block]) : [])
  const branches = new Map(steps.flatMap((step) => (step.branch ? [[step.block_id, step.branch] as const] : [])))
  const untaken = blocks ? untakenBlocks(blocks, branches) : null
  const done = (step: StepResult): boolean => {
    switch (step.status) {
      case 'succeeded':
        return true
      case 'skipped':
        return untaken === null || untaken.has(step.block_id)
      case 'failed': {
        const block = byId.get(step.block_id)
        return (block?.kind === 'command' || block?.kind === 'api_call') && block.on_failure === 'continue'
      }
      default:
        return false
    }
  }
  return steps.find((step) => !done(step))?.block_id ?? null
}
