// The inline editor of each block kind. Each editor shows the server's errors on the field they
// name; a conditional's branches are rendered by the card (`renderBranch`), since they hold cards.

import { useState, type ReactNode } from 'react'
import type {
  ApiCallBlock,
  Block,
  Branch,
  CommandBlock,
  ConditionalBlock,
  FailurePolicy,
  FieldError,
  HttpMethod,
  InstructionBlock,
  Shell,
  TimerBlock,
} from '../api/types'
import { Field } from '../components/Field'
import { KeyValueEditor } from '../components/KeyValueEditor'
import { NumberListInput } from '../components/ListInput'
import { MarkdownField } from '../components/Markdown'
import { useReadOnly } from '../components/readOnly'
import { formatSeconds } from '../util/format'
import { numberOrNull } from '../util/lists'
import { expressionProblem } from './expression'
import { fieldMessage } from './fieldErrors'
import { ScriptEditor } from './ScriptEditor'
import { hostFromTemplate } from './urlHost'

interface EditorProps<B extends Block> {
  block: B
  onChange: (block: B) => void
  /** Server errors by field name. */
  errors: Map<string, FieldError[]>
}

/**
 * A server error about a field while the field still holds the value it was about; an edit hides
 * it. Errors of a new save show again, even with the same message.
 */
function useFreshError(errors: Map<string, FieldError[]>, field: string, value: string): string | undefined {
  const list = errors.get(field)
  const [seen, setSeen] = useState({ list, value })
  if (seen.list !== list) {
    setSeen({ list, value })
    return fieldMessage(errors, field)
  }
  return value === seen.value ? fieldMessage(errors, field) : undefined
}

/** Environment variable names a shell accepts. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export function InstructionEditor({ block, onChange, errors }: EditorProps<InstructionBlock>) {
  const readOnly = useReadOnly()
  return (
    <>
      <MarkdownField
        label="Instructions"
        value={block.text}
        rows={4}
        placeholder="## What to check&#10;Explain the step in markdown."
        error={fieldMessage(errors, 'text')}
        onChange={(text) => onChange({ ...block, text })}
      />
      <label className="checkbox">
        <input
          type="checkbox"
          checked={block.confirm}
          disabled={readOnly}
          onChange={(e) => onChange({ ...block, confirm: e.target.checked })}
        />
        Wait for a person to acknowledge this step
      </label>
    </>
  )
}

function FailureSelect({ value, onChange, error }: { value: FailurePolicy; onChange: (v: FailurePolicy) => void; error?: string }) {
  const readOnly = useReadOnly()
  return (
    <Field label="On failure" error={error}>
      {(id) => (
        <select id={id} className="input" value={value} disabled={readOnly} onChange={(e) => onChange(e.target.value as FailurePolicy)}>
          <option value="stop">Stop the run</option>
          <option value="continue">Continue</option>
        </select>
      )}
    </Field>
  )
}

function TimeoutField({ value, onChange, error }: { value: number | null; onChange: (v: number | null) => void; error?: string }) {
  return <SecondsField label="Timeout (seconds)" min={1} placeholder="none" value={value} onChange={onChange} error={error} />
}

/** A number of seconds where an empty value means "not set" (null). */
function SecondsField(props: {
  label: string
  min: number
  max?: number
  placeholder: string
  value: number | null
  onChange: (v: number | null) => void
  error?: string
  title?: string
}) {
  const readOnly = useReadOnly()
  return (
    <Field label={props.label} className="w-sm" error={props.error}>
      {(id) => (
        <input
          id={id}
          className="input"
          type="number"
          min={props.min}
          max={props.max}
          step={1}
          value={props.value ?? ''}
          placeholder={props.placeholder}
          title={props.title}
          readOnly={readOnly}
          onChange={(e) => props.onChange(numberOrNull(e.target.value))}
        />
      )}
    </Field>
  )
}

/** A monospace text input where an empty value means "not set" (null). */
function OptionalTextField(props: {
  label: string
  placeholder: string
  value: string | null
  onChange: (v: string | null) => void
  error?: string
  className?: string
}) {
  const readOnly = useReadOnly()
  return (
    <Field label={props.label} error={props.error} className={props.className}>
      {(id) => (
        <input
          id={id}
          className="input mono"
          value={props.value ?? ''}
          placeholder={props.placeholder}
          spellCheck={false}
          readOnly={readOnly}
          onChange={(e) => props.onChange(e.target.value === '' ? null : e.target.value)}
        />
      )}
    </Field>
  )
}

function ScriptHint() {
  return (
    <>
      <code>{'{{ params.x }}'}</code> and <code>{'{{ steps.id.outputs.KEY }}'}</code> are shell-quoted automatically;{' '}
      <code>{'{{ x | safe }}'}</code> inserts the raw text. To publish outputs, write <code>KEY=VALUE</code> lines to the
      file named by <code>$RUNBOOK_OUTPUT</code>.
    </>
  )
}

export function CommandEditor({ block, onChange, errors }: EditorProps<CommandBlock>) {
  const readOnly = useReadOnly()
  const scriptError = useFreshError(errors, 'script', block.script)
  return (
    <>
      <div className={`field${scriptError ? ' field-invalid' : ''}`}>
        <span className="field-label">Script</span>
        <ScriptEditor label="Script" value={block.script} onChange={(script) => onChange({ ...block, script })} />
        {scriptError && (
          <div className="field-error" role="alert">
            {scriptError}
          </div>
        )}
        <div className="field-hint">
          <ScriptHint />
        </div>
      </div>
      <div className="field-row">
        <Field label="Shell" className="w-xs" error={fieldMessage(errors, 'shell')}>
          {(id) => (
            <select
              id={id}
              className="input"
              value={block.shell}
              disabled={readOnly}
              onChange={(e) => onChange({ ...block, shell: e.target.value as Shell })}
            >
              <option value="sh">sh</option>
              <option value="bash">bash</option>
              <option value="zsh">zsh</option>
            </select>
          )}
        </Field>
        <TimeoutField
          value={block.timeout_secs ?? null}
          error={fieldMessage(errors, 'timeout_secs')}
          onChange={(timeout_secs) => onChange({ ...block, timeout_secs })}
        />
        <SecondsField
          label="Stop grace (seconds)"
          min={0}
          placeholder="default"
          title="Between the SIGTERM a stop or the timeout sends the step's processes and the SIGKILL that follows (5 s unless the app or server is set otherwise)"
          max={600}
          value={block.stop_grace_secs ?? null}
          error={fieldMessage(errors, 'stop_grace_secs')}
          onChange={(stop_grace_secs) => {
            // Unset, the field is left out, as the server stores it: clearing it changes nothing.
            const { stop_grace_secs: _, ...rest } = block
            onChange(stop_grace_secs === null ? rest : { ...rest, stop_grace_secs })
          }}
        />
        <Field label="Expected exit codes" className="w-sm" error={fieldMessage(errors, 'expect_exit_codes')}>
          {(id) => (
            <NumberListInput
              id={id}
              value={block.expect_exit_codes ?? [0]}
              onChange={(expect_exit_codes) => onChange({ ...block, expect_exit_codes })}
            />
          )}
        </Field>
        <FailureSelect
          value={block.on_failure ?? 'stop'}
          error={fieldMessage(errors, 'on_failure')}
          onChange={(on_failure) => onChange({ ...block, on_failure })}
        />
        <OptionalTextField
          label="Working directory"
          placeholder="(default)"
          className="grow"
          value={block.workdir ?? null}
          error={fieldMessage(errors, 'workdir')}
          onChange={(workdir) => onChange({ ...block, workdir })}
        />
      </div>
      <div className="field-columns">
        <GroupField label="Environment" error={fieldMessage(errors, 'env')} hint="Variables set for the script; values may use templates.">
          <KeyValueEditor
            noun="Variable"
            value={block.env ?? {}}
            keyPattern={ENV_NAME}
            keyPlaceholder="NAME"
            valuePlaceholder="value"
            onChange={(env) => onChange({ ...block, env })}
          />
        </GroupField>
        <GroupField
          label="Secrets"
          error={fieldMessage(errors, 'secrets')}
          hint="Environment variable ← credential name. Decrypted only at run time and masked in the output."
        >
          <KeyValueEditor
            noun="Secret"
            value={block.secrets ?? {}}
            keyPattern={ENV_NAME}
            keyPlaceholder="ENV_NAME"
            valuePlaceholder="credential name"
            onChange={(secrets) => onChange({ ...block, secrets })}
          />
        </GroupField>
      </div>
    </>
  )
}

/** A labelled group of controls that has no single input to tie the label to. */
function GroupField({ label, hint, error, children }: { label: string; hint?: ReactNode; error?: string; children: ReactNode }) {
  return (
    <div className={`field${error ? ' field-invalid' : ''}`} role="group" aria-label={label}>
      <span className="field-label">{label}</span>
      {children}
      {error && (
        <div className="field-error" role="alert">
          {error}
        </div>
      )}
      {hint && <div className="field-hint">{hint}</div>}
    </div>
  )
}

const METHODS: HttpMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

export function ApiCallEditor({ block, onChange, errors }: EditorProps<ApiCallBlock>) {
  const readOnly = useReadOnly()
  const urlError = useFreshError(errors, 'url', block.url)
  const bodyless = block.method === 'GET' || block.method === 'HEAD'
  const bodyError = fieldMessage(errors, 'body')
  return (
    <>
      <div className="request-line">
        <Field label="Method" className="w-xs" error={fieldMessage(errors, 'method')}>
          {(id) => (
            <select
              id={id}
              className="input method"
              value={block.method}
              disabled={readOnly}
              onChange={(e) => onChange({ ...block, method: e.target.value as HttpMethod })}
            >
              {METHODS.map((method) => (
                <option key={method}>{method}</option>
              ))}
            </select>
          )}
        </Field>
        <Field
          label="URL"
          className="grow"
          error={urlError}
          hint={
            block.credential && hostFromTemplate(block.url)
              ? 'The host comes from a template: the credential is sent only if an admin has bound it to the host the run renders.'
              : undefined
          }
        >
          {(id) => (
            <input
              id={id}
              className="input mono"
              value={block.url}
              placeholder="https://api.example.com/health"
              spellCheck={false}
              readOnly={readOnly}
              onChange={(e) => onChange({ ...block, url: e.target.value })}
            />
          )}
        </Field>
      </div>
      <GroupField label="Headers" error={fieldMessage(errors, 'headers')}>
        <KeyValueEditor
          noun="Header"
          value={block.headers ?? {}}
          keyPlaceholder="Accept"
          valuePlaceholder="application/json"
          onChange={(headers) => onChange({ ...block, headers })}
        />
      </GroupField>
      {(!bodyless || block.body !== null || bodyError) && (
        <Field label="Body" error={bodyError} hint={bodyless ? `${block.method} requests usually have no body.` : 'Sent as is; may use templates.'}>
          {(id) => (
            <textarea
              id={id}
              className="input textarea mono"
              rows={3}
              value={block.body ?? ''}
              placeholder='{"service": "{{ params.service }}"}'
              spellCheck={false}
              readOnly={readOnly}
              onChange={(e) => onChange({ ...block, body: e.target.value === '' ? null : e.target.value })}
            />
          )}
        </Field>
      )}
      <div className="field-row">
        <Field label="Expected status" className="w-sm" error={fieldMessage(errors, 'expect_status')}>
          {(id) => (
            <NumberListInput id={id} value={block.expect_status ?? [200]} onChange={(expect_status) => onChange({ ...block, expect_status })} />
          )}
        </Field>
        <TimeoutField
          value={block.timeout_secs ?? null}
          error={fieldMessage(errors, 'timeout_secs')}
          onChange={(timeout_secs) => onChange({ ...block, timeout_secs })}
        />
        <OptionalTextField
          label="Credential"
          placeholder="(none)"
          value={block.credential ?? null}
          error={fieldMessage(errors, 'credential')}
          onChange={(credential) => onChange({ ...block, credential })}
        />
        <FailureSelect
          value={block.on_failure ?? 'stop'}
          error={fieldMessage(errors, 'on_failure')}
          onChange={(on_failure) => onChange({ ...block, on_failure })}
        />
      </div>
    </>
  )
}

function ExpressionHint() {
  return (
    <>
      A CEL expression over <code>params.&lt;name&gt;</code> and{' '}
      <code>steps.&lt;id&gt;.exit_code|stdout|stderr|status|json|duration_ms|outputs.&lt;key&gt;</code>, e.g.{' '}
      <code>steps.health.status == 200 &amp;&amp; params.env == "prod"</code>
    </>
  )
}

interface ConditionalEditorProps extends EditorProps<ConditionalBlock> {
  renderBranch: (branch: Branch) => ReactNode
}

export function ConditionalEditor({ block, onChange, errors, renderBranch }: ConditionalEditorProps) {
  const readOnly = useReadOnly()
  const serverError = useFreshError(errors, 'expr', block.expr)
  const problem = expressionProblem(block.expr)
  const error = serverError ?? problem ?? undefined
  return (
    <>
      <Field label="Expression" error={error} hint={<ExpressionHint />}>
        {(id) => (
          <input
            id={id}
            className={`input mono${error ? ' input-invalid' : ''}`}
            value={block.expr}
            aria-invalid={error !== undefined}
            placeholder="steps.health.status == 200"
            spellCheck={false}
            readOnly={readOnly}
            onChange={(e) => onChange({ ...block, expr: e.target.value })}
          />
        )}
      </Field>
      <div className="branches">
        {(['then', 'else'] as const).map((branch) => (
          <div key={branch} className={`branch branch-${branch}`} role="group" aria-label={`${branch} branch of ${block.id}`}>
            <div className="branch-label">
              {branch === 'then' ? 'Then' : 'Else'}
              <span className="branch-note">{branch === 'then' ? 'when the expression is true' : 'otherwise'}</span>
            </div>
            {fieldMessage(errors, branch) && (
              <div className="field-error" role="alert">
                {fieldMessage(errors, branch)}
              </div>
            )}
            {renderBranch(branch)}
          </div>
        ))}
      </div>
    </>
  )
}

export function TimerEditor({ block, onChange, errors }: EditorProps<TimerBlock>) {
  const readOnly = useReadOnly()
  return (
    <div className="field-row">
      <Field label="Seconds" className="w-timer" error={fieldMessage(errors, 'seconds')} hint={`Waits ${formatSeconds(block.seconds)}; pausing the run freezes it.`}>
        {(id) => (
          <input
            id={id}
            className="input"
            type="number"
            min={1}
            value={Number.isFinite(block.seconds) ? block.seconds : ''}
            readOnly={readOnly}
            onChange={(e) => onChange({ ...block, seconds: numberOrNull(e.target.value) ?? 0 })}
          />
        )}
      </Field>
    </div>
  )
}

interface BlockBodyProps extends EditorProps<Block> {
  renderBranch: (branch: Branch) => ReactNode
}

export function BlockBody({ block, onChange, errors, renderBranch }: BlockBodyProps) {
  switch (block.kind) {
    case 'instruction':
      return <InstructionEditor block={block} onChange={onChange} errors={errors} />
    case 'command':
      return <CommandEditor block={block} onChange={onChange} errors={errors} />
    case 'api_call':
      return <ApiCallEditor block={block} onChange={onChange} errors={errors} />
    case 'conditional':
      return <ConditionalEditor block={block} onChange={onChange} errors={errors} renderBranch={renderBranch} />
    case 'timer':
      return <TimerEditor block={block} onChange={onChange} errors={errors} />
  }
}
