// The Editor tab: details, parameters and block cards of the draft, with the save bar on top.
// For a role that may not save, the whole editor is read only (see ReadOnlyContext).

import { Eye, Save, Undo2 } from 'lucide-react'
import { useMemo, useState } from 'react'
import type { ApiError } from '../api/errors'
import type { FieldError, Role } from '../api/types'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { ErrorBanner } from '../components/ErrorBanner'
import { Field } from '../components/Field'
import { MarkdownField } from '../components/Markdown'
import { ReadOnlyContext } from '../components/readOnly'
import { BlockList } from './BlockCard'
import { blockIdCounts, keyPaths, TOP_LEVEL, type EditorAction, type EditorState } from './draft'
import { errorsAt, type BlockErrors } from './fieldErrors'
import { ParamsEditor } from './ParamsEditor'

interface RunbookEditorProps {
  state: EditorState
  dispatch: (action: EditorAction) => void
  dirty: boolean
  saving: boolean
  /** Why this user may not save (their role), or null when they may. */
  saveRefusal?: string | null
  /** The signed-in role when it is known and below editor: the editor is read only. */
  readOnlyRole?: Role | null
  saveError: ApiError | null
  message: string
  onMessageChange: (message: string) => void
  onSave: () => void
  onLoadLatest: () => void
  onOverwrite: () => void
  /** Drops the unsaved changes: the editor shows the saved version again. */
  onDiscard: () => void
}

/** The messages of errors about one top-level field (`name`, `tags[1]`...). */
function topLevelMessage(errors: FieldError[], field: string): string | undefined {
  const mine = errors.filter((error) => error.path === field || error.path.startsWith(`${field}[`) || error.path.startsWith(`${field}.`))
  return mine.length > 0 ? mine.map((error) => error.message).join(' · ') : undefined
}

export function RunbookEditor(props: RunbookEditorProps) {
  const { state, dispatch, dirty, saving, saveError, saveRefusal = null, readOnlyRole = null } = props
  const { draft } = state
  const fieldErrors = useMemo(() => saveError?.fieldErrors ?? [], [saveError])
  const idCounts = useMemo(() => blockIdCounts(draft.blocks), [draft.blocks])
  // The server's paths (`blocks[2].script`) name places in the draft as it was sent: each card
  // finds its errors by where its block was then, so they stay with it when blocks move or go.
  // The same objects while the errors are, so an editor tells a new save's errors from those it showed.
  const [sentKeys, setSentKeys] = useState(state.keys)
  const [wasSaving, setWasSaving] = useState(saving)
  if (saving !== wasSaving) {
    setWasSaving(saving)
    if (saving) setSentKeys(state.keys)
  }
  const errorsByKey = useMemo(() => {
    const byKey = new Map<string, BlockErrors>()
    for (const [key, path] of keyPaths(sentKeys)) byKey.set(key, errorsAt(fieldErrors, path))
    return byKey
  }, [sentKeys, fieldErrors])
  const conflict = saveError?.code === 'version_conflict'
  // Nothing that cannot be saved should be editable: trying changes only to lose them misleads.
  const readOnly = readOnlyRole !== null
  // The Save button, Enter in the change note and Ctrl+S all save only a changed draft, once at a time.
  const canSave = dirty && !saving && saveRefusal === null && !readOnly
  const save = () => {
    if (canSave) props.onSave()
  }
  const [confirmingDiscard, setConfirmingDiscard] = useState(false)

  // Edits typed before the role was known stay on screen, marked, though they cannot be saved.
  const status = readOnly
    ? `Read only · ${dirty ? 'unsaved changes' : `version ${state.base.version}`}`
    : dirty
      ? 'Unsaved changes'
      : `Saved · version ${state.base.version}`

  return (
    <ReadOnlyContext value={readOnly}>
      <div className="editor">
        <div className="save-bar">
          <span className={`dirty-indicator${dirty ? ' is-dirty' : ''}`} data-testid="dirty-indicator">
            <span className="dot" aria-hidden />
            {status}
          </span>
          <span className="spacer" />
          {!readOnly && (
            <>
              <input
                className="input save-message"
                aria-label="Change note"
                placeholder="Describe this change (optional)"
                value={props.message}
                onChange={(e) => props.onMessageChange(e.target.value)}
                onKeyDown={(e) => e.key === 'Enter' && save()}
              />
              {dirty && (
                <button
                  type="button"
                  className="btn btn-ghost"
                  onClick={() => setConfirmingDiscard(true)}
                  disabled={saving}
                  title={`Drop the unsaved changes and show version ${state.base.version} again`}
                >
                  <Undo2 size={16} aria-hidden /> Discard
                </button>
              )}
              <button type="button" className="btn btn-primary" onClick={save} disabled={!canSave} title={saveRefusal ?? 'Save (Ctrl+S)'}>
                <Save size={16} aria-hidden /> {saving ? 'Saving…' : 'Save'}
              </button>
            </>
          )}
        </div>
        {confirmingDiscard && (
          <ConfirmDialog
            title="Discard your unsaved changes?"
            confirmLabel="Discard changes"
            busy={false}
            error={null}
            onConfirm={() => {
              setConfirmingDiscard(false)
              props.onDiscard()
            }}
            onClose={() => setConfirmingDiscard(false)}
          >
            <p>The editor shows version {state.base.version} as it was saved. What you changed since is lost.</p>
          </ConfirmDialog>
        )}

        {readOnlyRole && (
          <div className="banner banner-warning" role="status" data-testid="read-only-notice">
            <Eye size={18} aria-hidden className="banner-icon" />
            <div className="banner-body">
              Read only: editing needs the editor role or higher (you are signed in as {readOnlyRole}).
            </div>
          </div>
        )}
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
          <Field label="Name" error={topLevelMessage(fieldErrors, 'name')}>
            {(id) => (
              <input
                id={id}
                className="input input-lg"
                value={draft.name}
                readOnly={readOnly}
                onChange={(e) => dispatch({ type: 'set_field', field: 'name', value: e.target.value })}
              />
            )}
          </Field>
          <Field label="Tags" hint="Comma separated" error={topLevelMessage(fieldErrors, 'tags')}>
            {(id) => (
              <input
                id={id}
                className="input"
                value={draft.tagsText}
                placeholder="payments, database"
                readOnly={readOnly}
                onChange={(e) => dispatch({ type: 'set_field', field: 'tagsText', value: e.target.value })}
              />
            )}
          </Field>
          <MarkdownField
            label="Description"
            value={draft.description}
            rows={3}
            placeholder="What this runbook is for and when to use it (markdown)"
            error={topLevelMessage(fieldErrors, 'description')}
            onChange={(value) => dispatch({ type: 'set_field', field: 'description', value })}
          />
        </section>

        <section className="card">
          <h2 className="card-title">Parameters</h2>
          <ParamsEditor params={draft.params} errors={fieldErrors} dispatch={dispatch} />
        </section>

        <div className="blocks-heading">
          <h2>Blocks</h2>
          <span className="count">{draft.blocks.length}</span>
        </div>
        <BlockList
          blocks={draft.blocks}
          keys={state.keys}
          list={TOP_LEVEL}
          errorsByKey={errorsByKey}
          idCounts={idCounts}
          dispatch={dispatch}
          depth={1}
          emptyText={readOnly ? 'No blocks yet.' : 'No blocks yet. Add the first step below.'}
        />
      </div>
    </ReadOnlyContext>
  )
}
