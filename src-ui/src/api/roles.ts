// What the signed-in user's role allows, so controls the server would refuse are disabled up
// front (with the role they need) rather than failing with a 403 afterwards.

import { useMe } from './queries'
import { ROLES, type Role } from './types'

/** True when `role` is `needed` or a higher one (viewer < operator < editor < admin). */
export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed)
}

/** Why a user with `role` may not do what needs `needed`, or null when they may. */
export function roleRefusal(role: Role | undefined, needed: Role): string | null {
  if (role === undefined || roleAtLeast(role, needed)) return null
  const higher = needed === 'admin' ? '' : ' or higher'
  return `Needs the ${needed} role${higher}; you are signed in as ${role}.`
}

/**
 * Null when the signed-in user may do what needs `needed`, else the sentence to show on the
 * disabled control. While the role is not known yet, nothing is refused (the server still decides).
 */
export function useRoleRefusal(needed: Role): string | null {
  const me = useMe()
  return roleRefusal(me.data?.role, needed)
}
