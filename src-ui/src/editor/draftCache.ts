// Unsaved editor drafts, kept per runbook for the session so navigating away loses nothing.

import type { Runbook } from '../api/types'
import { initEditor, isDirty, sameContent, toEditable, type EditorState } from './draft'

const drafts = new Map<string, EditorState>()
const listeners = new Set<() => void>()
let snapshot: ReadonlySet<string> = new Set()

function publish() {
  snapshot = new Set([...drafts.keys()])
  listeners.forEach((listener) => listener())
}

/**
 * The editor state to open a runbook with: the unsaved draft if there is one. A draft the server's
 * newer version already holds (its save finished after the editor was left) is no longer unsaved:
 * kept, it would be based on the older version and its next save refused as a conflict.
 */
export function openDraft(runbook: Runbook): EditorState {
  const draft = drafts.get(runbook.id)
  // Left in the cache (this runs while rendering): storing the clean state opened drops it.
  const stored = draft && draft.base.version !== runbook.version && sameContent(draft.draft, toEditable(runbook))
  return draft && !stored ? draft : initEditor(runbook)
}

export function storeDraft(id: string, state: EditorState): void {
  const had = drafts.has(id)
  if (isDirty(state)) drafts.set(id, state)
  else drafts.delete(id)
  if (had !== drafts.has(id)) publish()
}

export function forgetDraft(id: string): void {
  if (drafts.delete(id)) publish()
}

/** Ids of runbooks with unsaved changes. */
export function dirtyRunbookIds(): ReadonlySet<string> {
  return snapshot
}

export function onDraftsChange(listener: () => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

export function hasUnsavedDrafts(): boolean {
  return drafts.size > 0
}
