// A small modal dialog: focus moves in and stays in until it closes, then goes back where it was;
// Escape and the backdrop close it.

import { createFocusTrap } from 'focus-trap'
import { useEffect, useId, useRef, type ReactNode } from 'react'

interface ModalProps {
  title: string
  onClose: () => void
  children: ReactNode
  footer?: ReactNode
  /** False while closing by accident would lose something (a token shown once): only the dialog's own buttons close it. */
  dismissible?: boolean
  className?: string
}

export function Modal({ title, onClose, children, footer, dismissible = true, className }: ModalProps) {
  const titleId = useId()
  const panel = useRef<HTMLDivElement>(null)

  // The latest onClose, so a parent re-rendering with a new closure neither re-binds the key
  // listener nor moves the focus back to the first field while someone types.
  const close = useRef(onClose)
  useEffect(() => {
    close.current = onClose
  }, [onClose])

  // Tab and Shift+Tab cycle through the dialog's controls; closing it gives the focus back to
  // what had it (the button that opened it). A dialog opened over another traps in turn.
  useEffect(() => {
    const node = panel.current
    if (!node) return
    const first =
      node.querySelector<HTMLElement>('[data-autofocus]') ?? node.querySelector<HTMLElement>('input, select, textarea, button.btn-primary')
    const trap = createFocusTrap(node, {
      initialFocus: first ?? undefined,
      fallbackFocus: node,
      // Escape and the backdrop are the dialog's own to handle (a dialog may refuse them).
      escapeDeactivates: false,
      allowOutsideClick: true,
      delayInitialFocus: false,
      // At once, before a dialog that replaces this one takes the focus.
      delayReturnFocus: false,
      tabbableOptions: { displayCheck: 'full-native' },
    })
    trap.activate()
    return () => {
      trap.deactivate()
    }
  }, [])

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape' && dismissible) close.current()
    }
    document.addEventListener('keydown', onKey)
    return () => document.removeEventListener('keydown', onKey)
  }, [dismissible])

  return (
    <div className="modal-backdrop" onMouseDown={(e) => dismissible && e.target === e.currentTarget && onClose()}>
      <div className={className ? `modal ${className}` : 'modal'} role="dialog" aria-modal="true" aria-labelledby={titleId} ref={panel} tabIndex={-1}>
        <h2 id={titleId} className="modal-title">
          {title}
        </h2>
        <div className="modal-body">{children}</div>
        {footer && <div className="modal-footer">{footer}</div>}
      </div>
    </div>
  )
}
