// A write-only secret field: masked until "Show value" is pressed, never autocompleted or
// spell-checked. Multi-line secrets (SSH keys) get a textarea that masks its text the same way.

import { Eye, EyeOff } from 'lucide-react'
import { useState } from 'react'

interface SecretInputProps {
  id: string
  value: string
  onChange: (value: string) => void
  multiline?: boolean
  invalid?: boolean
  placeholder?: string
  describedBy?: string
}

export function SecretInput({ id, value, onChange, multiline, invalid, placeholder, describedBy }: SecretInputProps) {
  const [shown, setShown] = useState(false)
  const common = {
    id,
    value,
    placeholder,
    autoComplete: 'off',
    spellCheck: false,
    autoCapitalize: 'off',
    autoCorrect: 'off',
    'aria-invalid': invalid || undefined,
    'aria-describedby': describedBy,
    'data-1p-ignore': true,
    'data-lpignore': 'true',
  } as const
  return (
    <div className={`secret-input${multiline ? ' secret-input-multiline' : ''}`}>
      {multiline ? (
        <textarea
          {...common}
          className={`input textarea mono${shown ? '' : ' secret-masked'}`}
          rows={8}
          onChange={(e) => onChange(e.target.value)}
        />
      ) : (
        <input {...common} className="input mono" type={shown ? 'text' : 'password'} onChange={(e) => onChange(e.target.value)} />
      )}
      <button
        type="button"
        className="icon-btn secret-toggle"
        aria-label={shown ? 'Hide value' : 'Show value'}
        title={shown ? 'Hide value' : 'Show value'}
        onClick={() => setShown(!shown)}
      >
        {shown ? <EyeOff size={16} /> : <Eye size={16} />}
      </button>
    </div>
  )
}
