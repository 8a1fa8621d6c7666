// "Are you sure?" for destructive actions: the confirm button names the action, and a refusal
// from the server is shown in the dialog rather than closing it.

import type { ReactNode } from 'react'
import { ErrorBanner } from './ErrorBanner'
import { Modal } from './Modal'

interface ConfirmDialogProps {
  title: string
  confirmLabel: string
  busy: boolean
  error: unknown
  onConfirm: () => void
  onClose: () => void
  children: ReactNode
}

export function ConfirmDialog({ title, confirmLabel, busy, error, onConfirm, onClose, children }: ConfirmDialogProps) {
  return (
    <Modal
      title={title}
      onClose={onClose}
      footer={
        <>
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="btn btn-danger" data-autofocus disabled={busy} onClick={onConfirm}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </>
      }
    >
      {children}
      {error !== null && error !== undefined && <ErrorBanner error={error} title={`${confirmLabel} failed`} />}
    </Modal>
  )
}
