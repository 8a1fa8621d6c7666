import { afterEach, describe, expect, it } from 'vitest'
import type { Runbook } from '../api/types'
import { editorReducer, initEditor, isDirty, toUpdate } from './draft'
import { dirtyRunbookIds, forgetDraft, openDraft, storeDraft } from './draftCache'

const v2: Runbook = {
  id: 'rb',
  name: 'Restart payments',
  description: '',
  tags: [],
  params: [],
  blocks: [{ id: 'intro', kind: 'instruction', text: 'Check the dashboard', confirm: false }],
  version: 2,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  updated_by: 'alice',
}

afterEach(() => forgetDraft('rb'))

/** An edit of v2 made in the editor: a command block with two variables and a parameter. */
function editedDraft() {
  let state = initEditor(v2)
  state = editorReducer(state, { type: 'add_block', kind: 'command' })
  const added = state.draft.blocks[1]
  if (added.kind !== 'command') throw new Error('expected a command')
  state = editorReducer(state, { type: 'update_block', index: 1, block: { ...added, script: 'df -h', env: { ZONE: 'b', REGION: 'eu' } } })
  return editorReducer(state, { type: 'add_param' })
}

describe('openDraft', () => {
  it('drops a draft the server already stored (its save ended after the editor was left)', () => {
    const edited = editedDraft()
    storeDraft('rb', edited)
    expect(dirtyRunbookIds().has('rb')).toBe(true)

    // The stored copy as the server sends it back: `kind` first, maps sorted, defaults filled in.
    const sent = toUpdate(edited, '')
    const v3: Runbook = {
      ...v2,
      version: 3,
      params: sent.params.map((param) => ({ description: '', ...param })),
      blocks: sent.blocks.map(({ kind, ...rest }) => {
        const block = { kind, ...rest } as Runbook['blocks'][number]
        return block.kind === 'command' ? { ...block, env: { REGION: 'eu', ZONE: 'b' } } : block
      }),
    }
    const opened = openDraft(v3)
    expect(opened.base.version).toBe(3)
    expect(isDirty(opened)).toBe(false)
    // The editor stores the state it opened with, as it does after every change.
    storeDraft('rb', opened)
    expect(dirtyRunbookIds().has('rb')).toBe(false)
  })

  it('keeps unsaved edits over a newer version that differs, still based on the version they started from', () => {
    const edited = editedDraft()
    storeDraft('rb', edited)
    const opened = openDraft({ ...v2, version: 3, name: 'Restart payments (by bob)' })
    expect(opened).toBe(edited)
    // Saving them is refused as a conflict instead of overwriting bob's version.
    expect(toUpdate(opened, '').version).toBe(2)
  })
})
