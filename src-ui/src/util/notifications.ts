// Browser notifications for a run that waits for someone to acknowledge a step. The desktop app
// raises its own, natively, for every run it executes; a browser can only tell about the run it
// shows, and only once the user has allowed notifications for the site.

import { isTauri } from '../api/transport'

/** Longest excerpt of a step's instructions shown, in characters (as the desktop app shows). */
const EXCERPT = 140

function available(): boolean {
  return !isTauri() && typeof window !== 'undefined' && 'Notification' in window
}

/** Asks, on a user's action (starting a run), whether runs may notify; asked once per site. */
export function askToNotify(): void {
  if (available() && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {})
  }
}

/**
 * Template markers, as the server's `is_template` knows them (runbooks have no `{# #}` comments): a
 * line holding them is shown rendered by the run, which a page cannot do.
 */
const TEMPLATED = /\{\{|\{%/

/**
 * The title and body telling that `runbook` waits at step `blockId` with instructions `text` (as
 * written in the runbook's version): the first line is quoted unless it holds template markers.
 */
export function waitingNotice(runbook: string, blockId: string, text: string | undefined): { title: string; body: string } {
  const first =
    (text ?? '')
      .split('\n')
      .map((l) => l.replace(/^[#>\-*\s]+/, '').trim())
      .find((l) => l !== '') ?? ''
  const line = TEMPLATED.test(first) ? '' : first
  const chars = Array.from(line)
  const excerpt = chars.length > EXCERPT ? `${chars.slice(0, EXCERPT).join('')}…` : line
  return {
    title: `“${runbook}” waits for you`,
    body: excerpt ? `Step “${blockId}” needs your acknowledgement: ${excerpt}` : `Step “${blockId}” needs your acknowledgement.`,
  }
}

/** Shows that a run waits at a step, when the user allowed it; false when nothing was shown. */
export function notifyWaiting(executionId: string, runbook: string, blockId: string, text: string | undefined): boolean {
  if (!available() || Notification.permission !== 'granted') return false
  const { title, body } = waitingNotice(runbook, blockId, text)
  try {
    // The tag replaces an earlier notice of the same wait instead of stacking another.
    new Notification(title, { body, tag: `runbook-studio-${executionId}-${blockId}` })
    return true
  } catch {
    // Some browsers allow notifications only from a service worker: the banner still tells.
    return false
  }
}
