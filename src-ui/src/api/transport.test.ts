import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

const invoke = vi.fn()
const listen = vi.fn()
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...args: unknown[]) => invoke(...args) }))
vi.mock('@tauri-apps/api/event', () => ({ listen: (...args: unknown[]) => listen(...args) }))

import { ApiError } from './errors'
import { attachmentName, call, exportExecution, saveConsole, setApiKey, SSE_RECONNECT_MS, subscribeExecutionEvents } from './transport'
import type { ExecutionEvent } from './types'

function jsonResponse(status: number, body: unknown): Response {
  return new Response(body === null ? null : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  })
}

function sseResponse(chunks: string[]): Response {
  const encoder = new TextEncoder()
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk))
      controller.close()
    },
  })
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
}

const fetchMock = vi.fn<typeof fetch>()

beforeEach(() => {
  vi.stubGlobal('fetch', fetchMock)
  fetchMock.mockReset()
  invoke.mockReset()
  listen.mockReset()
})

afterEach(() => {
  vi.unstubAllGlobals()
  delete (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__
})

describe('browser transport', () => {
  it('maps a command to its REST route with query, header and body', async () => {
    setApiKey('secret-key')
    fetchMock.mockResolvedValueOnce(jsonResponse(200, { items: [], total: 0 }))
    await call('list_executions', { runbookId: 'rb-1', status: 'running', limit: 5 })
    const [url, init] = fetchMock.mock.calls[0]
    expect(url).toBe('executions?runbook_id=rb-1&status=running&limit=5')
    expect(new Headers(init?.headers).get('X-API-KEY')).toBe('secret-key')

    fetchMock.mockResolvedValueOnce(jsonResponse(200, { id: 'rb-1' }))
    const body = { name: 'n', description: '', tags: [], params: [], blocks: [], version: 3 }
    await call('update_runbook', { id: 'rb-1', body })
    const [putUrl, putInit] = fetchMock.mock.calls[1]
    expect(putUrl).toBe('runbooks/rb-1')
    expect(putInit?.method).toBe('PUT')
    expect(JSON.parse(String(putInit?.body))).toEqual(body)
  })

  it('rejects with a normalised ApiError on an error status', async () => {
    fetchMock.mockResolvedValueOnce(
      jsonResponse(409, { error: { code: 'version_conflict', message: 'The runbook changed.' } }),
    )
    const failure = call('update_runbook', {
      id: 'rb-1',
      body: { name: 'n', description: '', tags: [], params: [], blocks: [], version: 1 },
    })
    await expect(failure).rejects.toMatchObject({ code: 'version_conflict', status: 409, message: 'The runbook changed.' })
  })

  it('retries a run with POST /executions/{id}/retry and an empty body', async () => {
    fetchMock.mockResolvedValueOnce(jsonResponse(202, { id: 'e2', retry_of: 'e1' }))
    await expect(call('retry_execution', { id: 'e1' })).resolves.toMatchObject({ id: 'e2', retry_of: 'e1' })
    const [url, init] = fetchMock.mock.calls[0]
    expect(url).toBe('executions/e1/retry')
    expect(init?.method).toBe('POST')
    expect(JSON.parse(String(init?.body))).toEqual({})
  })

  it('names the step an acknowledgement answers, and no step for other controls', async () => {
    fetchMock.mockImplementation(async () => jsonResponse(200, { id: 'e1' }))
    await call('control_execution', { id: 'e1', action: 'acknowledge', blockId: 'drain' })
    await call('control_execution', { id: 'e1', action: 'pause' })
    const bodies = fetchMock.mock.calls.map(([url, init]) => [url, JSON.parse(String(init?.body))])
    expect(bodies).toEqual([
      ['executions/e1/control', { action: 'acknowledge', block_id: 'drain' }],
      ['executions/e1/control', { action: 'pause' }],
    ])
  })

  it('maps the security commands onto their REST routes', async () => {
    const cases: [Promise<unknown>, string, string, unknown][] = []
    const expectRoute = (promise: Promise<unknown>, method: string, url: string, body?: unknown) => cases.push([promise, method, url, body])
    fetchMock.mockImplementation(async () => jsonResponse(200, {}))
    expectRoute(call('list_credentials', {}), 'GET', 'credentials')
    expectRoute(call('get_credential', { id: 'c/1' }), 'GET', 'credentials/c%2F1')
    const credential = { name: 'db', kind: 'basic' as const, value: 'pw', username: 'u', header_name: null, description: '' }
    expectRoute(call('create_credential', { body: credential }), 'POST', 'credentials', credential)
    expectRoute(call('update_credential', { id: 'c1', body: { value: 'new' } }), 'PUT', 'credentials/c1', { value: 'new' })
    expectRoute(call('delete_credential', { id: 'c1' }), 'DELETE', 'credentials/c1')
    expectRoute(call('list_users', {}), 'GET', 'users')
    expectRoute(call('create_user', { body: { name: 'bob', role: 'editor' } }), 'POST', 'users', { name: 'bob', role: 'editor' })
    expectRoute(call('update_user', { id: 'u1', body: { disabled: true } }), 'PUT', 'users/u1', { disabled: true })
    expectRoute(call('delete_user', { id: 'u1' }), 'DELETE', 'users/u1')
    expectRoute(call('list_api_keys', {}), 'GET', 'keys')
    expectRoute(call('create_api_key', { body: { name: 'ci', role: 'operator' } }), 'POST', 'keys', { name: 'ci', role: 'operator' })
    expectRoute(call('revoke_api_key', { id: 'k1' }), 'DELETE', 'keys/k1')
    expectRoute(
      call('list_audit', { action: 'credential.', outcome: 'denied', since: '2026-01-01T00:00:00.000Z', limit: 50, offset: 0 }),
      'GET',
      'audit?action=credential.&outcome=denied&since=2026-01-01T00%3A00%3A00.000Z&limit=50&offset=0',
    )
    expectRoute(call('verify_audit', {}), 'GET', 'audit/verify')
    expectRoute(call('vault_status', {}), 'GET', 'vault')
    await Promise.all(cases.map(([promise]) => promise))
    cases.forEach(([, method, url, body], i) => {
      const [calledUrl, init] = fetchMock.mock.calls[i]
      expect([init?.method, calledUrl]).toEqual([method, url])
      expect(init?.body === undefined ? undefined : JSON.parse(String(init.body))).toEqual(body)
    })
  })

  it('treats an empty 204 as null', async () => {
    fetchMock.mockResolvedValueOnce(new Response(null, { status: 204 }))
    await expect(call('delete_runbook', { id: 'x' })).resolves.toBeNull()
  })

  it('streams SSE events of this execution only, across split chunks', async () => {
    fetchMock.mockResolvedValueOnce(
      sseResponse([
        'event: output\ndata: {"type":"output","execution_id":"e1","block_id":"a","offset":0,"text":"hé',
        'llo\\n"}\n\nevent: output\ndata: {"type":"output","execution_id":"other","offset":0,"text":"x"}\n\n',
        'data: not json\n\n',
        'event: countdown\ndata: {"type":"countdown","execution_id":"e1","block_id":"wait","remaining_ms":29000,"total_ms":30000,"paused":false}\n\n',
        'event: countdown\ndata: {"type":"countdown","execution_id":"e1","block_id":"wait"}\n\n',
        'event: stop_requested\ndata: {"type":"stop_requested","execution_id":"e1","by":"bob","at":"2026-01-01T00:00:07Z"}\n\n',
        'event: stop_requested\ndata: {"type":"stop_requested","execution_id":"e1","by":7}\n\n',
        'event: status\ndata: {"type":"status","execution_id":"e1","status":"succeeded"}\n\n',
      ]),
    )
    const events: ExecutionEvent[] = []
    await new Promise<void>((resolve) => {
      subscribeExecutionEvents('e1', {
        onEvent: (event) => {
          events.push(event)
          if (event.type === 'status') resolve()
        },
      })
    })
    expect(events).toEqual([
      { type: 'output', execution_id: 'e1', block_id: 'a', offset: 0, text: 'héllo\n' },
      { type: 'countdown', execution_id: 'e1', block_id: 'wait', remaining_ms: 29000, total_ms: 30000, paused: false },
      { type: 'stop_requested', execution_id: 'e1', by: 'bob', at: '2026-01-01T00:00:07Z' },
      { type: 'status', execution_id: 'e1', status: 'succeeded' },
    ])
    expect(fetchMock.mock.calls[0][0]).toBe('executions/e1/events')
  })

  it('follows a run again when the server ends its stream before the run ends', async () => {
    fetchMock
      .mockResolvedValueOnce(
        sseResponse([
          'event: status\ndata: {"type":"status","execution_id":"e1","status":"running"}\n\n',
          'event: output\ndata: {"type":"output","execution_id":"e1","block_id":"a","offset":0,"text":"one\\n"}\n\n',
        ]),
      )
      .mockResolvedValueOnce(
        sseResponse([
          'event: status\ndata: {"type":"status","execution_id":"e1","status":"running"}\n\n',
          'event: output\ndata: {"type":"output","execution_id":"e1","block_id":"a","offset":900,"text":"two\\n"}\n\n',
          'event: status\ndata: {"type":"status","execution_id":"e1","status":"succeeded"}\n\n',
        ]),
      )
    const events: ExecutionEvent[] = []
    let errors = 0
    await new Promise<void>((resolve) => {
      subscribeExecutionEvents('e1', {
        onEvent: (event) => {
          events.push(event)
          if (event.type === 'status' && event.status === 'succeeded') resolve()
        },
        onError: () => errors++,
      })
    })
    expect(events.filter((event) => event.type === 'output').map((event) => event.offset)).toEqual([0, 900])
    expect(fetchMock).toHaveBeenCalledTimes(2)
    // The run has ended: no third connection, and no error reported.
    await new Promise((resolve) => setTimeout(resolve, 2 * SSE_RECONNECT_MS[0]))
    expect(fetchMock).toHaveBeenCalledTimes(2)
    expect(errors).toBe(0)
  })

  it('stops following when unsubscribed between connections', async () => {
    fetchMock.mockImplementation(() =>
      Promise.resolve(sseResponse(['event: status\ndata: {"type":"status","execution_id":"e1","status":"running"}\n\n'])),
    )
    const stop = subscribeExecutionEvents('e1', { onEvent: () => {} })
    await vi.waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1))
    stop()
    await new Promise((resolve) => setTimeout(resolve, 3 * SSE_RECONNECT_MS[0]))
    expect(fetchMock).toHaveBeenCalledTimes(1)
  })

  it('reports a network failure once and follows the run again when the server is back', async () => {
    fetchMock
      .mockRejectedValueOnce(new TypeError('Failed to fetch'))
      .mockRejectedValueOnce(new TypeError('Failed to fetch'))
      .mockResolvedValueOnce(jsonResponse(503, { error: { code: 'unavailable', message: 'restarting' } }))
      .mockResolvedValueOnce(
        sseResponse([
          'event: status\ndata: {"type":"status","execution_id":"e1","status":"running"}\n\n',
          'event: status\ndata: {"type":"status","execution_id":"e1","status":"succeeded"}\n\n',
        ]),
      )
    const errors: ApiError[] = []
    const events: ExecutionEvent[] = []
    await new Promise<void>((resolve) => {
      subscribeExecutionEvents('e1', {
        onEvent: (event) => {
          events.push(event)
          if (event.type === 'status' && event.status === 'succeeded') resolve()
        },
        onError: (error) => errors.push(error),
      })
    })
    expect(errors.map((error) => error.code)).toEqual(['network_error'])
    expect(events.map((event) => (event.type === 'status' ? event.status : event.type))).toEqual(['running', 'succeeded'])
    expect(fetchMock).toHaveBeenCalledTimes(4)
  }, 10_000)

  it('reports a refused event stream', async () => {
    fetchMock.mockResolvedValueOnce(jsonResponse(403, { error: { code: 'forbidden', message: 'no' } }))
    const error = await new Promise<ApiError>((resolve) => {
      subscribeExecutionEvents('e1', { onEvent: () => {}, onError: resolve })
    })
    expect(error.code).toBe('forbidden')
    // A refusal is not retried.
    await new Promise((resolve) => setTimeout(resolve, 2 * SSE_RECONNECT_MS[0]))
    expect(fetchMock).toHaveBeenCalledTimes(1)
  })
})

describe('run reports and saved consoles', () => {
  let clicked: { name: string; href: string }[] = []
  let revoke: ReturnType<typeof vi.spyOn>

  beforeEach(() => {
    clicked = []
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push({ name: this.download, href: this.href })
    })
    vi.spyOn(URL, 'createObjectURL').mockReturnValue('blob:report')
    revoke = vi.spyOn(URL, 'revokeObjectURL').mockImplementation(() => {})
  })

  afterEach(() => {
    vi.useRealTimers()
    vi.restoreAllMocks()
  })

  function reportResponse(headers: Record<string, string>): Response {
    return new Response('# Run report: x', {
      status: 200,
      headers: { 'Content-Type': 'text/markdown; charset=utf-8', ...headers },
    })
  }

  it('downloads the report in a browser under the name the server gives', async () => {
    vi.useFakeTimers()
    setApiKey('secret-key')
    fetchMock.mockResolvedValueOnce(
      reportResponse({
        'Content-Disposition': 'attachment; filename="restart-payments-0b1e7c4a.md"',
        'X-Console-Truncated': 'true',
      }),
    )
    const saved = await exportExecution('run/1')
    const [url, init] = fetchMock.mock.calls[0]
    expect(url).toBe('executions/run%2F1/export')
    expect(new Headers(init?.headers).get('X-API-KEY')).toBe('secret-key')
    expect(saved).toEqual({ fileName: 'restart-payments-0b1e7c4a.md', path: null, truncated: true })
    expect(clicked).toEqual([{ name: 'restart-payments-0b1e7c4a.md', href: 'blob:report' }])
    // The link is gone from the page, and the blob is let go once the browser has it.
    expect(document.querySelector('a[download]')).toBeNull()
    vi.runAllTimers()
    expect(revoke).toHaveBeenCalledWith('blob:report')
  })

  it('names the download after the run when the server gives no name', async () => {
    fetchMock.mockResolvedValueOnce(reportResponse({}))
    expect(await exportExecution('e7')).toEqual({ fileName: 'run-e7.md', path: null, truncated: false })
    expect(clicked).toEqual([{ name: 'run-e7.md', href: 'blob:report' }])
  })

  it('turns a refused export into the API error and downloads nothing', async () => {
    fetchMock.mockResolvedValueOnce(jsonResponse(404, { error: { code: 'not_found', message: 'execution not found' } }))
    const error = await exportExecution('missing').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('not_found')
    expect(clicked).toEqual([])
  })

  it('reads the file name of an attachment', () => {
    expect(attachmentName('attachment; filename="a-1.md"')).toBe('a-1.md')
    expect(attachmentName(null)).toBeNull()
    expect(attachmentName('inline')).toBeNull()
  })

  it('has the desktop save the report and return where', async () => {
    ;(window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {}
    invoke.mockResolvedValueOnce({ path: '/home/a/Downloads/x-1.md', file_name: 'x-1.md', truncated: false })
    expect(await exportExecution('e1')).toEqual({ fileName: 'x-1.md', path: '/home/a/Downloads/x-1.md', truncated: false })
    expect(invoke).toHaveBeenCalledWith('export_execution', { id: 'e1' })
    expect(fetchMock).not.toHaveBeenCalled()
    expect(clicked).toEqual([])
  })

  it('turns a desktop failure into the API error', async () => {
    ;(window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {}
    invoke.mockRejectedValueOnce({ code: 'not_found', message: 'execution not found' })
    const error = await exportExecution('gone').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('not_found')
  })

  function consoleResponse(text: string, headers: Record<string, string>): Response {
    return new Response(text, { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers } })
  }

  it('downloads the whole console in a browser under the name the server gives, with its size', async () => {
    vi.useFakeTimers()
    setApiKey('secret-key')
    const text = '▶ step-2 (command)\nhello\n'
    fetchMock.mockResolvedValueOnce(consoleResponse(text, { 'Content-Disposition': 'attachment; filename="restart-payments-0b1e7c4a.log"' }))
    const saved = await saveConsole('run/1')
    const [url, init] = fetchMock.mock.calls[0]
    expect(url).toBe('executions/run%2F1/console')
    expect(new Headers(init?.headers).get('X-API-KEY')).toBe('secret-key')
    expect(saved).toEqual({ fileName: 'restart-payments-0b1e7c4a.log', path: null, bytes: new TextEncoder().encode(text).length })
    expect(clicked).toEqual([{ name: 'restart-payments-0b1e7c4a.log', href: 'blob:report' }])
    expect(document.querySelector('a[download]')).toBeNull()
    vi.runAllTimers()
    expect(revoke).toHaveBeenCalledWith('blob:report')
  })

  it('names the saved console after the run when the server gives no name', async () => {
    fetchMock.mockResolvedValueOnce(consoleResponse('', {}))
    expect(await saveConsole('e7')).toEqual({ fileName: 'run-e7.log', path: null, bytes: 0 })
    expect(clicked).toEqual([{ name: 'run-e7.log', href: 'blob:report' }])
  })

  it('turns a refused console into the API error and downloads nothing', async () => {
    fetchMock.mockResolvedValueOnce(jsonResponse(403, { error: { code: 'forbidden', message: 'not allowed' } }))
    const error = await saveConsole('e1').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('forbidden')
    expect(clicked).toEqual([])
  })

  it('downloads nothing when the console breaks off before its end', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('first page\n'))
        controller.error(new TypeError('network error'))
      },
    })
    fetchMock.mockResolvedValueOnce(new Response(body, { status: 200, headers: { 'Content-Disposition': 'attachment; filename="x-1.log"' } }))
    const error = await saveConsole('e1').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).message).toMatch(/broke off before its end/)
    expect(clicked).toEqual([])
  })

  it('has the desktop save the console and return where and how big', async () => {
    ;(window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {}
    invoke.mockResolvedValueOnce({ path: '/home/a/Downloads/x-1.log', file_name: 'x-1.log', bytes: 2048 })
    expect(await saveConsole('e1')).toEqual({ fileName: 'x-1.log', path: '/home/a/Downloads/x-1.log', bytes: 2048 })
    expect(invoke).toHaveBeenCalledWith('save_console', { id: 'e1' })
    expect(fetchMock).not.toHaveBeenCalled()
    expect(clicked).toEqual([])
  })

  it('turns a desktop failure to save the console into the API error', async () => {
    ;(window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {}
    invoke.mockRejectedValueOnce({ code: 'not_found', message: 'execution not found' })
    const error = await saveConsole('gone').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('not_found')
  })
})

describe('tauri transport', () => {
  beforeEach(() => {
    ;(window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {}
  })

  it('gives arguments the shell could not read a stable code', async () => {
    invoke.mockRejectedValueOnce('invalid args `version` for command `get_version`: invalid type: null, expected i64')
    const error = await call('get_version', { id: 'r1', version: Number.NaN }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('invalid_type')
    expect((error as ApiError).message).toContain('invalid args `version`')
    invoke.mockRejectedValueOnce({ code: 'not_found', message: 'no runbook' })
    expect(((await call('get_version', { id: 'r1', version: 2 }).catch((e: unknown) => e)) as ApiError).code).toBe('not_found')
  })

  it('invokes the security commands by their names with the contract\'s arguments', async () => {
    invoke.mockResolvedValue({ items: [] })
    await call('list_audit', { actor: 'bob', limit: 10 })
    await call('update_credential', { id: 'c1', body: { value: 'v' } })
    await call('revoke_api_key', { id: 'k1' })
    expect(invoke.mock.calls).toEqual([
      ['list_audit', { actor: 'bob', limit: 10 }],
      ['update_credential', { id: 'c1', body: { value: 'v' } }],
      ['revoke_api_key', { id: 'k1' }],
    ])
    expect(fetchMock).not.toHaveBeenCalled()
  })

  it('invokes the command with camelCase args and never fetches', async () => {
    invoke.mockResolvedValueOnce({ items: [], total: 0 })
    await call('list_executions', { runbookId: 'rb-1' })
    expect(invoke).toHaveBeenCalledWith('list_executions', { runbookId: 'rb-1' })
    expect(fetchMock).not.toHaveBeenCalled()
  })

  it('normalises a rejection object', async () => {
    invoke.mockRejectedValueOnce({ code: 'invalid_state', message: 'not running' })
    const error = await call('control_execution', { id: 'e1', action: 'pause' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ code: 'invalid_state', message: 'not running' })
  })

  it('filters the shared event channel by execution id and unlistens', async () => {
    const unlisten = vi.fn()
    let handler: (e: { payload: unknown }) => void = () => {}
    listen.mockImplementationOnce((name: string, fn: typeof handler) => {
      expect(name).toBe('execution-event')
      handler = fn
      return Promise.resolve(unlisten)
    })
    invoke.mockResolvedValueOnce(false)
    const events: ExecutionEvent[] = []
    const stop = subscribeExecutionEvents('e1', { onEvent: (e) => events.push(e) })
    await Promise.resolve()
    handler({ payload: { type: 'step_started', execution_id: 'e2', block_id: 'x' } })
    handler({ payload: { type: 'step_started', execution_id: 'e1', block_id: 'a' } })
    handler({ payload: { type: 'bogus', execution_id: 'e1' } })
    expect(events).toEqual([{ type: 'step_started', execution_id: 'e1', block_id: 'a' }])
    stop()
    expect(unlisten).toHaveBeenCalled()
    // A run this process executes needs no follower, so there is none to leave, even once the
    // answer has been handled.
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(invoke.mock.calls).toEqual([['follow_execution', { id: 'e1' }]])
  })

  it('asks the app to follow a run another process executes once listening, and leaves when closed', async () => {
    const order: string[] = []
    listen.mockImplementationOnce(() => {
      order.push('listen')
      return Promise.resolve(() => order.push('unlisten'))
    })
    invoke.mockImplementation((command: string) => {
      order.push(command)
      return Promise.resolve(command === 'follow_execution' ? true : null)
    })
    const stop = subscribeExecutionEvents('e1', { onEvent: () => {} })
    await vi.waitFor(() => expect(order).toEqual(['listen', 'follow_execution']))
    stop()
    expect(order).toEqual(['listen', 'follow_execution', 'unlisten', 'unfollow_execution'])
    expect(invoke).toHaveBeenLastCalledWith('unfollow_execution', { id: 'e1' })
  })

  it('leaves a follower it was granted after it closed', async () => {
    listen.mockResolvedValueOnce(() => {})
    let grant: (followed: boolean) => void = () => {}
    invoke.mockImplementation((command: string) =>
      command === 'follow_execution' ? new Promise((resolve) => (grant = resolve)) : Promise.resolve(null),
    )
    const stop = subscribeExecutionEvents('e1', { onEvent: () => {} })
    await vi.waitFor(() => expect(invoke).toHaveBeenCalledWith('follow_execution', { id: 'e1' }))
    stop()
    expect(invoke).toHaveBeenCalledTimes(1)
    grant(true)
    await vi.waitFor(() => expect(invoke).toHaveBeenLastCalledWith('unfollow_execution', { id: 'e1' }))
  })

  it('reports a follow that failed as a broken stream, and does not ask again when it cannot pass', async () => {
    listen.mockResolvedValueOnce(() => {})
    invoke.mockRejectedValueOnce({ code: 'not_found', message: 'execution not found' })
    const onError = vi.fn()
    subscribeExecutionEvents('e1', { onEvent: () => {}, onError })
    await vi.waitFor(() => expect(onError).toHaveBeenCalledTimes(1))
    expect(onError.mock.calls[0][0]).toBeInstanceOf(ApiError)
    expect(onError.mock.calls[0][0]).toMatchObject({ code: 'not_found' })
    await new Promise((resolve) => setTimeout(resolve, SSE_RECONNECT_MS[0] * 2))
    expect(invoke).toHaveBeenCalledTimes(1)
  })

  it('asks again while following fails for a reason that can pass, reporting the outage once', async () => {
    listen.mockResolvedValueOnce(() => {})
    const failure = { code: 'unavailable', message: 'the database is unavailable' }
    invoke.mockRejectedValueOnce(failure).mockRejectedValueOnce(failure).mockResolvedValue(true)
    const onError = vi.fn()
    const stop = subscribeExecutionEvents('e1', { onEvent: () => {}, onError })
    await vi.waitFor(() => expect(invoke).toHaveBeenCalledTimes(3), { timeout: 5_000 })
    expect(invoke.mock.calls.every(([command]) => command === 'follow_execution')).toBe(true)
    expect(onError).toHaveBeenCalledTimes(1)
    expect(onError.mock.calls[0][0]).toMatchObject({ code: 'unavailable' })
    // Followed at last: leaving tells the app.
    await new Promise((resolve) => setTimeout(resolve, 0))
    stop()
    expect(invoke).toHaveBeenLastCalledWith('unfollow_execution', { id: 'e1' })
  })

  it('stops asking again once closed', async () => {
    vi.useFakeTimers()
    try {
      listen.mockResolvedValueOnce(() => {})
      invoke.mockRejectedValue({ code: 'internal', message: 'internal error' })
      const onError = vi.fn()
      const stop = subscribeExecutionEvents('e1', { onEvent: () => {}, onError })
      // The first failure is handled and the next ask scheduled before the view closes.
      await vi.advanceTimersByTimeAsync(0)
      expect(onError).toHaveBeenCalledTimes(1)
      await vi.advanceTimersByTimeAsync(SSE_RECONNECT_MS[0])
      expect(invoke).toHaveBeenCalledTimes(2)
      stop()
      await vi.advanceTimersByTimeAsync(SSE_RECONNECT_MS[1] * 2)
      expect(invoke).toHaveBeenCalledTimes(2)
    } finally {
      vi.useRealTimers()
    }
  })
})
