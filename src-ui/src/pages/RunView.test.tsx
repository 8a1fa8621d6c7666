import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { act, cleanup, render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { createMemoryRouter, RouterProvider } from 'react-router'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import type { Execution, ExecutionEvent, Me, Runbook } from '../api/types'

const call = vi.fn()
const exportExecution = vi.fn()
const saveConsole = vi.fn()
vi.mock('../api/transport', () => ({
  call: (...args: unknown[]) => call(...args),
  exportExecution: (...args: unknown[]) => exportExecution(...args),
  saveConsole: (...args: unknown[]) => saveConsole(...args),
  isTauri: () => false,
}))

/** The browser's Notification, with notifications allowed, recording what the view shows. */
const notifications: { title: string; options?: NotificationOptions }[] = []
class FakeNotification {
  static permission: NotificationPermission = 'granted'
  constructor(title: string, options?: NotificationOptions) {
    notifications.push({ title, options })
  }
}
vi.stubGlobal('Notification', FakeNotification)

// The console (xterm) needs a real layout; here it only hands events to the view.
let emit: (event: ExecutionEvent) => void = () => {}
vi.mock('../components/Console', () => ({
  Console: ({ onEvent }: { onEvent: (event: ExecutionEvent) => void }) => {
    emit = onEvent
    return <section aria-label="Console" />
  },
}))

import { RunView } from './RunView'

const runbook: Runbook = {
  id: 'rb',
  name: 'Restart payments',
  description: '',
  tags: [],
  params: [],
  blocks: [
    { id: 'health', kind: 'api_call', method: 'GET', url: 'https://x/health', headers: {}, body: null, credential: null, timeout_secs: 5, expect_status: [200], on_failure: 'stop' },
    {
      id: 'branch',
      kind: 'conditional',
      expr: 'steps.health.status == 200',
      then: [{ id: 'restart', kind: 'command', script: 'systemctl restart payments', shell: 'sh', host: 'local', timeout_secs: 30, stop_grace_secs: 120, workdir: null, env: {}, expect_exit_codes: [0], on_failure: 'stop', secrets: {} }],
      else: [{ id: 'page', kind: 'instruction', text: 'Page the owner', confirm: true }],
    },
    { id: 'wait', kind: 'timer', seconds: 30 },
  ],
  version: 2,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  updated_by: 'alice',
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()

function execution(patch: Partial<Execution>): Execution {
  return {
    id: 'run-1',
    runbook_id: 'rb',
    runbook_version: 2,
    runbook_name: 'Restart payments',
    status: 'running',
    params: {},
    started_by: 'alice',
    created_at: at(0),
    started_at: at(0),
    finished_at: null,
    steps: [
      {
        block_id: 'health',
        status: 'succeeded',
        exit_code: null,
        http_status: 200,
        started_at: at(0),
        finished_at: at(1),
        output_bytes: 10,
        response: { status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}', body_bytes: 11, truncated: false },
      },
      { block_id: 'branch', status: 'succeeded', exit_code: null, http_status: null, started_at: at(1), finished_at: at(1), output_bytes: 0, branch: 'then' },
      {
        block_id: 'restart',
        status: 'succeeded',
        exit_code: 0,
        http_status: null,
        started_at: at(1),
        finished_at: at(3),
        output_bytes: 40,
        outputs: { PID: '4242' },
      },
      { block_id: 'page', status: 'skipped', exit_code: null, http_status: null, started_at: null, finished_at: null, output_bytes: 0 },
      { block_id: 'wait', status: 'running', exit_code: null, http_status: null, started_at: new Date().toISOString(), finished_at: null, output_bytes: 0 },
    ],
    ...patch,
  }
}

let current: Execution
/** True while the server cannot be reached. */
let offline = false
/** When set, `control_execution` is refused with it. */
let controlRefusal: ApiError | null = null
/** Who `whoami` says is signed in; unknown (an error) when null. */
let me: Me | null = null
/** The runbook's history, as `list_executions` returns it. */
let history: Execution[] = []
/** When set, `get_version` answers once it resolves. */
let versionHeld: Promise<void> | null = null

function renderRun(initial: Execution) {
  current = initial
  call.mockImplementation(async (command: string, args: { id: string; action?: string }) => {
    switch (command) {
      case 'get_execution':
        if (offline) throw new ApiError('network_error', 'Could not reach the server (Failed to fetch).')
        return args.id === current.id ? current : execution({ id: args.id, status: 'queued', retry_of: 'run-1', retry_from: 'restart' })
      case 'get_version':
        await versionHeld
        return runbook
      case 'whoami':
        if (!me) throw new Error('unexpected whoami')
        return me
      case 'control_execution':
        if (controlRefusal) throw controlRefusal
        return current
      case 'retry_execution':
        return { ...current, id: 'run-2', status: 'queued' }
      case 'list_executions':
        return { items: history, total: history.length }
      default:
        throw new Error(`unexpected ${command}`)
    }
  })
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  const router = createMemoryRouter([{ path: '/executions/:id', element: <RunView /> }], { initialEntries: [`/executions/${initial.id}`] })
  render(
    <QueryClientProvider client={client}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  )
  return router
}

const button = (name: string) => screen.getByRole('button', { name })
const calls = (command: string) => call.mock.calls.filter(([c]) => c === command)

beforeEach(() => {
  call.mockReset()
  versionHeld = null
  exportExecution.mockReset()
  saveConsole.mockReset()
  history = []
  offline = false
  controlRefusal = null
  me = null
})

describe('RunView', () => {
  it('exports the run as a report and says where the desktop saved it', async () => {
    const user = userEvent.setup()
    let saved: (report: unknown) => void = () => {}
    exportExecution.mockReturnValueOnce(new Promise((resolve) => (saved = resolve)))
    renderRun(execution({ status: 'failed', finished_at: at(5) }))
    await user.click(await screen.findByRole('button', { name: 'Export report' }))
    expect(exportExecution).toHaveBeenCalledWith('run-1')
    expect(button('Exporting…')).toBeDisabled()
    await act(async () => saved({ fileName: 'restart-payments-run1.md', path: '/home/alice/Downloads/restart-payments-run1.md', truncated: true }))
    const notice = await screen.findByTestId('export-notice')
    expect(notice).toHaveTextContent('Report saved to /home/alice/Downloads/restart-payments-run1.md')
    expect(notice).toHaveTextContent('cut at 16 MiB; Save console saves all of it')
    expect(button('Export report')).toBeEnabled()
  })

  it('says a browser downloaded the report, and shows why an export failed', async () => {
    const user = userEvent.setup()
    exportExecution.mockResolvedValueOnce({ fileName: 'restart-payments-run1.md', path: null, truncated: false })
    renderRun(execution({ status: 'succeeded', finished_at: at(5) }))
    await user.click(await screen.findByRole('button', { name: 'Export report' }))
    const notice = await screen.findByTestId('export-notice')
    expect(notice).toHaveTextContent('Report downloaded as restart-payments-run1.md')
    expect(notice).not.toHaveTextContent('16 MiB')

    exportExecution.mockRejectedValueOnce(new ApiError('not_found', 'execution not found', 404))
    await user.click(button('Export report'))
    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('The report could not be exported')
    expect(screen.queryByTestId('export-notice')).toBeNull()
  })

  it('saves the console of a live run and says where the desktop saved it, and how big', async () => {
    const user = userEvent.setup()
    let saved: (log: unknown) => void = () => {}
    saveConsole.mockReturnValueOnce(new Promise((resolve) => (saved = resolve)))
    renderRun(execution({}))
    await user.click(await screen.findByRole('button', { name: 'Save console' }))
    expect(saveConsole).toHaveBeenCalledWith('run-1')
    expect(button('Saving…')).toBeDisabled()
    expect(screen.queryByTestId('console-notice')).toBeNull()
    await act(async () => saved({ fileName: 'restart-payments-run1.log', path: '/home/alice/Downloads/restart-payments-run1.log', bytes: 3 * 1024 * 1024 }))
    const notice = await screen.findByTestId('console-notice')
    expect(notice).toHaveTextContent('Console saved to /home/alice/Downloads/restart-payments-run1.log (3.0 MB)')
    expect(button('Save console')).toBeEnabled()
    // Saving the console is not exporting the report.
    expect(exportExecution).not.toHaveBeenCalled()
    expect(screen.queryByTestId('export-notice')).toBeNull()
  })

  it('says a browser downloaded the console, and shows why saving it failed', async () => {
    const user = userEvent.setup()
    saveConsole.mockResolvedValueOnce({ fileName: 'restart-payments-run1.log', path: null, bytes: 12 })
    renderRun(execution({ status: 'succeeded', finished_at: at(5) }))
    await user.click(await screen.findByRole('button', { name: 'Save console' }))
    const notice = await screen.findByTestId('console-notice')
    expect(notice).toHaveTextContent('Console downloaded as restart-payments-run1.log')
    expect(notice).not.toHaveTextContent('saved to')

    saveConsole.mockRejectedValueOnce(new ApiError('forbidden', 'not allowed', 403))
    await user.click(button('Save console'))
    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('The console could not be saved')
    expect(screen.queryByTestId('console-notice')).toBeNull()
    expect(saveConsole).toHaveBeenCalledTimes(2)
  })

  it('lists every step with its branch, status, HTTP status, outputs and response', async () => {
    renderRun(execution({}))
    await screen.findAllByText(/then of branch/) // the runbook version has loaded
    const branch = screen.getByTestId('step-branch')
    expect(within(branch).getByTestId('branch-branch')).toHaveTextContent('took then')
    expect(screen.getByTestId('step-health')).toHaveTextContent('HTTP 200')
    expect(screen.getByTestId('step-health')).toHaveTextContent('Response 200')
    const restart = screen.getByTestId('step-restart')
    expect(restart).toHaveTextContent('then of branch')
    expect(restart).toHaveTextContent('exit 0')
    expect(restart).toHaveTextContent('2.0 s')
    expect(restart).toHaveTextContent('PID=4242')
    expect(screen.getByTestId('step-page')).toHaveTextContent('skipped')
    expect(screen.getByTestId('countdown-wait')).toHaveTextContent(/^0:(30|29)$/)
  })

  it('tells how long a stop gives the running command when its block sets it', async () => {
    const user = userEvent.setup()
    const steps = execution({}).steps.map((step) =>
      step.block_id === 'restart'
        ? { ...step, status: 'running' as const, finished_at: null, exit_code: null }
        : step.block_id === 'wait'
          ? { ...step, status: 'pending' as const, started_at: null }
          : step,
    )
    renderRun(execution({ steps }))
    await screen.findByTestId('step-wait')
    await user.keyboard('s')
    const dialog = await screen.findByRole('dialog', { name: 'Stop this run?' })
    await waitFor(() => expect(dialog).toHaveTextContent('SIGKILL after its grace period of 120 s'))
  })

  it('enables only the controls that fit the state and shows their keys', async () => {
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    expect(button('Pause')).toBeEnabled()
    expect(button('Pause')).toHaveAttribute('aria-keyshortcuts', 'p')
    expect(button('Resume')).toBeDisabled()
    expect(button('Stop')).toBeEnabled()
    expect(button('Acknowledge')).toBeDisabled()
    expect(screen.queryByRole('button', { name: /Retry/ })).toBeNull()
  })

  it('pauses with p, asks before stopping with s, and ignores keys typed into a field', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    await screen.findByTestId('step-wait')

    await user.keyboard('p')
    expect(calls('control_execution').map(([, args]) => args)).toEqual([{ id: 'run-1', action: 'pause' }])

    await user.keyboard('s')
    const dialog = await screen.findByRole('dialog', { name: 'Stop this run?' })
    // A timer runs: no command, no grace period of its own to tell.
    expect(dialog).toHaveTextContent('SIGKILL after a grace period')
    expect(calls('control_execution')).toHaveLength(1)
    await user.click(within(dialog).getByRole('button', { name: 'Stop run' }))
    expect(calls('control_execution').at(-1)?.[1]).toEqual({ id: 'run-1', action: 'stop' })

    const field = document.createElement('input')
    document.body.append(field)
    field.focus()
    await user.keyboard('s')
    expect(screen.queryByRole('dialog')).toBeNull()
    field.remove()
  })

  it('keeps the run and its controls on screen while the server is briefly unreachable', async () => {
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    offline = true
    const banner = await screen.findByTestId('connection-banner', {}, { timeout: 3000 })
    expect(banner).toHaveTextContent('Connection lost — retrying…')
    expect(screen.getByTestId('execution-status')).toHaveTextContent('running')
    expect(button('Pause')).toBeEnabled()
    expect(button('Stop')).toBeEnabled()
    expect(screen.queryByText('Could not load this run')).toBeNull()

    offline = false
    await vi.waitFor(() => expect(screen.queryByTestId('connection-banner')).toBeNull(), { timeout: 3000 })
    expect(button('Pause')).toBeEnabled()
  })

  it('closes the stop question when the run finishes before it is answered', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    await user.click(button('Stop'))
    expect(screen.getByRole('dialog', { name: 'Stop this run?' })).toBeInTheDocument()

    current = execution({ status: 'succeeded', finished_at: at(9) })
    await act(async () => emit({ type: 'status', execution_id: 'run-1', status: 'succeeded' }))
    await vi.waitFor(() => expect(screen.getByTestId('execution-status')).toHaveTextContent('succeeded'))
    expect(screen.queryByRole('dialog')).toBeNull()
    expect(calls('control_execution')).toHaveLength(0)
  })

  it('clears a control\'s error once the run\'s status changes', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    const answer = call.getMockImplementation()
    call.mockImplementation(async (command: string, args: { id: string; action?: string }) => {
      if (command === 'control_execution') throw new ApiError('invalid_state', 'The run is not running.', 409)
      return answer?.(command, args)
    })
    await screen.findByTestId('step-wait')
    await user.click(button('Pause'))
    expect(await screen.findByText('Not possible right now')).toBeInTheDocument()

    current = execution({ status: 'paused' })
    await vi.waitFor(() => expect(screen.getByTestId('execution-status')).toHaveTextContent('paused'), { timeout: 3000 })
    expect(screen.queryByText('Not possible right now')).toBeNull()
  })

  it('keeps a refusal on screen when the run ended before the action reached it', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    const answer = call.getMockImplementation()
    call.mockImplementation(async (command: string, args: { id: string; action?: string }) => {
      if (command === 'control_execution') {
        current = execution({ status: 'succeeded', finished_at: at(9) })
        throw new ApiError('invalid_state', 'the execution is succeeded; only a live run can be controlled', 409)
      }
      return answer?.(command, args)
    })
    await screen.findByTestId('step-wait')
    await user.click(button('Pause'))
    expect(await screen.findByText('Not possible right now')).toBeInTheDocument()
    await vi.waitFor(() => expect(screen.getByTestId('execution-status')).toHaveTextContent('succeeded'), { timeout: 3000 })
    expect(screen.getByRole('alert')).toHaveTextContent('the execution is succeeded; only a live run can be controlled')
  })

  it('disables every control once a stop is accepted, while the run winds down', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    await user.click(button('Stop'))
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Stop run' }))
    // The engine terminates the processes first: the run still shows running meanwhile.
    await vi.waitFor(() => expect(button('Stopping…')).toBeDisabled())
    expect(screen.getByTestId('execution-status')).toHaveTextContent('running')
    expect(button('Pause')).toBeDisabled()
    await user.keyboard('ps')
    expect(screen.queryByRole('dialog')).toBeNull()
    expect(calls('control_execution')).toHaveLength(1)
    // What the stop waits for (the processes' grace period) can be cut short, and only that.
    await user.click(button('Kill now'))
    expect(calls('control_execution').at(-1)?.[1]).toEqual({ id: 'run-1', action: 'kill' })
    await vi.waitFor(() => expect(button('Killing…')).toBeDisabled())
    expect(button('Stopping…')).toBeDisabled()
    expect(button('Pause')).toBeDisabled()

    current = execution({ status: 'stopped', finished_at: at(9) })
    await act(async () => emit({ type: 'status', execution_id: 'run-1', status: 'stopped' }))
    await vi.waitFor(() => expect(screen.getByTestId('execution-status')).toHaveTextContent('stopped'))
    expect(button('Stop')).toBeDisabled()
    expect(screen.queryByRole('button', { name: /^Kill/ })).toBeNull()
  })

  it('takes a stop refused by a live run as one under way, and offers to kill', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    // Stopped from elsewhere (another operator, the CLI) before this view knew.
    controlRefusal = new ApiError('invalid_state', 'cannot stop an execution that is running', 409)
    await user.click(button('Stop'))
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Stop run' }))
    await vi.waitFor(() => expect(button('Stopping…')).toBeDisabled())
    expect(calls('control_execution').map(([, args]) => args)).toEqual([{ id: 'run-1', action: 'stop' }])
    expect(screen.queryByText('Not possible right now')).toBeNull()
    controlRefusal = null
    await user.click(button('Kill now'))
    expect(calls('control_execution').at(-1)?.[1]).toEqual({ id: 'run-1', action: 'kill' })
  })

  it('shows a stop someone else asked for as the run stopping, with who and when, and offers to kill', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    expect(screen.queryByTestId('stop-requested')).toBeNull()
    expect(button('Stop')).toBeEnabled()

    // Another operator stopped it; its commands are given their grace period.
    current = execution({ stop_requested: { by: 'bob', at: at(7) } })
    await act(async () => emit({ type: 'stop_requested', execution_id: 'run-1', by: 'bob', at: at(7) }))
    await vi.waitFor(() => expect(screen.getByTestId('stop-requested')).toHaveTextContent('stop requested by bob at'))
    expect(button('Stopping…')).toBeDisabled()
    expect(button('Pause')).toBeDisabled()
    await user.click(button('Kill now'))
    expect(calls('control_execution').map(([, args]) => args)).toEqual([{ id: 'run-1', action: 'kill' }])

    // Once ended, the run is stopped, not stopping.
    current = execution({ status: 'stopped', finished_at: at(9), stop_requested: { by: 'bob', at: at(7) } })
    await act(async () => emit({ type: 'status', execution_id: 'run-1', status: 'stopped' }))
    await vi.waitFor(() => expect(screen.getByTestId('execution-status')).toHaveTextContent('stopped'))
    expect(screen.queryByTestId('stop-requested')).toBeNull()
    expect(screen.queryByRole('button', { name: /^Kill/ })).toBeNull()
  })

  it('kills at once from the stop question, and offers no kill before a stop', async () => {
    const user = userEvent.setup()
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    expect(screen.queryByRole('button', { name: 'Kill now' })).toBeNull()
    await user.click(button('Stop'))
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Kill at once' }))
    expect(calls('control_execution').map(([, args]) => args)).toEqual([{ id: 'run-1', action: 'kill' }])
    await vi.waitFor(() => expect(button('Stopping…')).toBeDisabled())
  })

  it('enables Acknowledge only once it knows which step the run waits at', async () => {
    const user = userEvent.setup()
    // The run's status can say waiting before its step does.
    renderRun(execution({ status: 'waiting' }))
    await screen.findByTestId('step-wait')
    expect(button('Stop')).toBeEnabled()
    expect(button('Acknowledge')).toBeDisabled()
    await user.keyboard('a')
    expect(calls('control_execution')).toEqual([])

    const waiting = execution({ status: 'waiting' })
    waiting.steps = waiting.steps.map((step) => (step.block_id === 'wait' ? { ...step, status: 'waiting' } : step))
    current = waiting
    await act(async () => emit({ type: 'step_started', execution_id: 'run-1', block_id: 'wait' }))
    await vi.waitFor(() => expect(button('Acknowledge')).toBeEnabled())
    await user.keyboard('a')
    await vi.waitFor(() => expect(calls('control_execution')).toHaveLength(1))
    expect(calls('control_execution')[0][1]).toEqual({ id: 'run-1', action: 'acknowledge', blockId: 'wait' })
  })

  it('names the step a retry starts from as the server picks it', async () => {
    // Stopped between steps: the step never reached is skipped, and the retry runs it.
    const stopped = execution({ status: 'stopped', finished_at: at(5) })
    stopped.steps = stopped.steps.map((step) => (step.block_id === 'wait' ? { ...step, status: 'skipped', started_at: null } : step))
    renderRun(stopped)
    await screen.findAllByText(/then of branch/) // the runbook version has loaded
    expect(button('Retry from failed step')).toHaveAttribute('title', 'Start a new run that reuses the steps before “wait” and runs again from there')
  })

  it('freezes the countdown from the engine\'s event while paused', async () => {
    renderRun(execution({}))
    await screen.findByTestId('countdown-wait')
    act(() => emit({ type: 'countdown', execution_id: 'run-1', block_id: 'wait', remaining_ms: 12_400, total_ms: 30_000, paused: true }))
    expect(screen.getByTestId('countdown-wait')).toHaveTextContent('0:13')
    expect(screen.getByTestId('step-wait')).toHaveTextContent('frozen while paused')
  })

  it('retries a failed run and opens the new one, which links back and marks reused steps', async () => {
    const user = userEvent.setup()
    const failed = execution({ status: 'failed', finished_at: at(5) })
    failed.steps = failed.steps.map((step) => (step.block_id === 'wait' ? { ...step, status: 'failed', error: 'timer broke', finished_at: at(5) } : step))
    const router = renderRun(failed)
    await screen.findByTestId('step-wait')
    expect(screen.getByTestId('step-wait')).toHaveTextContent('timer broke')
    expect(button('Pause')).toBeDisabled()
    expect(button('Stop')).toBeDisabled()

    await user.click(button('Retry from failed step'))
    expect(calls('retry_execution')[0][1]).toEqual({ id: 'run-1' })
    expect(router.state.location.pathname).toBe('/executions/run-2')
    const link = await screen.findByTestId('retry-of')
    expect(link).toHaveTextContent('retry of run-1 from restart')
    expect(link).toHaveAttribute('href', '/executions/run-1')
  })

  it('shows the retries of a run and asks before retrying one whose retry succeeded', async () => {
    const user = userEvent.setup()
    const failed = execution({ status: 'failed', finished_at: at(5) })
    history = [
      execution({ id: 'run-9', status: 'succeeded', retry_of: 'run-1', retry_from: 'wait' }),
      execution({ id: 'run-8', status: 'failed', retry_of: 'run-1', retry_from: 'wait' }),
      execution({ id: 'run-7', status: 'succeeded', retry_of: 'someone-else' }),
    ]
    renderRun(failed)
    await screen.findByTestId('step-wait')
    const links = await screen.findAllByTestId('retried-as')
    expect(links.map((link) => link.textContent?.trim())).toEqual(['retried as run-9 succeeded', 'retried as run-8 failed'])
    expect(links[0]).toHaveAttribute('href', '/executions/run-9')

    await user.click(button('Retry from failed step'))
    const dialog = screen.getByRole('dialog', { name: 'Retry this run again?' })
    expect(dialog).toHaveTextContent('run-9 succeeded')
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(calls('retry_execution')).toHaveLength(0)

    await user.click(button('Retry from failed step'))
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Retry again' }))
    expect(calls('retry_execution')[0][1]).toEqual({ id: 'run-1' })
  })

  it('offers no second retry while one is running', async () => {
    history = [execution({ id: 'run-9', status: 'running', retry_of: 'run-1', retry_from: 'wait' })]
    renderRun(execution({ status: 'stopped', finished_at: at(5) }))
    await screen.findByTestId('retried-as')
    expect(button('Retry from failed step')).toBeDisabled()
    expect(button('Retry from failed step')).toHaveAttribute('title', 'A retry of this run is running: run-9')
  })

  it('marks the steps a retry reused', async () => {
    const retried = execution({ id: 'run-3', retry_of: 'run-1', retry_from: 'wait' })
    retried.steps = retried.steps.map((step) => (step.block_id === 'wait' ? step : { ...step, reused: true }))
    renderRun(retried)
    expect(await screen.findByTestId('step-health')).toHaveTextContent('reused')
    expect(screen.getByTestId('step-wait')).not.toHaveTextContent('reused')
  })

  it('disables the controls, their keys and retry for a viewer, naming the role they need', async () => {
    const user = userEvent.setup()
    me = { name: 'vi', role: 'viewer' }
    renderRun(execution({}))
    await screen.findByTestId('step-wait')
    await vi.waitFor(() => expect(button('Pause')).toBeDisabled())
    for (const name of ['Pause', 'Resume', 'Stop', 'Acknowledge']) {
      expect(button(name)).toBeDisabled()
      expect(button(name)).toHaveAttribute('title', 'Needs the operator role or higher; you are signed in as viewer.')
    }
    await user.keyboard('ps')
    expect(screen.queryByRole('dialog')).toBeNull()
    expect(calls('control_execution')).toEqual([])
  })

  it('raises a notification once when a step starts waiting while the run is shown, and none for a wait it opened on', async () => {
    notifications.length = 0
    me = { name: 'oscar', role: 'operator' }
    renderRun(execution({ status: 'running' }))
    await screen.findByTestId('step-wait')
    expect(notifications).toEqual([])

    const waiting = execution({ status: 'waiting' })
    waiting.steps = waiting.steps.map((step) => (step.block_id === 'page' ? { ...step, status: 'waiting' } : step))
    current = waiting
    await act(async () => emit({ type: 'status', execution_id: 'run-1', status: 'waiting' }))
    await vi.waitFor(() => expect(notifications).toHaveLength(1))
    expect(notifications[0]).toEqual({
      title: '“Restart payments” waits for you',
      options: { body: 'Step “page” needs your acknowledgement: Page the owner', tag: 'runbook-studio-run-1-page' },
    })
    // The same wait seen again (another event, a refetch) is not announced again.
    await act(async () => emit({ type: 'status', execution_id: 'run-1', status: 'waiting' }))
    await act(async () => new Promise((resolve) => setTimeout(resolve, 0)))
    expect(notifications).toHaveLength(1)
    cleanup()

    // Opened on a run that waits already: the banner tells, no notification.
    renderRun(waiting)
    await screen.findByText(/^Step “page” waits/)
    expect(notifications).toHaveLength(1)
  })

  it('holds the notice of a wait until the runbook version tells the step instructions', async () => {
    notifications.length = 0
    me = { name: 'oscar', role: 'operator' }
    let release = () => {}
    versionHeld = new Promise((resolve) => (release = resolve))
    renderRun(execution({ status: 'running' }))
    await screen.findByTestId('step-wait')

    const waiting = execution({ status: 'waiting' })
    waiting.steps = waiting.steps.map((step) => (step.block_id === 'page' ? { ...step, status: 'waiting' } : step))
    current = waiting
    await act(async () => emit({ type: 'status', execution_id: 'run-1', status: 'waiting' }))
    await vi.waitFor(() => expect(screen.getByTestId('execution-status')).toHaveTextContent('waiting'))
    expect(notifications).toEqual([])

    await act(async () => release())
    await vi.waitFor(() => expect(notifications).toHaveLength(1))
    expect(notifications[0].options?.body).toBe('Step “page” needs your acknowledgement: Page the owner')
  })

  it('tells a viewer that a waiting step needs someone with the operator role, and an operator to acknowledge it', async () => {
    const waiting = execution({ status: 'waiting' })
    waiting.steps = waiting.steps.map((step) => (step.block_id === 'wait' ? { ...step, status: 'waiting' } : step))
    me = { name: 'vi', role: 'viewer' }
    renderRun(waiting)
    await vi.waitFor(() => expect(button('Acknowledge')).toBeDisabled())
    const banner = screen.getByText(/^Step “wait” waits/).closest('.banner') as HTMLElement
    expect(banner).toHaveTextContent('Step “wait” waits for someone with the operator role or higher to acknowledge it.')
    expect(banner).not.toHaveTextContent('Acknowledge (A)')
    cleanup()

    call.mockClear() // the viewer's whoami does not count
    me = { name: 'oscar', role: 'operator' }
    renderRun(waiting)
    await screen.findByTestId('step-wait')
    await vi.waitFor(() => expect(call).toHaveBeenCalledWith('whoami', {}))
    await act(async () => new Promise((resolve) => setTimeout(resolve, 0)))
    const own = screen.getByText(/^Step “wait” waits/).closest('.banner') as HTMLElement
    expect(own).toHaveTextContent('Step “wait” waits for you. Do what it says, then press Acknowledge (A).')
    expect(button('Acknowledge')).toBeEnabled()
  })

  it('acknowledges the step the run waits at by name, with the button and with a', async () => {
    const user = userEvent.setup()
    const waiting = execution({ status: 'waiting' })
    waiting.steps = waiting.steps.map((step) => (step.block_id === 'wait' ? { ...step, status: 'waiting' } : step))
    renderRun(waiting)
    await vi.waitFor(() => expect(button('Acknowledge')).toBeEnabled())
    await user.click(button('Acknowledge'))
    await vi.waitFor(() => expect(calls('control_execution')).toHaveLength(1))
    await user.keyboard('a')
    await vi.waitFor(() => expect(calls('control_execution')).toHaveLength(2))
    // Named, a second acknowledgement cannot confirm a step the person has not read.
    for (const [, args] of calls('control_execution')) {
      expect(args).toEqual({ id: 'run-1', action: 'acknowledge', blockId: 'wait' })
    }
  })

  it('disables retrying a failed run for a viewer and allows it for an operator', async () => {
    const failed = execution({ status: 'failed', finished_at: at(5) })
    me = { name: 'vi', role: 'viewer' }
    renderRun(failed)
    await vi.waitFor(() => expect(button('Retry from failed step')).toBeDisabled())
    expect(button('Retry from failed step')).toHaveAttribute('title', 'Needs the operator role or higher; you are signed in as viewer.')
    cleanup()

    me = { name: 'oscar', role: 'operator' }
    renderRun(failed)
    await screen.findByTestId('step-wait')
    await vi.waitFor(() => expect(call).toHaveBeenCalledWith('whoami', {}))
    await act(async () => new Promise((resolve) => setTimeout(resolve, 0)))
    expect(button('Retry from failed step')).toBeEnabled()
    expect(button('Retry from failed step')).not.toHaveAttribute('title', expect.stringContaining('role'))
  })
})
