import { describe, expect, it } from 'vitest'
import type { Block, Execution } from '../api/types'
import { timelineRows } from './timeline'

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
