// The "Add block" button and its menu of the five block kinds.

import { Plus } from 'lucide-react'
import { useEffect, useRef, useState, type KeyboardEvent as ReactKeyboardEvent } from 'react'
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
  const trigger = useRef<HTMLButtonElement>(null)

  useEffect(() => {
    if (!open) return
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === 'Escape' : !root.current?.contains(e.target as Node)) setOpen(false)
      // Escape from the menu returns to its button rather than to the top of the page.
      if (e instanceof KeyboardEvent && e.key === 'Escape' && root.current?.contains(document.activeElement)) trigger.current?.focus()
    }
    document.addEventListener('mousedown', close)
    document.addEventListener('keydown', close)
    root.current?.querySelector<HTMLButtonElement>('[role="menuitem"]')?.focus()
    return () => {
      document.removeEventListener('mousedown', close)
      document.removeEventListener('keydown', close)
    }
  }, [open])

  // A menu is walked with the arrow keys (Home and End go to either end).
  const onMenuKeyDown = (e: ReactKeyboardEvent<HTMLDivElement>) => {
    const items = [...e.currentTarget.querySelectorAll<HTMLButtonElement>('[role="menuitem"]')]
    const at = items.findIndex((item) => item === document.activeElement)
    const targets: Record<string, number> = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }
    const target = targets[e.key]
    if (target === undefined) return
    e.preventDefault()
    items[(target + items.length) % items.length]?.focus()
  }

  return (
    <div className="menu-anchor" ref={root}>
      <button
        ref={trigger}
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
        <div className="menu" role="menu" aria-label="Block kinds" onKeyDown={onMenuKeyDown}>
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
