// A read-only value with a Copy button (for a token that is shown once).

import { Check, Copy } from 'lucide-react'
import { useRef, useState } from 'react'

export function CopyBox({ value, label }: { value: string; label: string }) {
  const input = useRef<HTMLInputElement>(null)
  const [state, setState] = useState<'idle' | 'copied' | 'manual'>('idle')
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setState('copied')
    } catch {
      // No clipboard access (an insecure origin, a denied permission): select it for Ctrl+C.
      input.current?.select()
      setState('manual')
    }
  }
  return (
    <div className="copy-box">
      <div className="copy-box-row">
        <input
          ref={input}
          className="input mono copy-box-value"
          readOnly
          value={value}
          aria-label={label}
          spellCheck={false}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" className="btn btn-secondary" onClick={() => void copy()}>
          {state === 'copied' ? <Check size={16} aria-hidden /> : <Copy size={16} aria-hidden />}
          {state === 'copied' ? 'Copied' : 'Copy'}
        </button>
      </div>
      {state === 'manual' && <div className="field-hint">Selected: press Ctrl+C (⌘C) to copy.</div>}
    </div>
  )
}
