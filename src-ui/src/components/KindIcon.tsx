// The icon and colour of each block kind.

import { BookOpen, GitBranch, Globe, Timer, SquareTerminal } from 'lucide-react'
import type { BlockKind } from '../api/types'

const ICONS: Record<BlockKind, typeof BookOpen> = {
  instruction: BookOpen,
  command: SquareTerminal,
  api_call: Globe,
  conditional: GitBranch,
  timer: Timer,
}

export function KindIcon({ kind, size = 16 }: { kind: BlockKind; size?: number }) {
  const Icon = ICONS[kind] ?? BookOpen
  return (
    <span className={`kind-icon kind-${kind}`} aria-hidden>
      <Icon size={size} />
    </span>
  )
}
