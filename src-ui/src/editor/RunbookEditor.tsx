// The Editor tab: details, parameters and block cards of the draft, with the save bar on top.

import { Save } from 'lucide-react'
import { useMemo } from 'react'
import type { ApiError } from '../api/errors'
import type { FieldError } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { Field } from '../components/Field'
import { MarkdownField } from '../components/Markdown'
import { AddBlockMenu } from './AddBlockMenu'
import { BlockCard } from './BlockCard'
import type { EditorAction, EditorState } from './draft'
import { ParamsEditor } from './ParamsEditor'

interface RunbookEditorProps {
  state: EditorState
  dispatch: (action: EditorAction) => void
  dirty: boolean
  saving: boolean
  saveError: ApiError | null
  message: string
  onMessageChange: (message: string) => void
  onSave: () => void
  onLoadLatest: () => void
  onOverwrite: () => void
}

/** Field errors grouped by the top-level block they point into (`blocks[2].then[0].id` → 2). */
function errorsByBlock(errors: FieldError[]): Map<number, FieldError[]> {
  const byBlock = new Map<number, FieldError[]>()
  for (const error of errors) {
    const match = /^blocks\[(\d+)\]/.exec(error.path)
    if (!match) continue
    const index = Number(match[1])
    byBlock.set(index, [...(byBlock.get(index) ?? []), error])
  }
  return byBlock
}

export function RunbookEditor(props: RunbookEditorProps) {
  const { state, dispatch, dirty, saving, saveError } = props
  const { draft } = state
  const fieldErrors = useMemo(() => saveError?.fieldErrors ?? [], [saveError])
  const blockErrors = useMemo(() => errorsByBlock(fieldErrors), [fieldErrors])
  const idCounts = useMemo(() => {
    const counts = new Map<string, number>()
    for (const block of draft.blocks) counts.set(block.id, (counts.get(block.id) ?? 0) + 1)
    return counts
  }, [draft.blocks])
  const conflict = saveError?.code === 'version_conflict'

  return (
    <div className="editor">
      <div className="save-bar">
        <span className={`dirty-indicator${dirty ? ' is-dirty' : ''}`} data-testid="dirty-indicator">
          <span className="dot" aria-hidden />
          {dirty ? 'Unsaved changes' : `Saved · version ${state.base.version}`}
        </span>
        <span className="spacer" />
        <input
          className="input save-message"
          aria-label="Change note"
          placeholder="Describe this change (optional)"
          value={props.message}
          onChange={(e) => props.onMessageChange(e.target.value)}
          onKeyDown={(e) => e.key === 'Enter' && props.onSave()}
        />
        <button type="button" className="btn btn-primary" onClick={props.onSave} disabled={saving || !dirty} title="Save (Ctrl+S)">
          <Save size={16} aria-hidden /> {saving ? 'Saving…' : 'Save'}
        </button>
      </div>

      {saveError && conflict && (
        <ErrorBanner error={saveError} title="Not saved: someone else saved a newer version">
          <p>Your edits are based on version {state.base.version}. Nothing was overwritten.</p>
          <div className="banner-actions">
            <button type="button" className="btn btn-secondary btn-sm" onClick={props.onLoadLatest}>
              Discard my edits and load the latest
            </button>
            <button type="button" className="btn btn-danger btn-sm" onClick={props.onOverwrite}>
              Save my version over it
            </button>
          </div>
        </ErrorBanner>
      )}
      {saveError && !conflict && <ErrorBanner error={saveError} title="The runbook was not saved" />}

      <section className="card">
        <h2 className="card-title">Details</h2>
        <Field label="Name">
          {(id) => (
            <input
              id={id}
              className="input input-lg"
              value={draft.name}
              onChange={(e) => dispatch({ type: 'set_field', field: 'name', value: e.target.value })}
            />
          )}
        </Field>
        <Field label="Tags" hint="Comma separated">
          {(id) => (
            <input
              id={id}
              className="input"
              value={draft.tagsText}
              placeholder="payments, database"
              onChange={(e) => dispatch({ type: 'set_field', field: 'tagsText', value: e.target.value })}
            />
          )}
        </Field>
        <MarkdownField
          label="Description"
          value={draft.description}
          rows={3}
          placeholder="What this runbook is for and when to use it (markdown)"
          onChange={(value) => dispatch({ type: 'set_field', field: 'description', value })}
        />
      </section>

      <section className="card">
        <h2 className="card-title">Parameters</h2>
        <ParamsEditor params={draft.params} dispatch={dispatch} />
      </section>

      <div className="blocks-heading">
        <h2>Blocks</h2>
        <span className="count">{draft.blocks.length}</span>
      </div>
      {draft.blocks.length === 0 && <div className="empty-card">No blocks yet. Add the first step below.</div>}
      <ol className="block-list">
        {draft.blocks.map((block, index) => (
          <li key={index}>
            <BlockCard
              block={block}
              index={index}
              count={draft.blocks.length}
              duplicateId={(idCounts.get(block.id) ?? 0) > 1}
              errors={blockErrors.get(index) ?? []}
              dispatch={dispatch}
            />
          </li>
        ))}
      </ol>
      <div className="add-block-row">
        <AddBlockMenu onAdd={(kind) => dispatch({ type: 'add_block', kind })} />
      </div>
    </div>
  )
}
