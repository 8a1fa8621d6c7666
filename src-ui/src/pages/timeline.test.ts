import { describe, expect, it } from 'vitest'
import type { Block, Execution, StepResult, StepStatus } from '../api/types'
import { firstUnfinishedStep, timelineRows } from './timeline'

const execution: Execution = {
  id: 'e1',
  runbook_id: 'rb',
  runbook_version: 1,
  status: 'running',
  params: {},
  started_by: 'alice',
  created_at: '2026-01-01T00:00:00Z',
  started_at: '2026-01-01T00:00:00Z',
  finished_at: null,
  steps: [
    { block_id: 'check', status: 'succeeded', exit_code: 0, http_status: null, started_at: null, finished_at: null, output_bytes: 3 },
    { block_id: 'ghost', status: 'skipped', exit_code: null, http_status: null, started_at: null, finished_at: null, output_bytes: 0 },
  ],
}

describe('timelineRows', () => {
  it('lists blocks in runbook order, nested ones included, pending until reached', () => {
    const blocks: Block[] = [
      { id: 'check', kind: 'command', script: 'true', shell: 'sh', host: 'local', timeout_secs: null, workdir: null, env: {}, expect_exit_codes: [0], on_failure: 'stop', secrets: {} },
      { id: 'branch', kind: 'conditional', expr: 'true', then: [{ id: 'wait', kind: 'timer', seconds: 1 }], else: [] },
    ]
    const rows = timelineRows(execution, blocks)
    expect(rows.map((r) => [r.blockId, r.step?.status ?? 'pending', r.depth])).toEqual([
      ['check', 'succeeded', 0],
      ['branch', 'pending', 0],
      ['wait', 'pending', 1],
      ['ghost', 'skipped', 0],
    ])
    expect(rows[2].parent).toEqual({ id: 'branch', branch: 'then' })
  })

  it('falls back to the steps alone while the runbook version is loading', () => {
    expect(timelineRows(execution, undefined).map((r) => r.blockId)).toEqual(['check', 'ghost'])
  })
})

describe('firstUnfinishedStep', () => {
  const command = (id: string, onFailure: 'stop' | 'continue' = 'stop'): Block => ({
    id,
    kind: 'command',
    script: 'true',
    shell: 'sh',
    host: 'local',
    timeout_secs: null,
    workdir: null,
    env: {},
    expect_exit_codes: [0],
    on_failure: onFailure,
    secrets: {},
  })
  const step = (block_id: string, status: StepStatus, patch: Partial<StepResult> = {}): StepResult => ({
    block_id,
    status,
    exit_code: null,
    http_status: null,
    started_at: null,
    finished_at: null,
    output_bytes: 0,
    ...patch,
  })
  const run = (steps: StepResult[]): Execution => ({ ...execution, status: 'failed', steps })

  it('passes over a failure the block lets the run go on from, as the server does', () => {
    const blocks = [command('check', 'continue'), command('deploy'), command('verify')]
    const failed = run([step('check', 'failed'), step('deploy', 'failed'), step('verify', 'skipped')])
    expect(firstUnfinishedStep(failed, blocks)).toBe('deploy')
  })

  it('retries a step a stop left unreached, but not one in a branch not taken', () => {
    const blocks: Block[] = [
      { id: 'branch', kind: 'conditional', expr: 'true', then: [command('restart')], else: [command('page')] },
      command('verify'),
    ]
    const stopped = run([step('branch', 'succeeded', { branch: 'then' }), step('restart', 'succeeded'), step('page', 'skipped'), step('verify', 'skipped')])
    expect(firstUnfinishedStep(stopped, blocks)).toBe('verify')
  })

  it('counts every failure and no skip while the runbook version is loading', () => {
    const failed = run([step('check', 'failed'), step('deploy', 'failed')])
    expect(firstUnfinishedStep(failed)).toBe('check')
  })
})
