import { describe, expect, it } from 'vitest'
import type { Block, Runbook } from '../api/types'
import { blockIdCounts, blockPath, editorReducer, initEditor, isDirty, listAt, parseTags, toUpdate, uniqueBlockId, type EditorState } from './draft'

function runbook(blocks: Block[]): Runbook {
  return {
    id: 'rb',
    name: 'Restart payments',
    description: '',
    tags: ['payments'],
    params: [],
    blocks,
    version: 3,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    updated_by: 'alice',
  }
}

const intro: Block = { id: 'intro', kind: 'instruction', text: 'Read me', confirm: false }
const timer: Block = { id: 'step-2', kind: 'timer', seconds: 5 }

function ids(state: EditorState): string[] {
  return state.draft.blocks.map((block) => block.id)
}

describe('uniqueBlockId', () => {
  it('numbers after the block count and skips ids in use, nested ones included', () => {
    expect(uniqueBlockId([intro])).toBe('step-2')
    expect(uniqueBlockId([intro, timer])).toBe('step-3')
    const branchy: Block = { id: 'branch', kind: 'conditional', expr: 'true', then: [{ id: 'step-3', kind: 'timer', seconds: 1 }], else: [] }
    expect(uniqueBlockId([intro, branchy])).toBe('step-4')
  })
})

describe('editorReducer', () => {
  it('adds blocks of every kind with unique ids and kind defaults', () => {
    let state = initEditor(runbook([intro, timer]))
    state = editorReducer(state, { type: 'add_block', kind: 'command' })
    state = editorReducer(state, { type: 'add_block', kind: 'api_call' })
    expect(ids(state)).toEqual(['intro', 'step-2', 'step-3', 'step-4'])
    expect(state.draft.blocks[2]).toMatchObject({ kind: 'command', shell: 'sh', expect_exit_codes: [0] })
    expect(state.draft.blocks[3]).toMatchObject({ kind: 'api_call', method: 'GET', expect_status: [200] })
  })

  it('moves blocks and ignores moves past either end', () => {
    const start = initEditor(runbook([intro, timer]))
    const down = editorReducer(start, { type: 'move_block', index: 0, delta: 1 })
    expect(ids(down)).toEqual(['step-2', 'intro'])
    expect(editorReducer(start, { type: 'move_block', index: 0, delta: -1 })).toBe(start)
    expect(editorReducer(start, { type: 'move_block', index: 1, delta: 1 })).toBe(start)
  })

  it('deletes and edits blocks without touching the others', () => {
    let state = initEditor(runbook([intro, timer]))
    state = editorReducer(state, { type: 'update_block', index: 1, block: { ...timer, id: 'wait', seconds: 60 } })
    expect(state.draft.blocks[1]).toEqual({ id: 'wait', kind: 'timer', seconds: 60 })
    state = editorReducer(state, { type: 'delete_block', index: 0 })
    expect(ids(state)).toEqual(['wait'])
  })

  it('knows when the draft differs from the saved runbook', () => {
    const start = initEditor(runbook([intro]))
    expect(isDirty(start)).toBe(false)
    const renamed = editorReducer(start, { type: 'set_field', field: 'name', value: 'Restart payments API' })
    expect(isDirty(renamed)).toBe(true)
    const back = editorReducer(renamed, { type: 'set_field', field: 'name', value: 'Restart payments' })
    expect(isDirty(back)).toBe(false)
    // Retyping the same tags with other spacing is not a change.
    expect(isDirty(editorReducer(start, { type: 'set_field', field: 'tagsText', value: ' payments , ' }))).toBe(false)
  })

  it('after a save, keeps edits made meanwhile and takes the server\'s copy otherwise', () => {
    const param = { name: 'service', type: 'string' as const, default: null, required: false }
    const start = initEditor({ ...runbook([intro]), params: [param] })
    const sent = editorReducer(start, { type: 'set_field', field: 'name', value: 'Restart payments now' })
    // The server adds what the client left out (a parameter's description).
    const stored = { ...runbook([intro]), params: [{ ...param, description: '' }], name: 'Restart payments now', version: 4 }

    const clean = editorReducer(sent, { type: 'saved', runbook: stored, sent: sent.draft })
    expect(clean.base.version).toBe(4)
    expect(isDirty(clean)).toBe(false)

    const typedMeanwhile = editorReducer(sent, { type: 'set_field', field: 'name', value: 'Restart payments now!' })
    const kept = editorReducer(typedMeanwhile, { type: 'saved', runbook: stored, sent: sent.draft })
    expect(kept.base.version).toBe(4)
    expect(kept.draft.name).toBe('Restart payments now!')
    expect(isDirty(kept)).toBe(true)
    expect(toUpdate(kept, '').version).toBe(4)
  })

  it('builds an update based on the version it started from', () => {
    let state = initEditor(runbook([intro]))
    state = editorReducer(state, { type: 'set_field', field: 'tagsText', value: 'payments, db, payments' })
    const update = toUpdate(state, '  tightened checks ')
    expect(update.version).toBe(3)
    expect(update.tags).toEqual(['payments', 'db'])
    expect(update.message).toBe('tightened checks')
    expect(toUpdate(state, ' ')).not.toHaveProperty('message')
  })

  it('adds parameters with unused names', () => {
    let state = initEditor(runbook([]))
    state = editorReducer(state, { type: 'add_param' })
    state = editorReducer(state, { type: 'add_param' })
    expect(state.draft.params.map((p) => p.name)).toEqual(['param1', 'param2'])
  })
})

describe('nested branches', () => {
  const branchy: Block = {
    id: 'branch',
    kind: 'conditional',
    expr: 'params.env == "prod"',
    then: [
      { id: 'a', kind: 'timer', seconds: 1 },
      { id: 'inner', kind: 'conditional', expr: 'true', then: [], else: [{ id: 'b', kind: 'timer', seconds: 2 }] },
    ],
    else: [],
  }
  const then = [{ index: 1, branch: 'then' as const }]
  const innerElse = [...then, { index: 1, branch: 'else' as const }]

  it('adds, edits, moves and deletes blocks inside branches at any depth', () => {
    let state = initEditor(runbook([intro, branchy]))
    state = editorReducer(state, { type: 'add_block', kind: 'command', list: innerElse })
    const inner = listAt(state.draft.blocks, innerElse)
    expect(inner?.map((b) => b.id)).toEqual(['b', 'step-6'])
    expect(state.draft.blocks.map((b) => b.id)).toEqual(['intro', 'branch'])

    state = editorReducer(state, { type: 'move_block', index: 1, delta: -1, list: innerElse })
    expect(listAt(state.draft.blocks, innerElse)?.map((b) => b.id)).toEqual(['step-6', 'b'])

    state = editorReducer(state, { type: 'update_block', index: 0, list: then, block: { id: 'a', kind: 'timer', seconds: 9 } })
    expect(listAt(state.draft.blocks, then)?.[0]).toEqual({ id: 'a', kind: 'timer', seconds: 9 })

    state = editorReducer(state, { type: 'reorder_block', from: 0, to: 1, list: then })
    expect(listAt(state.draft.blocks, then)?.map((b) => b.id)).toEqual(['inner', 'a'])

    state = editorReducer(state, { type: 'delete_block', index: 1, list: then })
    expect(listAt(state.draft.blocks, then)?.map((b) => b.id)).toEqual(['inner'])
    expect(isDirty(state)).toBe(true)
  })

  it('keeps each block\'s editor key with it through moves, deletes and saves, and never sends it', () => {
    const keyOf = (state: EditorState, path: typeof then, index: number) =>
      path.reduce((keys, step) => keys[step.index][step.branch], state.keys)[index].key
    let state = initEditor(runbook([intro, branchy]))
    const introKey = keyOf(state, [], 0)
    const aKey = keyOf(state, then, 0)
    const innerKey = keyOf(state, then, 1)
    state = editorReducer(state, { type: 'move_block', index: 0, delta: 1 })
    expect(keyOf(state, [], 1)).toBe(introKey)
    state = editorReducer(state, { type: 'move_block', index: 0, delta: 1, list: [{ index: 0, branch: 'then' }] })
    expect([keyOf(state, [{ index: 0, branch: 'then' }], 0), keyOf(state, [{ index: 0, branch: 'then' }], 1)]).toEqual([innerKey, aKey])
    state = editorReducer(state, { type: 'delete_block', index: 0, list: [{ index: 0, branch: 'then' }] })
    expect(keyOf(state, [{ index: 0, branch: 'then' }], 0)).toBe(aKey)
    state = editorReducer(state, { type: 'add_block', kind: 'timer', list: [{ index: 0, branch: 'then' }] })
    const addedKey = keyOf(state, [{ index: 0, branch: 'then' }], 1)
    expect([aKey, innerKey, introKey]).not.toContain(addedKey)

    const update = toUpdate(state, '')
    expect(JSON.stringify(update)).not.toContain(introKey)
    const saved = editorReducer(state, { type: 'saved', runbook: { ...runbook(update.blocks ?? []), version: 4 }, sent: state.draft })
    expect(saved.keys).toEqual(state.keys)
  })

  it('ignores actions on lists that do not exist and moves past either end', () => {
    const start = initEditor(runbook([intro, branchy]))
    expect(editorReducer(start, { type: 'add_block', kind: 'timer', list: [{ index: 0, branch: 'then' }] })).toBe(start)
    expect(editorReducer(start, { type: 'move_block', index: 1, delta: 1, list: then })).toBe(start)
    expect(editorReducer(start, { type: 'reorder_block', from: 0, to: 5, list: then })).toBe(start)
  })

  it('names a block by the path the server uses in its errors', () => {
    expect(blockPath([], 2)).toBe('blocks[2]')
    expect(blockPath(innerElse, 0)).toBe('blocks[1].then[1].else[0]')
  })

  it('counts ids across branches so duplicates anywhere are found', () => {
    const counts = blockIdCounts([intro, { ...branchy, else: [{ id: 'intro', kind: 'timer', seconds: 1 }] }])
    expect(counts.get('intro')).toBe(2)
    expect(counts.get('b')).toBe(1)
  })
})

describe('parseTags', () => {
  it('trims, drops empties and duplicates', () => {
    expect(parseTags(' a, b ,, a ,c')).toEqual(['a', 'b', 'c'])
  })
})
