import { EditorView } from '@codemirror/view'
import { fireEvent, render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { useEffect, useReducer } from 'react'
import { describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import type { Role, Runbook } from '../api/types'
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

const branchy: Runbook = {
  ...saved,
  blocks: [
    { id: 'check', kind: 'command', script: 'curl -fsS localhost/health', shell: 'sh', host: 'local', timeout_secs: 30, workdir: null, env: {}, expect_exit_codes: [0], on_failure: 'stop', secrets: {} },
    {
      id: 'branch',
      kind: 'conditional',
      expr: 'steps.check.exit_code == 0',
      then: [{ id: 'wait', kind: 'timer', seconds: 30 }],
      else: [],
    },
  ],
}

/** One block of each kind, a parameter, env and headers: every control the editor has. */
const everything: Runbook = {
  ...branchy,
  params: [{ name: 'service', type: 'string', default: 'payments', required: true }],
  blocks: [
    saved.blocks[0],
    { ...branchy.blocks[0], env: { REGION: 'eu' } } as Runbook['blocks'][number],
    {
      id: 'ping',
      kind: 'api_call',
      method: 'POST',
      url: 'https://example.com/ping',
      headers: { Accept: 'application/json' },
      body: '{}',
      credential: null,
      timeout_secs: null,
      expect_status: [200],
      on_failure: 'stop',
    },
    branchy.blocks[1],
  ],
}

let lastState: ReturnType<typeof initEditor> | null = null

function Harness({
  saveError = null,
  onSave = () => {},
  runbook = saved,
  saving = false,
  readOnlyRole = null,
}: {
  saveError?: ApiError | null
  onSave?: () => void
  runbook?: Runbook
  saving?: boolean
  readOnlyRole?: Role | null
}) {
  const [state, dispatch] = useReducer(editorReducer, runbook, initEditor)
  useEffect(() => {
    lastState = state
  }, [state])
  return (
    <RunbookEditor
      state={state}
      dispatch={dispatch}
      dirty={isDirty(state)}
      saving={saving}
      readOnlyRole={readOnlyRole}
      saveError={saveError}
      message=""
      onMessageChange={() => {}}
      onSave={onSave}
      onLoadLatest={() => {}}
      onOverwrite={() => {}}
      onDiscard={() => dispatch({ type: 'reset', runbook: state.base })}
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

  it('saves with Enter in the change note only when there is something to save and no save is under way', async () => {
    const user = userEvent.setup()
    const onSave = vi.fn()
    const { rerender } = render(<Harness onSave={onSave} />)
    const note = screen.getByLabelText('Change note')
    await user.type(note, '{Enter}')
    expect(onSave).not.toHaveBeenCalled()

    await user.type(screen.getByLabelText('Name'), ' now')
    rerender(<Harness onSave={onSave} saving />)
    expect(screen.getByRole('button', { name: 'Saving…' })).toBeDisabled()
    await user.type(note, '{Enter}')
    expect(onSave).not.toHaveBeenCalled()

    rerender(<Harness onSave={onSave} />)
    await user.type(note, '{Enter}')
    expect(onSave).toHaveBeenCalledTimes(1)
  })

  it('takes a decimal number parameter default as typed and leaves an empty default out', async () => {
    const user = userEvent.setup()
    render(<Harness />)
    await user.click(screen.getByRole('button', { name: 'Add parameter' }))
    expect(lastState?.draft.params[0]).toEqual({ name: 'param1', type: 'string', default: null, required: false, description: '' })

    await user.selectOptions(screen.getByLabelText('Parameter 1 type'), 'number')
    expect(lastState?.draft.params[0].default).toBeNull()
    const defaultField = screen.getByLabelText('Parameter 1 default')
    await user.type(defaultField, '0.5')
    expect(defaultField).toHaveValue('0.5')
    expect(lastState?.draft.params[0].default).toBe(0.5)

    await user.clear(defaultField)
    expect(lastState?.draft.params[0].default).toBeNull()
    await user.type(defaultField, '-1.')
    expect(defaultField).toHaveValue('-1.')
    expect(defaultField).not.toHaveAttribute('aria-invalid')
    expect(lastState?.draft.params[0].default).toBe(-1)

    await user.clear(defaultField)
    await user.type(defaultField, 'ten')
    expect(defaultField).toHaveAttribute('aria-invalid', 'true')
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

  it('edits a conditional\'s branches inline: add, change and reorder nested blocks', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={branchy} />)
    const thenBranch = screen.getByRole('group', { name: 'then branch of branch' })
    const wait = within(thenBranch).getByRole('region', { name: 'Timer block wait' })
    const seconds = within(wait).getByLabelText('Seconds')
    await user.clear(seconds)
    await user.type(seconds, '45')

    await user.click(within(thenBranch).getByRole('button', { name: 'Add block to then of branch' }))
    await user.click(screen.getByRole('menuitem', { name: /Command/ }))
    const added = within(thenBranch).getByRole('region', { name: 'Command block step-4' })
    await user.click(within(added).getByRole('button', { name: 'Move up' }))

    const elseBranch = screen.getByRole('group', { name: 'else branch of branch' })
    expect(within(elseBranch).getByText('Nothing runs otherwise.')).toBeInTheDocument()
    await user.click(within(elseBranch).getByRole('button', { name: 'Add block to else of branch' }))
    await user.click(screen.getByRole('menuitem', { name: /Instruction/ }))

    const conditional = lastState?.draft.blocks[1]
    expect(conditional?.kind === 'conditional' && conditional.then.map((b) => b.id)).toEqual(['step-4', 'wait'])
    expect(conditional?.kind === 'conditional' && conditional.then[1]).toEqual({ id: 'wait', kind: 'timer', seconds: 45 })
    expect(conditional?.kind === 'conditional' && conditional.else.map((b) => b.kind)).toEqual(['instruction'])
    expect(screen.getByText('Unsaved changes')).toBeInTheDocument()
  })

  it('reorders blocks by dragging a card onto another in the same list only', () => {
    render(<Harness runbook={branchy} />)
    const dataTransfer = { setData: () => {}, effectAllowed: '' }
    const check = screen.getByTestId('block-check')
    const branch = screen.getByTestId('block-branch')
    fireEvent.mouseDown(within(branch).getAllByTitle('Drag to reorder')[0])
    fireEvent.dragStart(branch, { dataTransfer })
    // A card in another list (the then-branch) is no drop target.
    fireEvent.dragOver(screen.getByTestId('block-wait'), { dataTransfer })
    fireEvent.drop(screen.getByTestId('block-wait'), { dataTransfer })
    expect(blockOrder().filter((id) => id !== 'block-wait')).toEqual(['block-check', 'block-branch'])
    fireEvent.dragOver(check, { dataTransfer })
    fireEvent.drop(check, { dataTransfer })
    expect(lastState?.draft.blocks.map((b) => b.id)).toEqual(['branch', 'check'])
  })

  it('edits a command\'s environment and secrets as name/value rows', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={branchy} />)
    const card = screen.getByRole('region', { name: 'Command block check' })
    const secrets = within(card).getByRole('group', { name: 'Secrets' })
    await user.click(within(secrets).getByRole('button', { name: 'Add secret' }))
    await user.type(within(secrets).getByLabelText('Secret 1 name'), 'TOKEN')
    await user.type(within(secrets).getByLabelText('Secret 1 value'), 'payments-token')
    const env = within(card).getByRole('group', { name: 'Environment' })
    await user.click(within(env).getByRole('button', { name: 'Add variable' }))
    await user.type(within(env).getByLabelText('Variable 1 name'), '1BAD')
    expect(within(env).getByLabelText('Variable 1 name')).toHaveAttribute('aria-invalid', 'true')
    const check = lastState?.draft.blocks[0]
    expect(check?.kind === 'command' && check.secrets).toEqual({ TOKEN: 'payments-token' })
    expect(within(card).getByText(/RUNBOOK_OUTPUT/)).toBeInTheDocument()
  })

  it('sets a command\'s stop grace period, 0 included, and leaves it to the default when cleared', async () => {
    const user = userEvent.setup()
    const error = new ApiError('validation_failed', 'The runbook is invalid.', 422, [
      { path: 'blocks[0].stop_grace_secs', code: 'invalid_stop_grace', message: 'a stop grace period is from 0 to 600 seconds' },
    ])
    render(<Harness runbook={branchy} saveError={error} />)
    const card = screen.getByRole('region', { name: 'Command block check' })
    const grace = within(card).getByLabelText('Stop grace (seconds)')
    expect(grace).toHaveAttribute('placeholder', 'default')
    expect(grace.closest('.field')).toHaveTextContent('a stop grace period is from 0 to 600 seconds')
    await user.type(grace, '0')
    const check = () => lastState?.draft.blocks[0]
    expect(check()).toMatchObject({ stop_grace_secs: 0 })
    expect(screen.getByText('Unsaved changes')).toBeInTheDocument()
    await user.type(grace, '90')
    expect(check()).toMatchObject({ stop_grace_secs: 90 })
    // Cleared, the block is as the server stores it without one: nothing is left to save.
    await user.clear(grace)
    expect(check()).not.toHaveProperty('stop_grace_secs')
    expect(screen.queryByText('Unsaved changes')).toBeNull()
  })

  it('shows a server error on the nested field it names', () => {
    const error = new ApiError('validation_failed', 'The runbook is invalid.', 422, [
      { path: 'blocks[1].expr', code: 'invalid_expression', message: '1:22: expected an operand' },
      { path: 'blocks[1].then[0].seconds', code: 'out_of_range', message: 'a timer waits 1 s to 24 h' },
    ])
    render(<Harness runbook={branchy} saveError={error} />)
    const conditional = screen.getByRole('region', { name: 'Conditional block branch' })
    const expr = within(conditional).getByLabelText('Expression')
    expect(expr.closest('.field')).toHaveTextContent('1:22: expected an operand')
    const wait = within(conditional).getByRole('region', { name: 'Timer block wait' })
    expect(within(wait).getByRole('alert')).toHaveTextContent('a timer waits 1 s to 24 h')
    expect(within(screen.getByRole('region', { name: 'Command block check' })).queryByRole('alert')).toBeNull()
  })

  it('shows a template error on the script and hides a server error once the field is edited', async () => {
    const user = userEvent.setup()
    const error = new ApiError('validation_failed', 'The runbook is invalid.', 422, [
      { path: 'blocks[0].script', code: 'invalid_template', message: '1:20: unclosed tag' },
      { path: 'blocks[1].expr', code: 'invalid_expression', message: '1:5: the server says no' },
    ])
    render(<Harness runbook={branchy} saveError={error} />)
    const command = screen.getByRole('region', { name: 'Command block check' })
    expect(within(command).getByRole('alert')).toHaveTextContent('1:20: unclosed tag')

    const conditional = screen.getByRole('region', { name: 'Conditional block branch' })
    const expr = within(conditional).getByLabelText('Expression')
    expect(expr.closest('.field')).toHaveTextContent('1:5: the server says no')
    await user.clear(expr)
    await user.type(expr, 'steps.check.exit_code ==')
    // The server's error was about the old text; the local check speaks for the new one.
    expect(expr.closest('.field')).not.toHaveTextContent('the server says no')
    expect(expr.closest('.field')).toHaveTextContent(/1:25: .*end of expression/)
    expect(expr).toHaveAttribute('aria-invalid', 'true')
  })

  it('keeps each card\'s collapsed state and unsaved rows with its block when blocks move or are deleted', async () => {
    const user = userEvent.setup()
    const restart = { ...branchy.blocks[0], id: 'restart', script: 'systemctl restart payments' } as const
    render(<Harness runbook={{ ...branchy, blocks: [branchy.blocks[0], restart, branchy.blocks[1]] }} />)
    const check = () => screen.getByRole('region', { name: 'Command block check' })
    const restartCard = () => screen.getByRole('region', { name: 'Command block restart' })
    // A half-typed environment row (no name yet) lives only in the card.
    const env = within(restartCard()).getByRole('group', { name: 'Environment' })
    await user.click(within(env).getByRole('button', { name: 'Add variable' }))
    await user.click(within(check()).getByRole('button', { name: 'Collapse block' }))

    await user.click(within(check()).getByRole('button', { name: 'Move down' }))
    expect(blockOrder().slice(0, 2)).toEqual(['block-restart', 'block-check'])
    expect(within(check()).getByRole('button', { name: 'Expand block' })).toBeInTheDocument()
    expect(within(check()).getByText('curl -fsS localhost/health')).toBeInTheDocument()
    expect(within(restartCard()).getByRole('button', { name: 'Collapse block' })).toBeInTheDocument()
    expect(within(restartCard()).getByLabelText('Variable 1 name')).toHaveValue('')

    await user.click(within(restartCard()).getByRole('button', { name: 'Delete block' }))
    expect(within(check()).getByRole('button', { name: 'Expand block' })).toBeInTheDocument()

    // The same inside a conditional's branch.
    const thenBranch = screen.getByRole('group', { name: 'then branch of branch' })
    await user.click(within(thenBranch).getByRole('button', { name: 'Add block to then of branch' }))
    await user.click(screen.getByRole('menuitem', { name: /Timer/ }))
    const wait = within(thenBranch).getByRole('region', { name: 'Timer block wait' })
    await user.click(within(wait).getByRole('button', { name: 'Collapse block' }))
    await user.click(within(wait).getByRole('button', { name: 'Move down' }))
    const moved = within(thenBranch).getByRole('region', { name: 'Timer block wait' })
    expect(within(moved).getByRole('button', { name: 'Expand block' })).toBeInTheDocument()
    const added = within(thenBranch).getAllByRole('region').find((card) => card !== moved)
    expect(within(added!).getByRole('button', { name: 'Collapse block' })).toBeInTheDocument()
  })

  it('is read only for a role below editor: nothing changes the draft, collapsing and previews still work', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={everything} readOnlyRole="viewer" />)
    const before = lastState?.draft
    expect(screen.getByTestId('dirty-indicator')).toHaveTextContent('Read only · version 2')
    expect(screen.queryByRole('button', { name: 'Save' })).toBeNull()
    expect(screen.queryByLabelText('Change note')).toBeNull()

    // Text stays focusable and selectable, but typing goes nowhere.
    const name = screen.getByLabelText('Name')
    await user.type(name, ' now')
    expect(name).toHaveValue('Restart payments')
    expect(name).toHaveFocus()
    for (const field of [name, screen.getByLabelText('Tags'), screen.getByLabelText('Parameter 1 name'), screen.getByLabelText('Expression')]) {
      expect(field).toHaveAttribute('readonly')
    }
    await user.type(screen.getByLabelText('Parameter 1 default'), 'x')
    await user.type(screen.getByLabelText('Variable 1 value'), 'x')
    await user.type(screen.getByLabelText('Seconds'), '5')
    expect(screen.getByLabelText('Parameter 1 type')).toBeDisabled()
    expect(screen.getByLabelText('Parameter 1 required')).toBeDisabled()
    expect(screen.getByLabelText('Method')).toBeDisabled()
    expect(screen.getByLabelText('Shell')).toBeDisabled()
    expect(screen.getByRole('checkbox', { name: /acknowledge/ })).toBeDisabled()

    // No control that adds, removes or moves anything.
    for (const label of [/^Add /, /^Remove /, 'Move up', 'Move down', 'Delete block']) {
      expect(screen.queryAllByRole('button', { name: label })).toEqual([])
    }
    expect(screen.queryAllByTitle('Drag to reorder')).toEqual([])
    const dataTransfer = { setData: () => {}, effectAllowed: '' }
    const conditional = screen.getByTestId('block-branch')
    expect(conditional).not.toHaveAttribute('draggable', 'true')
    fireEvent.dragStart(conditional, { dataTransfer })
    fireEvent.dragOver(screen.getByTestId('block-intro'), { dataTransfer })
    fireEvent.drop(screen.getByTestId('block-intro'), { dataTransfer })
    expect(blockOrder()).toEqual(['block-intro', 'block-check', 'block-ping', 'block-branch', 'block-wait'])

    // The script editor refuses edits through CodeMirror's read-only state, not by looking so.
    const script = document.querySelector<HTMLElement>('.cm-content')!
    expect(script).toHaveAttribute('aria-readonly', 'true')
    expect(EditorView.findFromDOM(script)?.state.readOnly).toBe(true)

    // Markdown shows rendered; its source can still be read.
    const intro = screen.getByRole('region', { name: 'Instruction block intro' })
    expect(within(intro).getByRole('heading', { name: 'Check the dashboard' })).toBeInTheDocument()
    await user.click(within(intro).getByRole('button', { name: 'Source' }))
    const text = within(intro).getByRole('textbox', { name: 'Instructions' })
    expect(text).toHaveValue('## Check the dashboard')
    expect(text).toHaveAttribute('readonly')

    const check = screen.getByRole('region', { name: 'Command block check' })
    await user.click(within(check).getByRole('button', { name: 'Collapse block' }))
    expect(within(check).getByText('curl -fsS localhost/health')).toBeInTheDocument()
    await user.click(within(check).getByRole('button', { name: 'Expand block' }))
    expect(within(check).getByRole('group', { name: 'Environment' })).toBeInTheDocument()

    expect(lastState?.draft).toBe(before)
  })

  it('leaves everything editable for an editor', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={everything} />)
    expect(screen.queryByTestId('read-only-notice')).toBeNull()
    expect(screen.getByLabelText('Name')).not.toHaveAttribute('readonly')
    expect(screen.getByLabelText('Method')).toBeEnabled()
    expect(screen.getAllByRole('button', { name: 'Delete block' })).toHaveLength(5)
    expect(screen.getAllByTitle('Drag to reorder')).toHaveLength(5)
    expect(screen.getByRole('button', { name: 'Add parameter' })).toBeInTheDocument()
    const script = document.querySelector<HTMLElement>('.cm-content')!
    expect(script).not.toHaveAttribute('aria-readonly')
    expect(EditorView.findFromDOM(script)?.state.readOnly).toBe(false)
    // Markdown opens as source to edit.
    const intro = screen.getByRole('region', { name: 'Instruction block intro' })
    await user.type(within(intro).getByRole('textbox', { name: 'Instructions' }), '!')
    expect(lastState?.draft.blocks[0]).toMatchObject({ text: '## Check the dashboard!' })
    await user.type(screen.getByLabelText('Variable 1 value'), 'x')
    expect(lastState?.draft.blocks[1]).toMatchObject({ env: { REGION: 'eux' } })
    expect(screen.getByText('Unsaved changes')).toBeInTheDocument()
  })

  it('keeps a server error with the block it is about when blocks before it are deleted, moved or added', async () => {
    const user = userEvent.setup()
    const error = new ApiError('validation_failed', 'The runbook is invalid.', 422, [
      { path: 'blocks[1].timeout_secs', code: 'invalid_timeout', message: 'a timeout is from 1 to 86400 seconds' },
      { path: 'blocks[2].then[0].seconds', code: 'invalid_duration', message: 'a timer waits from 1 to 604800 seconds' },
    ])
    render(<Harness runbook={{ ...branchy, blocks: [saved.blocks[0], ...branchy.blocks] }} saveError={error} />)
    const check = () => screen.getByRole('region', { name: 'Command block check' })
    const timeoutError = (card: HTMLElement) => within(card).getByLabelText('Timeout (seconds)').closest('.field')
    expect(timeoutError(check())).toHaveTextContent('a timeout is from 1 to 86400 seconds')

    await user.click(within(screen.getByRole('region', { name: 'Instruction block intro' })).getByRole('button', { name: 'Delete block' }))
    expect(timeoutError(check())).toHaveTextContent('a timeout is from 1 to 86400 seconds')
    const conditional = screen.getByRole('region', { name: 'Conditional block branch' })
    expect(conditional.querySelector(':scope > .block-errors')).toBeNull()
    expect(within(screen.getByRole('region', { name: 'Timer block wait' })).getByRole('alert')).toHaveTextContent('a timer waits from 1')

    await user.click(within(check()).getByRole('button', { name: 'Move down' }))
    expect(timeoutError(check())).toHaveTextContent('a timeout is from 1 to 86400 seconds')
    // A block added since is not what the errors were about.
    await user.click(screen.getByRole('button', { name: 'Add block' }))
    await user.click(screen.getByRole('menuitem', { name: /Command/ }))
    const added = screen.getByRole('region', { name: 'Command block step-4' })
    expect(within(added).queryByText(/a timeout is from/)).toBeNull()
  })

  it('shows the next refused save\'s error next to the field again, even with the same message', async () => {
    const user = userEvent.setup()
    const refused = () =>
      new ApiError('validation_failed', 'The runbook is invalid.', 422, [
        { path: 'blocks[2].url', code: 'invalid_url', message: 'the URL must be an absolute http:// or https:// URL' },
      ])
    const { rerender } = render(<Harness runbook={everything} saveError={refused()} />)
    const url = within(screen.getByRole('region', { name: 'API call block ping' })).getByLabelText('URL')
    expect(url.closest('.field')).toHaveTextContent('must be an absolute')
    await user.clear(url)
    await user.type(url, 'example.com/ping')
    expect(url.closest('.field')).not.toHaveTextContent('must be an absolute')

    rerender(<Harness runbook={everything} saveError={refused()} />)
    expect(url.closest('.field')).toHaveTextContent('must be an absolute')
  })

  it('shows server errors about parameters on the parameter they name', () => {
    const error = new ApiError('validation_failed', 'The runbook is invalid.', 422, [
      { path: 'params[0].default', code: 'invalid_default', message: "the default value does not match the parameter's type" },
      { path: 'params[1].name', code: 'duplicate_param', message: 'parameter `service` is declared twice' },
    ])
    const params = [
      { name: 'service', type: 'number' as const, default: 'payments', required: false },
      { name: 'service', type: 'string' as const, default: null, required: false },
    ]
    render(<Harness runbook={{ ...saved, params }} saveError={error} />)
    const secondName = screen.getByLabelText('Parameter 2 name')
    expect(secondName).toHaveAttribute('aria-invalid', 'true')
    expect(secondName.closest('td')).toHaveTextContent('parameter `service` is declared twice')
    expect(screen.getByLabelText('Parameter 1 name')).not.toHaveAttribute('aria-invalid')
    const firstDefault = screen.getByLabelText('Parameter 1 default')
    expect(firstDefault.closest('td')).toHaveTextContent("the default value does not match the parameter's type")
    expect(screen.getByLabelText('Parameter 2 default').closest('td')).not.toHaveTextContent('does not match')
  })

  it('starts a parameter changed from boolean to string or number without a default', async () => {
    const user = userEvent.setup()
    render(<Harness />)
    await user.click(screen.getByRole('button', { name: 'Add parameter' }))
    await user.selectOptions(screen.getByLabelText('Parameter 1 type'), 'boolean')
    await user.selectOptions(screen.getByLabelText('Parameter 1 default'), 'true')
    expect(lastState?.draft.params[0].default).toBe(true)
    await user.selectOptions(screen.getByLabelText('Parameter 1 type'), 'string')
    expect(lastState?.draft.params[0].default).toBeNull()
    expect(screen.getByLabelText('Parameter 1 default')).toHaveValue('')
  })

  it('keeps the keyboard in place: the add menu walks with arrows, a new or the next card takes the focus', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={branchy} />)
    const add = screen.getByRole('button', { name: 'Add block' })
    add.focus()
    await user.keyboard('{Enter}')
    expect(screen.getByRole('menuitem', { name: 'Instruction' })).toHaveFocus()
    await user.keyboard('{ArrowDown}')
    expect(screen.getByRole('menuitem', { name: 'Command' })).toHaveFocus()
    await user.keyboard('{Escape}')
    expect(screen.queryByRole('menu')).toBeNull()
    expect(add).toHaveFocus()

    await user.keyboard('{Enter}')
    await user.keyboard('{ArrowUp}')
    expect(screen.getByRole('menuitem', { name: 'Timer' })).toHaveFocus()
    await user.keyboard('{Enter}')
    expect(screen.getByRole('region', { name: 'Timer block step-4' })).toHaveFocus()

    await user.click(within(screen.getByRole('region', { name: 'Command block check' })).getByRole('button', { name: 'Delete block' }))
    expect(screen.getByRole('region', { name: 'Conditional block branch' })).toHaveFocus()
    // The last block of a branch gone, its add button is next.
    const thenBranch = screen.getByRole('group', { name: 'then branch of branch' })
    await user.click(within(thenBranch).getByRole('button', { name: 'Delete block' }))
    expect(within(thenBranch).getByRole('button', { name: 'Add block to then of branch' })).toHaveFocus()
  })

  it('keeps the focus on the move button of a moved card, which a browser takes away when it moves the element', async () => {
    const user = userEvent.setup()
    // Browsers drop the focus of an element moved in the document; jsdom keeps it.
    const blurMoved = (node: Node) => {
      if (node.isConnected && node.contains(document.activeElement)) (document.activeElement as HTMLElement).blur()
    }
    const { insertBefore, appendChild } = Node.prototype
    const spies = [
      vi.spyOn(Node.prototype, 'insertBefore').mockImplementation(function <T extends Node>(this: Node, node: T, child: Node | null) {
        blurMoved(node)
        return insertBefore.call(this, node, child) as T
      }),
      vi.spyOn(Node.prototype, 'appendChild').mockImplementation(function <T extends Node>(this: Node, node: T) {
        blurMoved(node)
        return appendChild.call(this, node) as T
      }),
    ]
    try {
      render(<Harness runbook={{ ...branchy, blocks: [saved.blocks[0], ...branchy.blocks] }} />)
      const intro = () => screen.getByRole('region', { name: 'Instruction block intro' })
      await user.click(within(intro()).getByRole('button', { name: 'Move down' }))
      expect(blockOrder().filter((id) => id !== 'block-wait')).toEqual(['block-check', 'block-intro', 'block-branch'])
      expect(within(intro()).getByRole('button', { name: 'Move down' })).toHaveFocus()
      await user.keyboard('{Enter}')
      expect(blockOrder().filter((id) => id !== 'block-wait')).toEqual(['block-check', 'block-branch', 'block-intro'])
      // At the end Move down is disabled: the focus goes to Move up.
      expect(within(intro()).getByRole('button', { name: 'Move up' })).toHaveFocus()
    } finally {
      spies.forEach((spy) => spy.mockRestore())
    }
  })

  it('explains a version conflict instead of a generic error', () => {
    render(<Harness saveError={new ApiError('version_conflict', 'Version 3 is current.', 409)} />)
    expect(screen.getByRole('alert')).toHaveTextContent('someone else saved a newer version')
    expect(screen.getByRole('button', { name: 'Save my version over it' })).toBeInTheDocument()
  })

  it('saves an expected exit code list as the field shows it, not the last list that was whole numbers', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={branchy} />)
    const codes = screen.getByLabelText('Expected exit codes')
    const codesInDraft = () => (lastState?.draft.blocks[0] as { expect_exit_codes?: number[] } | undefined)?.expect_exit_codes
    await user.clear(codes)
    expect(codes).toHaveValue('')
    expect(codes).toHaveAttribute('aria-invalid', 'true')
    expect(codesInDraft()).toEqual([])
    await user.type(codes, '0, 1.5')
    expect(codes).toHaveValue('0, 1.5')
    expect(codesInDraft()).toEqual([0, 1.5])
    await user.clear(codes)
    await user.type(codes, '0 2')
    expect(codes).toHaveAttribute('aria-invalid', 'false')
    expect(codesInDraft()).toEqual([0, 2])
  })

  it('asks before deleting a conditional whose branches hold blocks, and deletes a plain block at once', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={branchy} />)
    const branch = screen.getByTestId('block-branch')
    await user.click(within(branch).getAllByRole('button', { name: 'Delete block' })[0])
    const dialog = screen.getByRole('dialog', { name: 'Delete “branch” and its branches?' })
    expect(dialog).toHaveTextContent('Its branches hold 1 block')
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(blockOrder()).toContain('block-branch')
    await user.click(within(screen.getByTestId('block-branch')).getAllByRole('button', { name: 'Delete block' })[0])
    await user.click(screen.getByRole('button', { name: 'Delete 2 blocks' }))
    expect(blockOrder()).not.toContain('block-branch')
    expect(blockOrder()).not.toContain('block-wait')
    // A command has nothing nested: no question.
    await user.click(within(screen.getByTestId('block-check')).getByRole('button', { name: 'Delete block' }))
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(screen.queryAllByTestId(/^block-/)).toHaveLength(0)
  })

  it('discards unsaved changes after asking, showing the saved version again', async () => {
    const user = userEvent.setup()
    render(<Harness runbook={branchy} />)
    expect(screen.queryByRole('button', { name: 'Discard' })).not.toBeInTheDocument()
    await user.click(within(screen.getByTestId('block-check')).getByRole('button', { name: 'Delete block' }))
    expect(screen.getByTestId('dirty-indicator')).toHaveTextContent('Unsaved changes')
    await user.click(screen.getByRole('button', { name: 'Discard' }))
    await user.click(screen.getByRole('button', { name: 'Cancel' }))
    expect(blockOrder()).not.toContain('block-check')
    await user.click(screen.getByRole('button', { name: 'Discard' }))
    await user.click(screen.getByRole('button', { name: 'Discard changes' }))
    expect(blockOrder()).toContain('block-check')
    expect(screen.getByTestId('dirty-indicator')).toHaveTextContent('Saved · version 2')
    expect(screen.queryByRole('button', { name: 'Discard' })).not.toBeInTheDocument()
  })
})
