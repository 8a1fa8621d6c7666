// CodeMirror 6 with shell highlighting for command scripts.

import { StreamLanguage } from '@codemirror/language'
import { shell } from '@codemirror/legacy-modes/mode/shell'
import { EditorView } from '@codemirror/view'
import CodeMirror from '@uiw/react-codemirror'
import { useMemo } from 'react'
import { useReadOnly } from '../components/readOnly'
import { useTheme } from '../theme'

const shellLanguage = StreamLanguage.define(shell)

export function ScriptEditor({ value, onChange, label }: { value: string; onChange: (v: string) => void; label: string }) {
  const [theme] = useTheme()
  // Read only sets the state's readOnly facet: every edit is refused, yet the editor keeps its
  // focus, cursor, selection and copy (making it not editable would lose keyboard selection).
  const readOnly = useReadOnly()
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
        readOnly={readOnly}
        minHeight="72px"
        maxHeight="420px"
        placeholder="echo 'hello'"
        basicSetup={{ foldGutter: false, highlightActiveLine: false, autocompletion: false }}
      />
    </div>
  )
}
