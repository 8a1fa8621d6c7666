// The "Add block" button and its menu of the five block kinds.

import { Plus } from 'lucide-react'
import { useEffect, useRef, useState } from 'react'
import type { BlockKind } from '../api/types'
import { KindIcon } from '../components/KindIcon'
import { BLOCK_KINDS, BLOCK_LABELS } from './draft'

const DESCRIPTIONS: Record<BlockKind, string> = {
  instruction: 'Markdown guidance, optionally acknowledged',
  command: 'A shell script with timeout and exit codes',
  api_call: 'An HTTP request with expected status',
  conditional: 'Branch on params or earlier results',
  timer: 'Wait for a number of seconds',
}

interface AddBlockMenuProps {
  onAdd: (kind: BlockKind) => void
  /** The button's accessible name when it is not the runbook's own "Add block". */
  ariaLabel?: string
  compact?: boolean
}

export function AddBlockMenu({ onAdd, ariaLabel, compact = false }: AddBlockMenuProps) {
  const [open, setOpen] = useState(false)
  const root = useRef<HTMLDivElement>(null)

  useEffect(() => {
    if (!open) return
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === 'Escape' : !root.current?.contains(e.target as Node)) setOpen(false)
    }
    document.addEventListener('mousedown', close)
    document.addEventListener('keydown', close)
    root.current?.querySelector<HTMLButtonElement>('[role="menuitem"]')?.focus()
    return () => {
      document.removeEventListener('mousedown', close)
      document.removeEventListener('keydown', close)
    }
  }, [open])

  return (
    <div className="menu-anchor" ref={root}>
      <button
        type="button"
        className={`btn ${compact ? 'btn-ghost btn-sm' : 'btn-secondary'}`}
        aria-haspopup="menu"
        aria-expanded={open}
        aria-label={ariaLabel}
        onClick={() => setOpen(!open)}
      >
        <Plus size={16} aria-hidden /> Add block
      </button>
      {open && (
        <div className="menu" role="menu" aria-label="Block kinds">
          {BLOCK_KINDS.map((kind) => (
            <button
              key={kind}
              type="button"
              role="menuitem"
              className="menu-item"
              aria-label={BLOCK_LABELS[kind]}
              title={DESCRIPTIONS[kind]}
              onClick={() => {
                onAdd(kind)
                setOpen(false)
              }}
            >
              <KindIcon kind={kind} />
              <span>
                <span className="menu-item-title">{BLOCK_LABELS[kind]}</span>
                <span className="menu-item-hint">{DESCRIPTIONS[kind]}</span>
              </span>
            </button>
          ))}
        </div>
      )}
    </div>
  )
}
