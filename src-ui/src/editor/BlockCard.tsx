// A list of block cards (the runbook's own, or a conditional's branch) and the card of one block:
// kind, editable id, drag handle, collapse, reorder/delete buttons and the kind's inline editor.
// A conditional's card holds its branches as nested lists with the same controls. Read only, only
// collapsing is left.

import { ArrowDown, ArrowUp, ChevronDown, ChevronRight, GripVertical, Trash2 } from 'lucide-react'
import { useEffect, useRef, useState, type DragEvent } from 'react'
import type { Block, BlockKind } from '../api/types'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { KindIcon } from '../components/KindIcon'
import { useReadOnly } from '../components/readOnly'
import { formatSeconds } from '../util/format'
import { AddBlockMenu } from './AddBlockMenu'
import { BlockBody } from './BlockEditors'
import { BLOCK_LABELS, nestedBlockCount, type BlockKey, type EditorAction, type ListPath } from './draft'
import { NO_ERRORS, SHOWN_FIELDS, type BlockErrors } from './fieldErrors'

/** Deepest list that may still hold blocks (the runbook's own list is depth 1). */
export const MAX_DEPTH = 8

interface SharedProps {
  list: ListPath
  /** The server errors of the last save by the key of the block they are about. */
  errorsByKey: Map<string, BlockErrors>
  /** How often each block id is used in the whole runbook. */
  idCounts: Map<string, number>
  dispatch: (action: EditorAction) => void
  depth: number
}

interface BlockListProps extends SharedProps {
  blocks: Block[]
  /** The editor's key of each block, so a card stays with its block when blocks move. */
  keys: BlockKey[]
  /** What the add button is called inside a branch, e.g. "Add block to then of check". */
  addLabel?: string
  emptyText?: string
}

/** The block being dragged, if any: only drops into the same list reorder. */
let dragged: { listKey: string; index: number } | null = null

export function BlockList({ blocks, keys, addLabel, emptyText, ...shared }: BlockListProps) {
  const { list, dispatch, depth } = shared
  const readOnly = useReadOnly()
  const nested = list.length > 0
  const cards = useRef<HTMLOListElement>(null)
  const addRow = useRef<HTMLDivElement>(null)
  // After an add or a delete the focus goes to the card now at that place (the list's add button
  // when none is left), instead of falling back to the top of the page with the control it was on.
  const focusAt = useRef<number | null>(null)
  useEffect(() => {
    const at = focusAt.current
    if (at === null) return
    focusAt.current = null
    const items = cards.current?.children
    const card = items?.[Math.min(at, items.length - 1)]?.firstElementChild ?? addRow.current?.querySelector('button')
    if (card instanceof HTMLElement) card.focus()
  }, [blocks])
  const onAdd = (kind: BlockKind) => {
    focusAt.current = blocks.length
    dispatch({ type: 'add_block', kind, list })
  }
  const onDelete = (index: number) => {
    focusAt.current = index
    dispatch({ type: 'delete_block', index, list })
  }
  return (
    <div className={nested ? 'block-list-nested' : undefined}>
      {blocks.length === 0 && emptyText && <div className={nested ? 'branch-empty' : 'empty-card'}>{emptyText}</div>}
      {blocks.length > 0 && (
        <ol className="block-list" ref={cards}>
          {blocks.map((block, index) => (
            <li key={keys[index]?.key ?? `at-${index}`}>
              <BlockCard block={block} blockKey={keys[index]} index={index} count={blocks.length} onDelete={() => onDelete(index)} {...shared} />
            </li>
          ))}
        </ol>
      )}
      {depth <= MAX_DEPTH && !readOnly && (
        <div className={nested ? 'add-block-row add-block-row-nested' : 'add-block-row'} ref={addRow}>
          <AddBlockMenu ariaLabel={addLabel} compact={nested} onAdd={onAdd} />
        </div>
      )}
    </div>
  )
}

interface BlockCardProps extends SharedProps {
  block: Block
  blockKey: BlockKey | undefined
  index: number
  count: number
  onDelete: () => void
}

/** One line saying what a collapsed block does. */
function summary(block: Block): string {
  const firstLine = (text: string) => text.split('\n').find((line) => line.trim() !== '')?.trim() ?? ''
  switch (block.kind) {
    case 'instruction':
      return firstLine(block.text) || 'No text'
    case 'command':
      return firstLine(block.script) || 'Empty script'
    case 'api_call':
      return `${block.method} ${block.url}`
    case 'conditional':
      return `if ${block.expr || '…'} · then ${block.then?.length ?? 0}, else ${block.else?.length ?? 0} blocks`
    case 'timer':
      return `wait ${formatSeconds(block.seconds)}`
  }
}

export function BlockCard({ block, blockKey, index, count, onDelete, ...shared }: BlockCardProps) {
  const { list, errorsByKey, idCounts, dispatch, depth } = shared
  const readOnly = useReadOnly()
  const [collapsed, setCollapsed] = useState(false)
  const [dragArmed, setDragArmed] = useState(false)
  const [dropTarget, setDropTarget] = useState(false)
  // A conditional goes with its branches: with blocks in them, that is asked first.
  const [confirmingDelete, setConfirmingDelete] = useState(false)
  const nestedCount = nestedBlockCount(block)
  const label = BLOCK_LABELS[block.kind] ?? block.kind
  const mine = (blockKey && errorsByKey.get(blockKey.key)) ?? NO_ERRORS
  const shown = SHOWN_FIELDS[block.kind]
  const cardErrors = [...mine.card, ...[...mine.fields].filter(([field]) => !shown?.has(field)).flatMap(([, list]) => list)]
  const duplicateId = (idCounts.get(block.id) ?? 0) > 1
  const invalid = cardErrors.length > 0 || duplicateId || mine.fields.size > 0
  const listKey = JSON.stringify(list)
  const moveUp = useRef<HTMLButtonElement>(null)
  const moveDown = useRef<HTMLButtonElement>(null)
  // A moved card's element is taken out and put back, which takes the focus from the button that
  // moved it: give it back (to the other one at either end), so the keys can move it again.
  const movedBy = useRef<HTMLButtonElement | null>(null)
  useEffect(() => {
    const button = movedBy.current
    if (!button) return
    movedBy.current = null
    const other = button === moveUp.current ? moveDown.current : moveUp.current
    ;(button.disabled ? other : button)?.focus()
  }, [index])
  const move = (delta: -1 | 1, button: HTMLButtonElement) => {
    movedBy.current = button
    dispatch({ type: 'move_block', index, delta, list })
  }

  const onDragStart = (e: DragEvent) => {
    // A drag started inside a read-only card (selected text, say) moves no block.
    if (readOnly) return
    dragged = { listKey, index }
    e.dataTransfer.effectAllowed = 'move'
    e.dataTransfer.setData('text/plain', block.id)
    e.stopPropagation()
  }
  const canDrop = () => !readOnly && dragged !== null && dragged.listKey === listKey && dragged.index !== index
  const onDragOver = (e: DragEvent) => {
    if (!canDrop()) return
    e.preventDefault()
    e.stopPropagation()
    setDropTarget(true)
  }
  const onDrop = (e: DragEvent) => {
    setDropTarget(false)
    if (!canDrop() || !dragged) return
    e.preventDefault()
    e.stopPropagation()
    dispatch({ type: 'reorder_block', from: dragged.index, to: index, list })
    dragged = null
  }

  return (
    <section
      className={`card block-card${invalid ? ' block-card-invalid' : ''}${dropTarget ? ' block-card-drop' : ''}${depth > 1 ? ' block-card-nested' : ''}`}
      aria-label={`${label} block ${block.id}`}
      data-testid={`block-${block.id}`}
      tabIndex={-1}
      draggable={dragArmed && !readOnly}
      onDragStart={onDragStart}
      onDragEnd={() => {
        dragged = null
        setDragArmed(false)
      }}
      onDragOver={onDragOver}
      onDragLeave={() => setDropTarget(false)}
      onDrop={onDrop}
    >
      <header className="block-header">
        {!readOnly && (
          <span
            className="drag-handle"
            title="Drag to reorder"
            aria-hidden
            onMouseDown={() => setDragArmed(true)}
            onMouseUp={() => setDragArmed(false)}
          >
            <GripVertical size={14} />
          </span>
        )}
        <button
          type="button"
          className="icon-btn icon-btn-sm"
          aria-label={collapsed ? 'Expand block' : 'Collapse block'}
          aria-expanded={!collapsed}
          title={collapsed ? 'Expand' : 'Collapse'}
          onClick={() => setCollapsed(!collapsed)}
        >
          {collapsed ? <ChevronRight size={15} /> : <ChevronDown size={15} />}
        </button>
        <span className="block-index">{index + 1}</span>
        <KindIcon kind={block.kind} />
        <span className="block-kind">{label}</span>
        <input
          className={`input input-id mono${duplicateId || mine.card.length > 0 ? ' input-invalid' : ''}`}
          aria-label="Block id"
          value={block.id}
          spellCheck={false}
          readOnly={readOnly}
          onChange={(e) => dispatch({ type: 'update_block', index, list, block: { ...block, id: e.target.value } })}
        />
        {collapsed && <span className="block-summary">{summary(block)}</span>}
        <span className="spacer" />
        {!readOnly && (
          <>
            <button
              type="button"
              className="icon-btn"
              aria-label="Move up"
              title="Move up"
              ref={moveUp}
              disabled={index === 0}
              onClick={(e) => move(-1, e.currentTarget)}
            >
              <ArrowUp size={16} />
            </button>
            <button
              type="button"
              className="icon-btn"
              aria-label="Move down"
              title="Move down"
              ref={moveDown}
              disabled={index === count - 1}
              onClick={(e) => move(1, e.currentTarget)}
            >
              <ArrowDown size={16} />
            </button>
            <button
              type="button"
              className="icon-btn icon-btn-danger"
              aria-label="Delete block"
              title="Delete block"
              onClick={() => (nestedCount > 0 ? setConfirmingDelete(true) : onDelete())}
            >
              <Trash2 size={16} />
            </button>
            {confirmingDelete && (
              <ConfirmDialog
                title={`Delete “${block.id}” and its branches?`}
                confirmLabel={`Delete ${nestedCount + 1} blocks`}
                busy={false}
                error={null}
                onConfirm={() => {
                  setConfirmingDelete(false)
                  onDelete()
                }}
                onClose={() => setConfirmingDelete(false)}
              >
                <p>Its branches hold {nestedCount === 1 ? '1 block' : `${nestedCount} blocks`}, deleted with it. Nothing is stored until you save.</p>
              </ConfirmDialog>
            )}
          </>
        )}
      </header>
      {(duplicateId || cardErrors.length > 0) && (
        <ul className="block-errors" role="alert">
          {duplicateId && <li>Another block already uses the id “{block.id}”.</li>}
          {cardErrors.map((error, i) => (
            <li key={i}>{error.message}</li>
          ))}
        </ul>
      )}
      {!collapsed && (
        <div className="block-body">
          <BlockBody
            block={block}
            errors={mine.fields}
            onChange={(next) => dispatch({ type: 'update_block', index, list, block: next })}
            renderBranch={(branch) =>
              block.kind === 'conditional' && (
                <BlockList
                  {...shared}
                  blocks={block[branch] ?? []}
                  keys={blockKey?.[branch] ?? []}
                  list={[...list, { index, branch }]}
                  depth={depth + 1}
                  addLabel={`Add block to ${branch} of ${block.id}`}
                  emptyText={branch === 'then' ? 'Nothing runs when the expression is true.' : 'Nothing runs otherwise.'}
                />
              )
            }
          />
        </div>
      )}
    </section>
  )
}
