// CodeMirror 6 with shell highlighting for command scripts.

import { StreamLanguage } from '@codemirror/language'
import { shell } from '@codemirror/legacy-modes/mode/shell'
import { EditorView } from '@codemirror/view'
import CodeMirror from '@uiw/react-codemirror'
import { useMemo } from 'react'
import { useTheme } from '../theme'

const shellLanguage = StreamLanguage.define(shell)

export function ScriptEditor({ value, onChange, label }: { value: string; onChange: (v: string) => void; label: string }) {
  const [theme] = useTheme()
  const extensions = useMemo(
    () => [shellLanguage, EditorView.lineWrapping, EditorView.contentAttributes.of({ 'aria-label': label })],
    [label],
  )
  return (
    <div className="script-editor">
      <CodeMirror
        value={value}
        onChange={onChange}
        extensions={extensions}
        theme={theme}
        minHeight="72px"
        maxHeight="420px"
        placeholder="echo 'hello'"
        basicSetup={{ foldGutter: false, highlightActiveLine: false, autocompletion: false }}
      />
    </div>
  )
}
