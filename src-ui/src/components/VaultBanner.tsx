// The vault's warning (e.g. no system keychain, so the master key sits in a key file), shown at
// the top of the app until dismissed for this session.

import { ShieldAlert, X } from 'lucide-react'
import { useState } from 'react'
import { useVaultStatus } from '../api/queries'

const DISMISSED = 'runbook-studio.vault-warning-dismissed'

function dismissedWarning(): string | null {
  try {
    return sessionStorage.getItem(DISMISSED)
  } catch {
    return null
  }
}

export function VaultBanner() {
  const vault = useVaultStatus()
  const [dismissed, setDismissed] = useState(dismissedWarning)
  const warning = vault.data?.warning
  // A different warning than the one dismissed shows again.
  if (!warning || dismissed === warning) return null
  return (
    <div className="vault-banner" role="status" data-testid="vault-warning">
      <ShieldAlert size={17} aria-hidden className="vault-banner-icon" />
      <div className="vault-banner-text">
        <strong>Credential vault: </strong>
        {warning}
      </div>
      <button
        type="button"
        className="icon-btn vault-banner-close"
        aria-label="Dismiss vault warning"
        title="Dismiss for this session"
        onClick={() => {
          try {
            sessionStorage.setItem(DISMISSED, warning)
          } catch {
            // Without session storage it is dismissed until the page reloads.
          }
          setDismissed(warning)
        }}
      >
        <X size={16} />
      </button>
    </div>
  )
}
