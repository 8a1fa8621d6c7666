import { render, screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'

const call = vi.fn()
vi.mock('../api/transport', () => ({
  call: (...args: unknown[]) => call(...args),
  subscribeExecutionEvents: () => () => {},
}))

// xterm needs a real layout and canvas; this stand-in only takes what is written to it.
vi.mock('@xterm/xterm', () => ({
  Terminal: class {
    options: Record<string, unknown> = {}
    loadAddon() {}
    open() {}
    write(_data: string, done?: () => void) {
      done?.()
    }
    dispose() {}
  },
}))
vi.mock('@xterm/addon-fit', () => ({ FitAddon: class { fit() {} } }))
vi.mock('@xterm/addon-search', () => ({
  SearchAddon: class {
    onDidChangeResults() {}
  },
}))

import { Console } from './Console'

beforeEach(() => {
  vi.stubGlobal(
    'ResizeObserver',
    class {
      observe() {}
      disconnect() {}
    },
  )
})

afterEach(() => {
  vi.unstubAllGlobals()
  call.mockReset()
})

describe('Console', () => {
  it('shows why a finished run\'s output could not be read and reads it again on Retry', async () => {
    const user = userEvent.setup()
    let failing = true
    call.mockImplementation(async (command: string, args: { offset: number }) => {
      if (command !== 'read_output') throw new Error(`unexpected ${command}`)
      if (failing) throw new ApiError('server_error', 'The output store could not be read.', 500)
      return args.offset === 0
        ? { offset: 0, next_offset: 12, complete: true, text: 'restarted ok' }
        : { offset: args.offset, next_offset: args.offset, complete: true, text: '' }
    })
    render(<Console executionId="run-1" finished />)

    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('Output could not be read: The output store could not be read.')
    failing = false
    await user.click(screen.getByRole('button', { name: 'Retry' }))

    await waitFor(() => expect(screen.getByTestId('console-text')).toHaveTextContent('restarted ok'))
    expect(screen.queryByRole('alert')).toBeNull()
    expect(screen.queryByRole('button', { name: 'Retry' })).toBeNull()
    expect(screen.getByTestId('console-meta')).toHaveTextContent('complete · 12 B')
  })
})
