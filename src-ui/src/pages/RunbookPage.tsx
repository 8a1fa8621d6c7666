// The runbook page: header with Run, and the Editor / History / Runs tabs.

import { useQueryClient } from '@tanstack/react-query'
import { Play, Trash2 } from 'lucide-react'
import { useCallback, useEffect, useReducer, useRef, useState, type ReactNode } from 'react'
import { useNavigate, useParams, useSearchParams } from 'react-router'
import { normalizeError } from '../api/errors'
import { keys, useDeleteRunbook, useExecute, useMe, useRunbook, useUpdateRunbook } from '../api/queries'
import { roleAtLeast, useRoleRefusal } from '../api/roles'
import { call } from '../api/transport'
import type { ParamValue, Runbook } from '../api/types'
import { ConnectionBanner } from '../components/ConnectionBanner'
import { ErrorBanner } from '../components/ErrorBanner'
import { Modal } from '../components/Modal'
import { RunDialog } from '../components/RunDialog'
import { editorReducer, isDirty, parseTags, sameContent, toEditable, toUpdate } from '../editor/draft'
import { forgetDraft, openDraft, storeDraft } from '../editor/draftCache'
import { RunbookEditor } from '../editor/RunbookEditor'
import { formatDateTime, formatRelative } from '../util/format'
import { HistoryTab } from './HistoryTab'
import { RunsTab } from './RunsTab'
import { askToNotify } from '../util/notifications'

const TABS = [
  { id: 'editor', label: 'Editor' },
  { id: 'history', label: 'History' },
  { id: 'runs', label: 'Runs' },
] as const
type TabId = (typeof TABS)[number]['id']

export function RunbookPage() {
  const { id = '' } = useParams()
  const runbook = useRunbook(id)
  if (runbook.isPending) return <div className="page loading">Loading runbook…</div>
  if (runbook.data === undefined) {
    const error = normalizeError(runbook.error)
    return (
      <div className="page">
        <ErrorBanner error={error} title={error.status === 404 ? 'This runbook does not exist (any more).' : 'Could not load the runbook'} />
      </div>
    )
  }
  // A failed refresh keeps the editor, and any unsaved edits, on screen.
  const refreshError = runbook.isError ? (
    <ConnectionBanner error={runbook.error} retrying={false} fetching={runbook.isFetching} onRetry={() => void runbook.refetch()} />
  ) : null
  return <RunbookWorkspace key={id} runbook={runbook.data} refreshError={refreshError} />
}

function RunbookWorkspace({ runbook, refreshError }: { runbook: Runbook; refreshError: ReactNode }) {
  const [state, dispatch] = useReducer(editorReducer, runbook, openDraft)
  const [searchParams, setSearchParams] = useSearchParams()
  const tab: TabId = TABS.find((t) => t.id === searchParams.get('tab'))?.id ?? 'editor'
  const [message, setMessage] = useState('')
  const [runDialog, setRunDialog] = useState(false)
  const [confirmDelete, setConfirmDelete] = useState(false)
  const update = useUpdateRunbook(runbook.id)
  const execute = useExecute(runbook.id)
  const remove = useDeleteRunbook()
  const client = useQueryClient()
  const navigate = useNavigate()
  const dirty = isDirty(state)
  // Running needs an operator; saving, deleting and rolling back need an editor.
  const runRefusal = useRoleRefusal('operator')
  const editRefusal = useRoleRefusal('editor')
  // A role known to be below editor sees the editor read only.
  const role = useMe().data?.role
  const readOnlyRole = role !== undefined && !roleAtLeast(role, 'editor') ? role : null

  useEffect(() => storeDraft(runbook.id, state), [runbook.id, state])

  // A newer server copy (saved elsewhere, or a refetch) replaces a clean editor, and one holding
  // what the newer copy holds (a save of this draft that finished while the editor was away).
  const [seenVersion, setSeenVersion] = useState(runbook.version)
  if (runbook.version !== seenVersion) {
    setSeenVersion(runbook.version)
    if (!dirty || sameContent(state.draft, toEditable(runbook))) dispatch({ type: 'reset', runbook })
  }

  const save = useCallback(
    (basedOn?: number) => {
      const body = toUpdate(state, message)
      if (basedOn !== undefined) body.version = basedOn
      const sent = state.draft
      update.mutate(body, {
        onSuccess: (saved) => {
          dispatch({ type: 'saved', runbook: saved, sent })
          setMessage('')
        },
      })
    },
    [state, message, update],
  )

  const latest = () => client.fetchQuery({ queryKey: keys.runbook(runbook.id), queryFn: () => call('get_runbook', { id: runbook.id }), staleTime: 0 })
  const loadLatest = async () => {
    const fresh = await latest()
    update.reset()
    dispatch({ type: 'reset', runbook: fresh })
  }

  // Ctrl+S / Cmd+S saves while the editor is shown.
  const saveRef = useRef(save)
  useEffect(() => {
    saveRef.current = save
  }, [save])
  // Saves what is in the editor once the latest version is known, edits typed meanwhile included.
  const overwrite = async () => {
    const { version } = await latest()
    saveRef.current(version)
  }
  // Read only, Ctrl+S still keeps the browser from saving the page, and saves nothing.
  const canSave = tab === 'editor' && dirty && !update.isPending && editRefusal === null && readOnlyRole === null
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
        e.preventDefault()
        if (canSave) saveRef.current()
      }
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [canSave])

  const startRun = (params: Record<string, ParamValue>) => {
    // Starting a run is the moment to ask whether it may notify when it waits for someone.
    askToNotify()
    execute.mutate({ params, version: null }, { onSuccess: (execution) => navigate(`/executions/${execution.id}`) })
  }

  const onRun = () => {
    if ((runbook.params ?? []).length > 0 || dirty) setRunDialog(true)
    else startRun({})
  }

  const selectTab = (next: TabId) => setSearchParams(next === 'editor' ? {} : { tab: next }, { replace: true })
  const title = state.draft.name.trim() || 'Untitled runbook'
  const tags = parseTags(state.draft.tagsText)

  return (
    <div className="page runbook-page">
      <header className="page-header">
        <div className="page-title-block">
          <h1 className="page-title">{title}</h1>
          <div className="page-meta">
            <span className="chip chip-version">v{runbook.version}</span>
            <span title={formatDateTime(runbook.updated_at)}>
              Updated {formatRelative(runbook.updated_at)} by {runbook.updated_by}
            </span>
            {tags.map((tag) => (
              <span key={tag} className="chip chip-tag">
                {tag}
              </span>
            ))}
          </div>
        </div>
        <div className="page-actions">
          <button
            type="button"
            className="btn btn-ghost"
            disabled={editRefusal !== null}
            title={editRefusal ?? undefined}
            onClick={() => setConfirmDelete(true)}
          >
            <Trash2 size={16} aria-hidden /> Delete
          </button>
          <button
            type="button"
            className="btn btn-run btn-lg"
            onClick={onRun}
            disabled={execute.isPending || runRefusal !== null}
            title={runRefusal ?? undefined}
          >
            <Play size={18} aria-hidden /> Run
          </button>
        </div>
      </header>
      {refreshError}
      {execute.isError && !runDialog && <ErrorBanner error={execute.error} title="The run did not start" />}

      <div className="tabs" role="tablist" aria-label="Runbook sections">
        {TABS.map((t) => (
          <button
            key={t.id}
            type="button"
            role="tab"
            id={`tab-${t.id}`}
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            className="tab"
            onClick={() => selectTab(t.id)}
          >
            {t.label}
            {t.id === 'editor' && dirty && <span className="tab-dot" aria-label="unsaved changes" />}
          </button>
        ))}
      </div>

      {/* The editor stays mounted so switching tabs keeps the cursor and undo history. */}
      <div role="tabpanel" id="panel-editor" aria-labelledby="tab-editor" hidden={tab !== 'editor'}>
        <RunbookEditor
          state={state}
          dispatch={dispatch}
          dirty={dirty}
          saving={update.isPending}
          saveRefusal={editRefusal}
          readOnlyRole={readOnlyRole}
          saveError={update.error ? normalizeError(update.error) : null}
          message={message}
          onMessageChange={setMessage}
          onSave={() => save()}
          onLoadLatest={() => void loadLatest()}
          onOverwrite={() => void overwrite()}
          onDiscard={() => {
            update.reset()
            setMessage('')
            dispatch({ type: 'reset', runbook: state.base })
          }}
        />
      </div>
      {tab === 'history' && (
        <div role="tabpanel" id="panel-history" aria-labelledby="tab-history">
          <HistoryTab
            runbook={runbook}
            unsavedChanges={dirty}
            onRolledBack={(next) => {
              update.reset()
              dispatch({ type: 'reset', runbook: next })
            }}
          />
        </div>
      )}
      {tab === 'runs' && (
        <div role="tabpanel" id="panel-runs" aria-labelledby="tab-runs">
          <RunsTab runbookId={runbook.id} />
        </div>
      )}

      {runDialog && (
        <RunDialog
          runbookName={runbook.name}
          version={runbook.version}
          params={runbook.params ?? []}
          unsavedChanges={dirty}
          starting={execute.isPending}
          error={execute.error}
          onRun={startRun}
          onClose={() => setRunDialog(false)}
        />
      )}
      {confirmDelete && (
        <Modal
          title="Delete this runbook?"
          onClose={() => setConfirmDelete(false)}
          footer={
            <>
              <button type="button" className="btn btn-ghost" onClick={() => setConfirmDelete(false)}>
                Cancel
              </button>
              <button
                type="button"
                className="btn btn-danger"
                disabled={remove.isPending}
                onClick={() =>
                  remove.mutate(runbook.id, {
                    onSuccess: () => {
                      forgetDraft(runbook.id)
                      navigate('/')
                    },
                  })
                }
              >
                Delete runbook
              </button>
            </>
          }
        >
          <p>
            “{runbook.name}” disappears from the list for everyone. Its history stays in the audit trail.
          </p>
          {remove.isError && <ErrorBanner error={remove.error} title="Could not delete" />}
        </Modal>
      )}
    </div>
  )
}
