// The runbook editor's state: a draft of the authored content plus the version it is based on,
// changed only through the reducer below so every edit is a plain, testable transition.

import type { Block, BlockKind, Branch, Param, ParamType, ParamValue, Runbook, RunbookDraft, RunbookUpdate } from '../api/types'

/** What the editor edits. Tags stay as typed text until saved, so typing "a, " is not fought. */
export interface EditableDraft {
  name: string
  description: string
  tagsText: string
  params: Param[]
  blocks: Block[]
}

export interface EditorState {
  /** The server copy the draft started from; its version is sent with the save. */
  base: Runbook
  draft: EditableDraft
  /**
   * A key for each block of `draft.blocks`, in the same places (branches included), that follows
   * the block through moves and deletes so its card keeps its own editor state. Never saved.
   */
  keys: BlockKey[]
}

/** The client-side key of one block and those of a conditional's branches. */
export interface BlockKey {
  key: string
  then: BlockKey[]
  else: BlockKey[]
}

/**
 * Where a list of blocks lives: `[]` is the runbook's own list, and each step goes into the
 * `then` or `else` branch of the conditional at `index` of the list before it.
 */
export type ListPath = readonly { index: number; branch: Branch }[]

export const TOP_LEVEL: ListPath = []

/** Block actions act on the list at `list` (the top level when absent). */
export type EditorAction =
  | { type: 'reset'; runbook: Runbook }
  | { type: 'saved'; runbook: Runbook; sent: EditableDraft }
  | { type: 'set_field'; field: 'name' | 'description' | 'tagsText'; value: string }
  | { type: 'add_block'; kind: BlockKind; list?: ListPath }
  | { type: 'update_block'; index: number; block: Block; list?: ListPath }
  | { type: 'move_block'; index: number; delta: -1 | 1; list?: ListPath }
  | { type: 'reorder_block'; from: number; to: number; list?: ListPath }
  | { type: 'delete_block'; index: number; list?: ListPath }
  | { type: 'add_param' }
  | { type: 'update_param'; index: number; param: Param }
  | { type: 'delete_param'; index: number }

/** What "New runbook" creates: a name to change and a first step to fill in. */
export const NEW_RUNBOOK: RunbookDraft = {
  name: 'Untitled runbook',
  description: '',
  tags: [],
  params: [],
  blocks: [{ id: 'step-1', kind: 'instruction', text: 'Describe the first step here.', confirm: false }],
}

export const BLOCK_KINDS: BlockKind[] = ['instruction', 'command', 'api_call', 'conditional', 'timer']

export const BLOCK_LABELS: Record<BlockKind, string> = {
  instruction: 'Instruction',
  command: 'Command',
  api_call: 'API call',
  conditional: 'Conditional',
  timer: 'Timer',
}

export function parseTags(text: string): string[] {
  const tags = text
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '')
  return [...new Set(tags)]
}

export function toEditable(runbook: RunbookDraft): EditableDraft {
  return {
    name: runbook.name,
    description: runbook.description ?? '',
    tagsText: (runbook.tags ?? []).join(', '),
    params: runbook.params ?? [],
    blocks: runbook.blocks ?? [],
  }
}

export function toDraft(draft: EditableDraft): RunbookDraft {
  return {
    name: draft.name.trim(),
    description: draft.description,
    tags: parseTags(draft.tagsText),
    params: draft.params,
    blocks: draft.blocks,
  }
}

export function toUpdate(state: EditorState, message: string): RunbookUpdate {
  const update: RunbookUpdate = { ...toDraft(state.draft), version: state.base.version }
  if (message.trim()) update.message = message.trim()
  return update
}

/**
 * JSON with every object's keys in sorted order: the server stores maps (env, headers) sorted and
 * writes a block's `kind` first, so key order says nothing about the content.
 */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    typeof item === 'object' && item !== null && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  )
}

/** True when both drafts would save the same content. */
export function sameContent(a: EditableDraft, b: EditableDraft): boolean {
  return canonicalJson(toDraft(a)) === canonicalJson(toDraft(b))
}

/** True when saving would change something. */
export function isDirty(state: EditorState): boolean {
  return !sameContent(state.draft, toEditable(state.base))
}

/** Every block id, nested branches included. */
export function allBlockIds(blocks: Block[]): Set<string> {
  const ids = new Set<string>()
  const walk = (list: Block[]) => {
    for (const block of list) {
      ids.add(block.id)
      if (block.kind === 'conditional') {
        walk(block.then ?? [])
        walk(block.else ?? [])
      }
    }
  }
  walk(blocks)
  return ids
}

/** `step-N` with the smallest N (from the number of blocks, nested ones included, + 1) that no block uses yet. */
export function uniqueBlockId(blocks: Block[]): string {
  const taken = allBlockIds(blocks)
  let n = countBlocks(blocks) + 1
  while (taken.has(`step-${n}`)) n += 1
  return `step-${n}`
}

function countBlocks(blocks: Block[]): number {
  return blocks.reduce(
    (sum, block) => sum + 1 + (block.kind === 'conditional' ? countBlocks(block.then ?? []) + countBlocks(block.else ?? []) : 0),
    0,
  )
}

/** How many blocks a block's branches hold, nested ones included (none for other kinds). */
export function nestedBlockCount(block: Block): number {
  if (block.kind !== 'conditional') return 0
  return [...(block.then ?? []), ...(block.else ?? [])].reduce((count, inner) => count + 1 + nestedBlockCount(inner), 0)
}

/** How many times each block id is used, nested blocks included. */
export function blockIdCounts(blocks: Block[]): Map<string, number> {
  const counts = new Map<string, number>()
  const walk = (list: Block[]) => {
    for (const block of list) {
      counts.set(block.id, (counts.get(block.id) ?? 0) + 1)
      if (block.kind === 'conditional') {
        walk(block.then ?? [])
        walk(block.else ?? [])
      }
    }
  }
  walk(blocks)
  return counts
}

/** The list of blocks at `path`, or null when the path leads nowhere. */
export function listAt(blocks: Block[], path: ListPath): Block[] | null {
  let list = blocks
  for (const { index, branch } of path) {
    const block = list[index]
    if (block?.kind !== 'conditional') return null
    list = block[branch] ?? []
  }
  return list
}

/** `blocks` with the list at `path` replaced by `change(list)`. */
export function changeList(blocks: Block[], path: ListPath, change: (list: Block[]) => Block[]): Block[] {
  if (path.length === 0) return change(blocks)
  const [{ index, branch }, ...rest] = path
  return blocks.map((block, i) =>
    i === index && block.kind === 'conditional' ? { ...block, [branch]: changeList(block[branch] ?? [], rest, change) } : block,
  )
}

/** The server's path of the block at `index` of the list at `list`, e.g. `blocks[2].then[0]`. */
export function blockPath(list: ListPath, index: number): string {
  return `blocks${list.map((step) => `[${step.index}].${step.branch}`).join('')}[${index}]`
}

/** The server's path of every block by its key, as `blockPath` names it. */
export function keyPaths(keys: BlockKey[], list: ListPath = TOP_LEVEL, paths = new Map<string, string>()): Map<string, string> {
  keys.forEach((node, index) => {
    paths.set(node.key, blockPath(list, index))
    keyPaths(node.then, [...list, { index, branch: 'then' }], paths)
    keyPaths(node.else, [...list, { index, branch: 'else' }], paths)
  })
  return paths
}

export function newBlock(kind: BlockKind, id: string): Block {
  switch (kind) {
    case 'instruction':
      return { id, kind, text: '', confirm: false }
    case 'command':
      return {
        id,
        kind,
        script: '',
        shell: 'sh',
        host: 'local',
        timeout_secs: 60,
        workdir: null,
        env: {},
        expect_exit_codes: [0],
        on_failure: 'stop',
        secrets: {},
      }
    case 'api_call':
      return {
        id,
        kind,
        method: 'GET',
        url: '',
        headers: {},
        body: null,
        credential: null,
        timeout_secs: 10,
        expect_status: [200],
        on_failure: 'stop',
      }
    case 'conditional':
      return { id, kind, expr: '', then: [], else: [] }
    case 'timer':
      return { id, kind, seconds: 30 }
  }
}

/** Converts typed text to the parameter's type; text that does not fit stays text. */
export function coerceParam(type: ParamType, text: string): ParamValue {
  if (type === 'number') {
    const n = Number(text)
    return text.trim() !== '' && Number.isFinite(n) ? n : text
  }
  if (type === 'boolean') return text === 'true'
  return text
}

/**
 * The parameters a run starts with, from the run form's text. A blank field (not a boolean's
 * select) is left out, so the server applies the default or reports the missing value.
 */
export function runParams(params: Param[], values: Record<string, string>): Record<string, ParamValue> {
  const given: Record<string, ParamValue> = {}
  for (const param of params) {
    const type = param.type ?? 'string'
    const text = values[param.name] ?? ''
    if (type !== 'boolean' && text.trim() === '') continue
    given[param.name] = coerceParam(type, text)
  }
  return given
}

/**
 * A parameter's default from the text typed for it. Blank is no default (null), which the server
 * accepts for every type; text that is not a number stays text, for the server to point out.
 */
export function defaultFromText(type: ParamType, text: string): ParamValue {
  if (type === 'boolean') return text === 'true'
  if (type === 'number') return text.trim() === '' ? null : coerceParam(type, text)
  return text === '' ? null : text
}

export function newParam(params: Param[]): Param {
  const names = new Set(params.map((param) => param.name))
  let n = params.length + 1
  while (names.has(`param${n}`)) n += 1
  return { name: `param${n}`, type: 'string', default: null, required: false, description: '' }
}

let lastKey = 0

function newKey(): BlockKey {
  lastKey += 1
  return { key: `block-${lastKey}`, then: [], else: [] }
}

/**
 * Keys for `blocks`: those of `keys` where a block sits at the same place, new ones for the
 * rest, so the keys always match the blocks one to one.
 */
export function alignKeys(blocks: Block[], keys: BlockKey[] = []): BlockKey[] {
  return blocks.map((block, i) => {
    const known = keys[i] ?? newKey()
    if (block.kind !== 'conditional') return known.then.length || known.else.length ? { ...known, then: [], else: [] } : known
    const thenKeys = alignKeys(block.then ?? [], known.then)
    const elseKeys = alignKeys(block.else ?? [], known.else)
    return sameItems(thenKeys, known.then) && sameItems(elseKeys, known.else) ? known : { ...known, then: thenKeys, else: elseKeys }
  })
}

function sameItems<T>(a: T[], b: T[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i])
}

/** `keys` with the list at `path` replaced by `change(list)`, as `changeList` does for blocks. */
function changeKeys(keys: BlockKey[], path: ListPath, change: (list: BlockKey[]) => BlockKey[]): BlockKey[] {
  if (path.length === 0) return change(keys)
  const [{ index, branch }, ...rest] = path
  return keys.map((node, i) => (i === index ? { ...node, [branch]: changeKeys(node[branch], rest, change) } : node))
}

function replaceAt<T>(list: T[], index: number, item: T): T[] {
  return list.map((existing, i) => (i === index ? item : existing))
}

function withDraft(state: EditorState, patch: Partial<EditableDraft>): EditorState {
  return { ...state, draft: { ...state.draft, ...patch } }
}

export function initEditor(runbook: Runbook): EditorState {
  const draft = toEditable(runbook)
  return { base: runbook, draft, keys: alignKeys(draft.blocks) }
}

/**
 * The editor once `saved` is stored from the draft `sent`: edits typed while the save was under
 * way stay (and stay unsaved); without any, the server's copy is taken as it came back.
 */
function afterSave(state: EditorState, saved: Runbook, sent: EditableDraft): EditorState {
  if (!sameContent(state.draft, sent)) return { ...state, base: saved }
  const draft = toEditable(saved)
  // The cards stay the same cards: the stored blocks are the ones that were sent.
  return { base: saved, draft, keys: alignKeys(draft.blocks, state.keys) }
}

export function editorReducer(state: EditorState, action: EditorAction): EditorState {
  const { blocks, params } = state.draft
  // The same change is made to the list of blocks and to the list of their keys.
  const inList = (list: ListPath | undefined, change: <T>(list: T[]) => T[]) => {
    const path = list ?? TOP_LEVEL
    const next = changeList(blocks, path, change)
    return { ...withDraft(state, { blocks: next }), keys: alignKeys(next, changeKeys(state.keys, path, change)) }
  }
  switch (action.type) {
    case 'reset':
      return initEditor(action.runbook)
    case 'saved':
      return afterSave(state, action.runbook, action.sent)
    case 'set_field':
      return withDraft(state, { [action.field]: action.value })
    case 'add_block': {
      if (!listAt(blocks, action.list ?? TOP_LEVEL)) return state
      const block = newBlock(action.kind, uniqueBlockId(blocks))
      const path = action.list ?? TOP_LEVEL
      const next = changeList(blocks, path, (list) => [...list, block])
      return { ...withDraft(state, { blocks: next }), keys: alignKeys(next, changeKeys(state.keys, path, (list) => [...list, newKey()])) }
    }
    case 'update_block': {
      const next = changeList(blocks, action.list ?? TOP_LEVEL, (list) => replaceAt(list, action.index, action.block))
      return { ...withDraft(state, { blocks: next }), keys: alignKeys(next, state.keys) }
    }
    case 'move_block': {
      const target = action.index + action.delta
      const length = listAt(blocks, action.list ?? TOP_LEVEL)?.length ?? 0
      if (target < 0 || target >= length || action.index >= length) return state
      return inList(action.list, (list) => {
        const next = [...list]
        ;[next[action.index], next[target]] = [next[target], next[action.index]]
        return next
      })
    }
    case 'reorder_block': {
      const length = listAt(blocks, action.list ?? TOP_LEVEL)?.length ?? 0
      const { from, to } = action
      if (from === to || from < 0 || to < 0 || from >= length || to >= length) return state
      return inList(action.list, (list) => {
        const next = [...list]
        const [moved] = next.splice(from, 1)
        next.splice(to, 0, moved)
        return next
      })
    }
    case 'delete_block':
      return inList(action.list, (list) => list.filter((_, i) => i !== action.index))
    case 'add_param':
      return withDraft(state, { params: [...params, newParam(params)] })
    case 'update_param':
      return withDraft(state, { params: replaceAt(params, action.index, action.param) })
    case 'delete_param':
      return withDraft(state, { params: params.filter((_, i) => i !== action.index) })
  }
}
