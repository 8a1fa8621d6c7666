// The run console: xterm.js (ANSI colours, follows the tail, bounded scrollback) fed by an
// OutputStream through a WriteBatcher (one bounded slice per animation frame, stored pages read
// only as fast as the terminal parses them), plus a hidden plain-text copy of the tail for tests
// and tools (hidden, not merely clipped: laying out half a megabyte of text on every batch would
// cost more than the terminal itself). A huge stored console opens at its tail.

import { FitAddon } from '@xterm/addon-fit'
import { SearchAddon, type ISearchOptions } from '@xterm/addon-search'
import { Terminal, type ITheme } from '@xterm/xterm'
import '@xterm/xterm/css/xterm.css'
import { Search } from 'lucide-react'
import { useEffect, useRef, useState, type KeyboardEvent } from 'react'
import { normalizeError, type ApiError } from '../api/errors'
import { executionOutput, type OutputStream } from '../api/output'
import type { ExecutionEvent } from '../api/types'
import { readTheme, useTheme, type Theme } from '../theme'
import { formatBytes } from '../util/format'
import { countLines, WriteBatcher } from './writeBatcher'

/** Lines xterm keeps: enough for any incident, bounded so a runaway command cannot eat the memory. */
export const SCROLLBACK_LINES = 50_000
/** The mirror keeps about this many characters of the tail. */
const MIRROR_LIMIT = 512 * 1024
/** A stored console larger than this opens at its tail... */
const TAIL_THRESHOLD = 32 * 1024 * 1024
/** ...this many bytes before its end. */
const TAIL_BYTES = 8 * 1024 * 1024
/** How often the size and line counters are redrawn while output pours in. */
const STATS_INTERVAL_MS = 250

const THEMES: Record<Theme, ITheme> = {
  light: {
    background: '#0f1520',
    foreground: '#d7dde8',
    cursor: '#0f1520',
    selectionBackground: '#33415580',
  },
  dark: {
    background: '#0a0e14',
    foreground: '#d7dde8',
    cursor: '#0a0e14',
    selectionBackground: '#33415580',
  },
}

const SEARCH_OPTIONS: ISearchOptions = {
  decorations: {
    matchBackground: '#854d0e',
    matchOverviewRuler: '#eab308',
    activeMatchBackground: '#ca8a04',
    activeMatchColorOverviewRuler: '#facc15',
  },
}

interface ConsoleProps {
  executionId: string
  finished: boolean
  onEvent?: (event: ExecutionEvent) => void
  /** The console's size when the view opened (the steps' output bytes), to open a huge one at its tail. */
  initialBytes?: number
}

/** Appends to the mirror and drops its oldest pieces beyond the limit. */
function appendToMirror(pre: HTMLPreElement, text: string, size: { chars: number }) {
  pre.append(text)
  size.chars += text.length
  while (size.chars > MIRROR_LIMIT && pre.childNodes.length > 1) {
    const first = pre.firstChild
    if (!first) break
    size.chars -= first.textContent?.length ?? 0
    first.remove()
  }
}

export function Console({ executionId, finished, onEvent, initialBytes = 0 }: ConsoleProps) {
  const host = useRef<HTMLDivElement>(null)
  const mirror = useRef<HTMLPreElement>(null)
  const terminal = useRef<Terminal | null>(null)
  const stream = useRef<OutputStream | null>(null)
  const search = useRef<SearchAddon | null>(null)
  const [query, setQuery] = useState('')
  const [matches, setMatches] = useState<{ index: number; count: number } | null>(null)
  const onEventRef = useRef(onEvent)
  useEffect(() => {
    onEventRef.current = onEvent
  }, [onEvent])
  const [stats, setStats] = useState({ bytes: 0, lines: 0 })
  const [streamBroken, setStreamBroken] = useState(false)
  /** Why the stored output could not be read, until a read succeeds. */
  const [readError, setReadError] = useState<ApiError | null>(null)
  const [retrying, setRetrying] = useState(false)
  const [theme] = useTheme()
  // Decided once per run: later growth of a live console is followed, not skipped.
  const [tailStart] = useState(() => (initialBytes > TAIL_THRESHOLD ? initialBytes - TAIL_BYTES : 0))
  const [fromStart, setFromStart] = useState(false)
  const startOffset = fromStart ? 0 : tailStart

  useEffect(() => {
    const element = host.current
    const pre = mirror.current
    if (!element) return
    const term = new Terminal({
      convertEol: true,
      disableStdin: true,
      scrollback: SCROLLBACK_LINES,
      fontSize: 13,
      lineHeight: 1.25,
      fontFamily: 'ui-monospace, SFMono-Regular, "JetBrains Mono", Menlo, Consolas, "Liberation Mono", monospace',
      cursorInactiveStyle: 'none',
      theme: THEMES[readTheme()],
      // Needed for the search addon's match highlighting.
      allowProposedApi: true,
    })
    const fit = new FitAddon()
    term.loadAddon(fit)
    const searchAddon = new SearchAddon()
    term.loadAddon(searchAddon)
    searchAddon.onDidChangeResults(({ resultIndex, resultCount }) => setMatches({ index: resultIndex, count: resultCount }))
    search.current = searchAddon
    term.open(element)
    const refit = () => {
      try {
        fit.fit()
      } catch {
        // Not laid out yet (hidden); the next resize fits it.
      }
    }
    refit()
    const observer = new ResizeObserver(refit)
    observer.observe(element)
    terminal.current = term

    const mirrorSize = { chars: 0 }
    let lines = 0
    let statsTimer: ReturnType<typeof setTimeout> | null = null
    // At most one redraw of the counters per interval: the first at once, the last when it ends.
    const showStats = () => {
      if (statsTimer !== null) return
      setStats({ bytes: output.length, lines })
      statsTimer = setTimeout(() => {
        statsTimer = null
        setStats({ bytes: output.length, lines })
      }, STATS_INTERVAL_MS)
    }
    const batcher = new WriteBatcher(
      { write: (data, done) => term.write(data, done) },
      {
        onBatch: (text) => {
          if (pre) appendToMirror(pre, text, mirrorSize)
          lines += countLines(text)
          showStats()
        },
      },
    )
    if (startOffset > 0) {
      batcher.push(`\x1b[2m… ${formatBytes(startOffset)} of earlier output not loaded: "Load all" reads it from the start.\x1b[0m\r\n`)
    }
    const output = executionOutput(executionId, {
      onText: (text) => batcher.push(text),
      backpressure: () => batcher.drained(),
      // An event after a broken stream means it was opened again: live, not polling.
      onEvent: (event) => {
        setStreamBroken(false)
        onEventRef.current?.(event)
      },
      onStreamError: () => setStreamBroken(true),
      onReadError: (error) => setReadError(normalizeError(error)),
      onRead: () => setReadError(null),
      startOffset,
    })
    stream.current = output
    output.start()
    return () => {
      output.close()
      batcher.close()
      if (statsTimer !== null) clearTimeout(statsTimer)
      observer.disconnect()
      term.dispose()
      terminal.current = null
      stream.current = null
      search.current = null
      setReadError(null)
      if (pre) pre.textContent = ''
    }
  }, [executionId, startOffset])

  useEffect(() => {
    if (terminal.current) terminal.current.options.theme = THEMES[theme]
  }, [theme])

  // When the run ends, read whatever the live stream may have missed.
  useEffect(() => {
    if (finished) void stream.current?.catchUp()
  }, [finished])

  // Without a live stream, poll the stored output while the run goes on.
  useEffect(() => {
    if (!streamBroken || finished) return
    const timer = setInterval(() => void stream.current?.catchUp(), 1000)
    return () => clearInterval(timer)
  }, [streamBroken, finished])

  const retryRead = async () => {
    const output = stream.current
    if (!output) return
    setRetrying(true)
    try {
      await output.catchUp()
    } finally {
      setRetrying(false)
    }
  }

  const find = (term: string, backwards = false) => {
    const addon = search.current
    if (!addon) return
    if (!term) {
      addon.clearDecorations()
      setMatches(null)
    } else if (backwards) addon.findPrevious(term, SEARCH_OPTIONS)
    else addon.findNext(term, { ...SEARCH_OPTIONS, incremental: true })
  }

  const onSearchKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === 'Enter') {
      e.preventDefault()
      if (e.shiftKey) find(query, true)
      else search.current?.findNext(query, SEARCH_OPTIONS)
    } else if (e.key === 'Escape') {
      setQuery('')
      find('')
    }
  }

  return (
    <section className="console" aria-label="Console">
      <header className="console-header">
        <span className="console-title">Console</span>
        <span className={`live-dot${finished ? '' : ' is-live'}`} aria-hidden />
        <span className="console-meta" data-testid="console-meta">
          {finished ? 'complete' : streamBroken ? 'polling' : 'live'} · {formatBytes(stats.bytes)} ·{' '}
          {stats.lines > SCROLLBACK_LINES ? (
            <abbr title={`The console keeps the last ${SCROLLBACK_LINES.toLocaleString()} lines; search covers those. Save console saves every line.`} data-testid="console-trimmed">
              {stats.lines.toLocaleString()} lines
            </abbr>
          ) : (
            `${stats.lines.toLocaleString()} lines`
          )}
        </span>
        {startOffset > 0 && (
          <>
            <span className="console-meta console-tail-note" title={`The console opened at its tail: its first ${formatBytes(startOffset)} are not loaded. Save console saves all of it.`}>
              {formatBytes(startOffset)} skipped
            </span>
            <button type="button" className="console-btn" onClick={() => setFromStart(true)} title="Read the whole console from its first byte">
              Load all
            </button>
          </>
        )}
        {readError && (
          <>
            <span className="console-meta console-error" role="alert" title={readError.message}>
              Output could not be read: {readError.message}
            </span>
            <button type="button" className="console-btn" onClick={() => void retryRead()} disabled={retrying} title="Read the stored output again">
              {retrying ? 'Retrying…' : 'Retry'}
            </button>
          </>
        )}
        <span className="spacer" />
        <label className="console-search">
          <Search size={13} aria-hidden />
          <input
            type="search"
            aria-label="Search console"
            placeholder="Search output"
            value={query}
            onChange={(e) => {
              setQuery(e.target.value)
              find(e.target.value)
            }}
            onKeyDown={onSearchKey}
          />
          {query && matches && (
            <span className="console-search-count">{matches.count === 0 ? 'none' : `${matches.index + 1}/${matches.count}`}</span>
          )}
        </label>
      </header>
      <div className="console-body" data-testid="console" ref={host} />
      <pre hidden data-testid="console-text" ref={mirror} />
    </section>
  )
}
