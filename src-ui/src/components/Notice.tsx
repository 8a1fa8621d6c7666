// A short confirmation of what just happened ("Credential created."), dismissible.

import { CircleCheck, X } from 'lucide-react'
import type { ReactNode } from 'react'

export function Notice({ children, onDismiss }: { children: ReactNode; onDismiss: () => void }) {
  return (
    <div className="banner banner-success" role="status">
      <CircleCheck size={18} aria-hidden className="banner-icon" />
      <div className="banner-body grow">{children}</div>
      <button type="button" className="icon-btn icon-btn-sm" aria-label="Dismiss" onClick={onDismiss}>
        <X size={14} />
      </button>
    </div>
  )
}
