// One block of the editor: kind, editable id, reorder/delete buttons and the kind's inline editor.

import { ArrowDown, ArrowUp, Trash2 } from 'lucide-react'
import type { Block, FieldError } from '../api/types'
import { KindIcon } from '../components/KindIcon'
import { BlockBody } from './BlockEditors'
import { BLOCK_LABELS, type EditorAction } from './draft'

interface BlockCardProps {
  block: Block
  index: number
  count: number
  duplicateId: boolean
  errors: FieldError[]
  dispatch: (action: EditorAction) => void
}

export function BlockCard({ block, index, count, duplicateId, errors, dispatch }: BlockCardProps) {
  const label = BLOCK_LABELS[block.kind] ?? block.kind
  const invalid = errors.length > 0 || duplicateId
  return (
    <section
      className={`card block-card${invalid ? ' block-card-invalid' : ''}`}
      aria-label={`${label} block ${block.id}`}
      data-testid={`block-${block.id}`}
    >
      <header className="block-header">
        <span className="block-index">{index + 1}</span>
        <KindIcon kind={block.kind} />
        <span className="block-kind">{label}</span>
        <input
          className={`input input-id mono${duplicateId ? ' input-invalid' : ''}`}
          aria-label="Block id"
          value={block.id}
          spellCheck={false}
          onChange={(e) => dispatch({ type: 'update_block', index, block: { ...block, id: e.target.value } })}
        />
        <span className="spacer" />
        <button
          type="button"
          className="icon-btn"
          aria-label="Move up"
          title="Move up"
          disabled={index === 0}
          onClick={() => dispatch({ type: 'move_block', index, delta: -1 })}
        >
          <ArrowUp size={16} />
        </button>
        <button
          type="button"
          className="icon-btn"
          aria-label="Move down"
          title="Move down"
          disabled={index === count - 1}
          onClick={() => dispatch({ type: 'move_block', index, delta: 1 })}
        >
          <ArrowDown size={16} />
        </button>
        <button
          type="button"
          className="icon-btn icon-btn-danger"
          aria-label="Delete block"
          title="Delete block"
          onClick={() => dispatch({ type: 'delete_block', index })}
        >
          <Trash2 size={16} />
        </button>
      </header>
      {(duplicateId || errors.length > 0) && (
        <ul className="block-errors" role="alert">
          {duplicateId && <li>Another block already uses the id “{block.id}”.</li>}
          {errors.map((error, i) => (
            <li key={i}>{error.message}</li>
          ))}
        </ul>
      )}
      <div className="block-body">
        <BlockBody block={block} onChange={(next) => dispatch({ type: 'update_block', index, block: next })} />
      </div>
    </section>
  )
}
