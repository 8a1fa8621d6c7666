// Shown above a page whose data is on screen while its latest refresh fails: the page and its
// controls stay usable, and the banner says the data may be out of date.

import { WifiOff } from 'lucide-react'
import { normalizeError } from '../api/errors'

interface ConnectionBannerProps {
  error: unknown
  /** True when the page refreshes by itself (a live run polls); otherwise a button tries again. */
  retrying: boolean
  /** True while a refresh is under way. */
  fetching: boolean
  onRetry: () => void
}

export function ConnectionBanner({ error, retrying, fetching, onRetry }: ConnectionBannerProps) {
  const apiError = normalizeError(error)
  const unreachable = apiError.status === undefined || apiError.status >= 500
  const title = unreachable ? 'Connection lost' : 'Could not refresh'
  return (
    <div className="banner banner-warning" role="status" data-testid="connection-banner">
      <WifiOff size={18} aria-hidden className="banner-icon" />
      <div className="banner-body">
        <strong>{retrying ? `${title} — retrying…` : `${title} — showing what was loaded last.`}</strong>
        <div>{apiError.message}</div>
        {!retrying && (
          <div className="banner-actions">
            <button type="button" className="btn btn-secondary btn-sm" disabled={fetching} onClick={onRetry}>
              {fetching ? 'Trying…' : 'Try again'}
            </button>
          </div>
        )}
      </div>
    </div>
  )
}
