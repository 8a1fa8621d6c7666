import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { useState } from 'react'
import { describe, expect, it } from 'vitest'
import { Modal } from './Modal'

function Opener() {
  const [open, setOpen] = useState(false)
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Open
      </button>
      <button type="button">Elsewhere</button>
      {open && (
        <Modal
          title="Rename"
          onClose={() => setOpen(false)}
          footer={
            <button type="button" className="btn btn-primary" onClick={() => setOpen(false)}>
              Done
            </button>
          }
        >
          <input aria-label="New name" />
          <button type="button">Check</button>
        </Modal>
      )}
    </>
  )
}

describe('Modal', () => {
  it('keeps Tab and Shift+Tab among its own controls and gives the focus back to its opener when it closes', async () => {
    const user = userEvent.setup()
    render(<Opener />)
    const opener = screen.getByRole('button', { name: 'Open' })
    await user.click(opener)
    expect(screen.getByLabelText('New name')).toHaveFocus()
    await user.tab()
    expect(screen.getByRole('button', { name: 'Check' })).toHaveFocus()
    await user.tab()
    expect(screen.getByRole('button', { name: 'Done' })).toHaveFocus()
    // Past the last control, Tab comes round to the first instead of leaving for the page.
    await user.tab()
    expect(screen.getByLabelText('New name')).toHaveFocus()
    await user.tab({ shift: true })
    expect(screen.getByRole('button', { name: 'Done' })).toHaveFocus()
    await user.keyboard('{Escape}')
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(opener).toHaveFocus()
  })
})
