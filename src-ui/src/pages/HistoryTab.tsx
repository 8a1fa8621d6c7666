// The History tab: every saved version, its content or its changes against the current one,
// and a roll back that creates a new version equal to the chosen one.

import { diffLines } from 'diff'
import { RotateCcw } from 'lucide-react'
import { useMemo, useState } from 'react'
import { useRollback, useVersion, useVersions } from '../api/queries'
import { useRoleRefusal } from '../api/roles'
import type { Runbook } from '../api/types'
import { ErrorBanner } from '../components/ErrorBanner'
import { formatDateTime, formatRelative } from '../util/format'
import { runbookText } from '../util/runbookText'

interface HistoryTabProps {
  runbook: Runbook
  unsavedChanges: boolean
  onRolledBack: (runbook: Runbook) => void
}

export function HistoryTab({ runbook, unsavedChanges, onRolledBack }: HistoryTabProps) {
  const versions = useVersions(runbook.id)
  const [selected, setSelected] = useState<number | null>(null)
  const items = useMemo(
    () => [...(versions.data?.items ?? [])].sort((a, b) => b.version - a.version),
    [versions.data],
  )
  const chosen = selected ?? items[0]?.version ?? null

  if (versions.isPending) return <div className="loading">Loading history…</div>
  if (versions.isError) return <ErrorBanner error={versions.error} title="Could not load the history" />

  return (
    <div className="history">
      <ol className="version-list" aria-label="Versions">
        {items.map((item) => (
          <li key={item.version}>
            <button
              type="button"
              className={`version-item${item.version === chosen ? ' is-selected' : ''}`}
              aria-current={item.version === chosen}
              data-testid={`version-${item.version}`}
              onClick={() => setSelected(item.version)}
            >
              <span className="version-number">v{item.version}</span>
              <span className="version-main">
                <span className="version-message">{item.message || <span className="muted">No message</span>}</span>
                <span className="version-meta" title={formatDateTime(item.created_at)}>
                  {item.created_by} · {formatRelative(item.created_at)}
                </span>
              </span>
              {item.version === runbook.version && <span className="chip chip-current">current</span>}
            </button>
          </li>
        ))}
      </ol>
      {chosen !== null && (
        <VersionDetail
          key={chosen}
          runbook={runbook}
          version={chosen}
          unsavedChanges={unsavedChanges}
          onRolledBack={(next) => {
            setSelected(null)
            onRolledBack(next)
          }}
        />
      )}
    </div>
  )
}

function VersionDetail({ runbook, version, unsavedChanges, onRolledBack }: HistoryTabProps & { version: number }) {
  const detail = useVersion(runbook.id, version)
  const rollback = useRollback(runbook.id)
  const rollbackRefusal = useRoleRefusal('editor')
  const [mode, setMode] = useState<'changes' | 'content'>('changes')
  const isCurrent = version === runbook.version
  const text = useMemo(() => (detail.data ? runbookText(detail.data) : ''), [detail.data])
  const parts = useMemo(() => (detail.data ? diffLines(runbookText(runbook), text) : []), [detail.data, runbook, text])
  const changed = parts.some((part) => part.added || part.removed)

  return (
    <section className="card version-detail" aria-label={`Version ${version}`}>
      <header className="version-detail-header">
        <h2 className="card-title">Version {version}</h2>
        <div className="segmented" role="group" aria-label="Show">
          <button type="button" aria-pressed={mode === 'changes'} onClick={() => setMode('changes')}>
            Changes vs current
          </button>
          <button type="button" aria-pressed={mode === 'content'} onClick={() => setMode('content')}>
            Content
          </button>
        </div>
        <span className="spacer" />
        <button
          type="button"
          className="btn btn-secondary"
          disabled={isCurrent || rollback.isPending || !detail.data || rollbackRefusal !== null}
          title={rollbackRefusal ?? undefined}
          onClick={() => rollback.mutate(version, { onSuccess: onRolledBack })}
        >
          <RotateCcw size={16} aria-hidden /> Roll back to this version
        </button>
      </header>
      {!isCurrent && unsavedChanges && (
        <p className="banner banner-warning">Rolling back discards your unsaved edits in the editor.</p>
      )}
      {rollback.isError && <ErrorBanner error={rollback.error} title="Roll back failed" />}
      {detail.isPending && <div className="loading">Loading version {version}…</div>}
      {detail.isError && <ErrorBanner error={detail.error} title={`Could not load version ${version}`} />}
      {detail.data && mode === 'content' && <pre className="code-view">{text}</pre>}
      {detail.data && mode === 'changes' && (
        <>
          <p className="muted diff-legend">
            {isCurrent
              ? 'This is the current version.'
              : changed
                ? `Lines only in version ${version} are marked +, lines only in the current version ${runbook.version} are marked −.`
                : `Version ${version} has the same content as the current version.`}
          </p>
          <pre className="code-view diff" aria-label="Differences">
            {parts.map((part, i) => {
              const cls = part.added ? 'diff-add' : part.removed ? 'diff-del' : 'diff-same'
              const sign = part.added ? '+ ' : part.removed ? '− ' : '  '
              const lines = part.value.replace(/\n$/, '').split('\n')
              return (
                <span key={i} className={cls}>
                  {lines.map((line) => `${sign}${line}\n`).join('')}
                </span>
              )
            })}
          </pre>
        </>
      )}
    </section>
  )
}
