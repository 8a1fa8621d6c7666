// Unsaved editor drafts, kept per runbook for the session so navigating away loses nothing.

import type { Runbook } from '../api/types'
import { initEditor, isDirty, type EditorState } from './draft'

const drafts = new Map<string, EditorState>()
const listeners = new Set<() => void>()
let snapshot: ReadonlySet<string> = new Set()

function publish() {
  snapshot = new Set([...drafts.keys()])
  listeners.forEach((listener) => listener())
}

/** The editor state to open a runbook with: the unsaved draft if there is one. */
export function openDraft(runbook: Runbook): EditorState {
  return drafts.get(runbook.id) ?? initEditor(runbook)
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
