// The run console: xterm.js (ANSI colours, follows the tail, large scrollback) fed by an
// OutputStream, plus a visually hidden plain-text mirror that tests and screen readers can read.

import { FitAddon } from '@xterm/addon-fit'
import { SearchAddon, type ISearchOptions } from '@xterm/addon-search'
import { Terminal, type ITheme } from '@xterm/xterm'
import '@xterm/xterm/css/xterm.css'
import { Search } from 'lucide-react'
import { useEffect, useRef, useState, type KeyboardEvent } from 'react'
import { executionOutput, type OutputStream } from '../api/output'
import type { ExecutionEvent } from '../api/types'
import { useTheme, type Theme } from '../theme'
import { formatBytes } from '../util/format'

/** The mirror keeps at most this many characters (the tail); xterm keeps its own scrollback. */
const MIRROR_LIMIT = 1_000_000

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
}

export function Console({ executionId, finished, onEvent }: ConsoleProps) {
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
  const [bytes, setBytes] = useState(0)
  const [streamBroken, setStreamBroken] = useState(false)
  const [theme] = useTheme()

  useEffect(() => {
    const element = host.current
    const pre = mirror.current
    if (!element) return
    const term = new Terminal({
      convertEol: true,
      disableStdin: true,
      scrollback: 100_000,
      fontSize: 13,
      lineHeight: 1.25,
      fontFamily: 'ui-monospace, SFMono-Regular, "JetBrains Mono", Menlo, Consolas, "Liberation Mono", monospace',
      cursorInactiveStyle: 'none',
      theme: THEMES.light,
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

    const output = executionOutput(executionId, {
      onText: (text) => {
        term.write(text)
        if (pre) {
          pre.append(text)
          if (pre.childNodes.length > 512) {
            const all = pre.textContent ?? ''
            pre.textContent = all.length > MIRROR_LIMIT ? all.slice(-MIRROR_LIMIT) : all
          }
        }
        setBytes(output.length)
      },
      onEvent: (event) => onEventRef.current?.(event),
      onStreamError: () => setStreamBroken(true),
    })
    stream.current = output
    output.start()
    return () => {
      output.close()
      observer.disconnect()
      term.dispose()
      terminal.current = null
      stream.current = null
      search.current = null
      if (pre) pre.textContent = ''
    }
  }, [executionId])

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
        <span className="console-meta">{finished ? 'complete' : streamBroken ? 'polling' : 'live'} · {formatBytes(bytes)}</span>
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
      <pre className="visually-hidden" data-testid="console-text" ref={mirror} />
    </section>
  )
}
