import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { useReducer } from 'react'
import { describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import type { Runbook } from '../api/types'
import { editorReducer, initEditor, isDirty } from './draft'
import { RunbookEditor } from './RunbookEditor'

const saved: Runbook = {
  id: 'rb',
  name: 'Restart payments',
  description: '',
  tags: [],
  params: [],
  blocks: [{ id: 'intro', kind: 'instruction', text: '## Check the dashboard', confirm: false }],
  version: 2,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  updated_by: 'alice',
}

function Harness({ saveError = null, onSave = () => {} }: { saveError?: ApiError | null; onSave?: () => void }) {
  const [state, dispatch] = useReducer(editorReducer, saved, initEditor)
  return (
    <RunbookEditor
      state={state}
      dispatch={dispatch}
      dirty={isDirty(state)}
      saving={false}
      saveError={saveError}
      message=""
      onMessageChange={() => {}}
      onSave={onSave}
      onLoadLatest={() => {}}
      onOverwrite={() => {}}
    />
  )
}

function blockOrder(): string[] {
  return screen.getAllByTestId(/^block-/).map((el) => el.getAttribute('data-testid') ?? '')
}

describe('RunbookEditor', () => {
  it('adds a block from the menu, reorders it and marks the draft unsaved', async () => {
    const user = userEvent.setup()
    const onSave = vi.fn()
    render(<Harness onSave={onSave} />)
    expect(screen.getByText('Saved · version 2')).toBeInTheDocument()
    expect(screen.getByRole('button', { name: 'Save' })).toBeDisabled()

    await user.click(screen.getByRole('button', { name: 'Add block' }))
    await user.click(screen.getByRole('menuitem', { name: /Timer/ }))
    expect(blockOrder()).toEqual(['block-intro', 'block-step-2'])
    expect(screen.getByText('Unsaved changes')).toBeInTheDocument()

    const timerCard = screen.getByRole('region', { name: 'Timer block step-2' })
    await user.click(within(timerCard).getByRole('button', { name: 'Move up' }))
    expect(blockOrder()).toEqual(['block-step-2', 'block-intro'])

    await user.click(screen.getByRole('button', { name: 'Save' }))
    expect(onSave).toHaveBeenCalledTimes(1)
  })

  it('renames through the Name field and previews instruction markdown', async () => {
    const user = userEvent.setup()
    render(<Harness />)
    const name = screen.getByLabelText('Name')
    await user.clear(name)
    await user.type(name, 'Failover DB')
    expect(name).toHaveValue('Failover DB')

    const card = screen.getByRole('region', { name: 'Instruction block intro' })
    await user.click(within(card).getByRole('button', { name: 'Preview' }))
    expect(within(card).getByRole('heading', { name: 'Check the dashboard' })).toBeInTheDocument()
  })

  it('shows server validation errors at the top and on the block they concern', () => {
    const error = new ApiError('validation_failed', 'The runbook is invalid.', 422, [
      { path: 'blocks[0].id', code: 'invalid_block_id', message: 'a block id is 1 to 64 letters' },
    ])
    render(<Harness saveError={error} />)
    const banner = screen.getAllByRole('alert')[0]
    expect(banner).toHaveTextContent('The runbook was not saved')
    expect(banner).toHaveTextContent('blocks[0].id')
    const card = screen.getByRole('region', { name: 'Instruction block intro' })
    expect(within(card).getByRole('alert')).toHaveTextContent('a block id is 1 to 64 letters')
  })

  it('explains a version conflict instead of a generic error', () => {
    render(<Harness saveError={new ApiError('version_conflict', 'Version 3 is current.', 409)} />)
    expect(screen.getByRole('alert')).toHaveTextContent('someone else saved a newer version')
    expect(screen.getByRole('button', { name: 'Save my version over it' })).toBeInTheDocument()
  })
})
