import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it, vi } from 'vitest'
import type { Param } from '../api/types'
import { RunDialog } from './RunDialog'

const params: Param[] = [
  { name: 'service', type: 'string', default: null, required: true, description: 'The systemd unit to restart' },
  { name: 'replicas', type: 'number', default: null, required: false },
  { name: 'region', type: 'string', default: 'eu-west-1', required: false },
  { name: 'dry_run', type: 'boolean', default: false, required: false },
]

function renderDialog(onRun = vi.fn()) {
  render(
    <RunDialog
      runbookName="Restart payments"
      version={3}
      params={params}
      unsavedChanges={false}
      starting={false}
      error={null}
      onRun={onRun}
      onClose={() => {}}
    />,
  )
  return onRun
}

describe('RunDialog', () => {
  it('leaves blank fields out of the run so the server applies defaults', async () => {
    const user = userEvent.setup()
    const onRun = renderDialog()
    await user.type(screen.getByLabelText('service'), 'payments')
    await user.clear(screen.getByLabelText('region'))
    await user.click(screen.getByRole('button', { name: /Start run/ }))
    expect(onRun).toHaveBeenCalledWith({ service: 'payments', dry_run: false })
  })

  it('sends a typed number as a number', async () => {
    const user = userEvent.setup()
    const onRun = renderDialog()
    await user.type(screen.getByLabelText('service'), 'payments')
    await user.type(screen.getByLabelText('replicas'), '3')
    await user.click(screen.getByRole('button', { name: /Start run/ }))
    expect(onRun).toHaveBeenCalledWith({ service: 'payments', replicas: 3, region: 'eu-west-1', dry_run: false })
  })

  it('marks required parameters even when they have a description, and says why Start is disabled', async () => {
    const user = userEvent.setup()
    renderDialog()
    expect(screen.getByText('The systemd unit to restart · Required')).toBeInTheDocument()
    const start = screen.getByRole('button', { name: /Start run/ })
    expect(start).toBeDisabled()
    expect(start).toHaveAttribute('title', 'Fill in service to start.')
    expect(start).toHaveAccessibleDescription('Fill in service to start.')

    await user.type(screen.getByLabelText('service'), 'payments')
    expect(start).toBeEnabled()
    expect(start).not.toHaveAttribute('title')
    expect(screen.queryByText('Fill in service to start.')).toBeNull()
  })
})
