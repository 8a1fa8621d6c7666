// The inline editor of each block kind.

import type { ApiCallBlock, Block, CommandBlock, ConditionalBlock, FailurePolicy, HttpMethod, InstructionBlock, Shell, TimerBlock } from '../api/types'
import { Field } from '../components/Field'
import { KindIcon } from '../components/KindIcon'
import { HeadersInput, NumberListInput } from '../components/ListInput'
import { MarkdownField } from '../components/Markdown'
import { formatSeconds } from '../util/format'
import { numberOrNull } from '../util/lists'
import { BLOCK_LABELS } from './draft'
import { expressionProblem } from './expression'
import { ScriptEditor } from './ScriptEditor'

interface EditorProps<B extends Block> {
  block: B
  onChange: (block: B) => void
}

export function InstructionEditor({ block, onChange }: EditorProps<InstructionBlock>) {
  return (
    <>
      <MarkdownField
        label="Instructions"
        value={block.text}
        rows={4}
        placeholder="## What to check&#10;Explain the step in markdown."
        onChange={(text) => onChange({ ...block, text })}
      />
      <label className="checkbox">
        <input type="checkbox" checked={block.confirm} onChange={(e) => onChange({ ...block, confirm: e.target.checked })} />
        Wait for a person to acknowledge this step
      </label>
    </>
  )
}

function FailureSelect({ value, onChange }: { value: FailurePolicy; onChange: (v: FailurePolicy) => void }) {
  return (
    <Field label="On failure">
      {(id) => (
        <select id={id} className="input" value={value} onChange={(e) => onChange(e.target.value as FailurePolicy)}>
          <option value="stop">Stop the run</option>
          <option value="continue">Continue</option>
        </select>
      )}
    </Field>
  )
}

function TimeoutField({ value, onChange }: { value: number | null; onChange: (v: number | null) => void }) {
  return (
    <Field label="Timeout (seconds)" className="w-sm">
      {(id) => (
        <input
          id={id}
          className="input"
          type="number"
          min={1}
          value={value ?? ''}
          placeholder="none"
          onChange={(e) => onChange(numberOrNull(e.target.value))}
        />
      )}
    </Field>
  )
}

/** A monospace text input where an empty value means "not set" (null). */
function OptionalTextField(props: { label: string; placeholder: string; value: string | null; onChange: (v: string | null) => void }) {
  return (
    <Field label={props.label}>
      {(id) => (
        <input
          id={id}
          className="input mono"
          value={props.value ?? ''}
          placeholder={props.placeholder}
          onChange={(e) => props.onChange(e.target.value === '' ? null : e.target.value)}
        />
      )}
    </Field>
  )
}

export function CommandEditor({ block, onChange }: EditorProps<CommandBlock>) {
  return (
    <>
      <div className="field">
        <span className="field-label">Script</span>
        <ScriptEditor label="Script" value={block.script} onChange={(script) => onChange({ ...block, script })} />
      </div>
      <div className="field-row">
        <Field label="Shell" className="w-sm">
          {(id) => (
            <select id={id} className="input" value={block.shell} onChange={(e) => onChange({ ...block, shell: e.target.value as Shell })}>
              <option value="sh">sh</option>
              <option value="bash">bash</option>
              <option value="zsh">zsh</option>
            </select>
          )}
        </Field>
        <TimeoutField value={block.timeout_secs ?? null} onChange={(timeout_secs) => onChange({ ...block, timeout_secs })} />
        <Field label="Expected exit codes" className="w-sm">
          {(id) => (
            <NumberListInput
              id={id}
              value={block.expect_exit_codes ?? [0]}
              onChange={(expect_exit_codes) => onChange({ ...block, expect_exit_codes })}
            />
          )}
        </Field>
        <OptionalTextField label="Working directory" placeholder="(default)" value={block.workdir ?? null} onChange={(workdir) => onChange({ ...block, workdir })} />
        <FailureSelect value={block.on_failure ?? 'stop'} onChange={(on_failure) => onChange({ ...block, on_failure })} />
      </div>
    </>
  )
}

const METHODS: HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']

export function ApiCallEditor({ block, onChange }: EditorProps<ApiCallBlock>) {
  const hasBody = block.method !== 'GET' && block.method !== 'HEAD'
  return (
    <>
      <div className="request-line">
        <Field label="Method" className="w-xs">
          {(id) => (
            <select id={id} className="input method" value={block.method} onChange={(e) => onChange({ ...block, method: e.target.value as HttpMethod })}>
              {METHODS.map((method) => (
                <option key={method}>{method}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="URL" className="grow">
          {(id) => (
            <input
              id={id}
              className="input mono"
              value={block.url}
              placeholder="https://api.example.com/health"
              onChange={(e) => onChange({ ...block, url: e.target.value })}
            />
          )}
        </Field>
      </div>
      <Field label="Headers" hint="One per line, as Name: value">
        {(id) => <HeadersInput id={id} value={block.headers ?? {}} onChange={(headers) => onChange({ ...block, headers })} />}
      </Field>
      {hasBody && (
        <Field label="Body">
          {(id) => (
            <textarea
              id={id}
              className="input textarea mono"
              rows={3}
              value={block.body ?? ''}
              onChange={(e) => onChange({ ...block, body: e.target.value === '' ? null : e.target.value })}
            />
          )}
        </Field>
      )}
      <div className="field-row">
        <Field label="Expected status" className="w-sm">
          {(id) => (
            <NumberListInput id={id} value={block.expect_status ?? [200]} onChange={(expect_status) => onChange({ ...block, expect_status })} />
          )}
        </Field>
        <TimeoutField value={block.timeout_secs ?? null} onChange={(timeout_secs) => onChange({ ...block, timeout_secs })} />
        <OptionalTextField label="Credential" placeholder="(none)" value={block.credential ?? null} onChange={(credential) => onChange({ ...block, credential })} />
        <FailureSelect value={block.on_failure ?? 'stop'} onChange={(on_failure) => onChange({ ...block, on_failure })} />
      </div>
    </>
  )
}

function BranchSummary({ label, blocks }: { label: string; blocks: Block[] }) {
  return (
    <div className="branch">
      <span className="branch-label">{label}</span>
      {blocks.length === 0 ? (
        <span className="muted">no blocks</span>
      ) : (
        blocks.map((child) => (
          <span key={child.id} className="chip chip-block" title={BLOCK_LABELS[child.kind]}>
            <KindIcon kind={child.kind} size={12} />
            {child.id}
          </span>
        ))
      )}
    </div>
  )
}

export function ConditionalEditor({ block, onChange }: EditorProps<ConditionalBlock>) {
  const problem = expressionProblem(block.expr)
  return (
    <>
      <Field label="Expression" hint={problem ?? 'Uses params.* and earlier steps.*'}>
        {(id) => (
          <input
            id={id}
            className={`input mono${problem ? ' input-invalid' : ''}`}
            value={block.expr}
            aria-invalid={problem !== null}
            placeholder="steps.health.status == 200"
            onChange={(e) => onChange({ ...block, expr: e.target.value })}
          />
        )}
      </Field>
      <div className="branches">
        <BranchSummary label="then" blocks={block.then ?? []} />
        <BranchSummary label="else" blocks={block.else ?? []} />
      </div>
    </>
  )
}

export function TimerEditor({ block, onChange }: EditorProps<TimerBlock>) {
  return (
    <div className="field-row">
      <Field label="Seconds" className="w-sm" hint={`Waits ${formatSeconds(block.seconds)}`}>
        {(id) => (
          <input
            id={id}
            className="input"
            type="number"
            min={1}
            value={Number.isFinite(block.seconds) ? block.seconds : ''}
            onChange={(e) => onChange({ ...block, seconds: numberOrNull(e.target.value) ?? 0 })}
          />
        )}
      </Field>
    </div>
  )
}

export function BlockBody({ block, onChange }: EditorProps<Block>) {
  switch (block.kind) {
    case 'instruction':
      return <InstructionEditor block={block} onChange={onChange} />
    case 'command':
      return <CommandEditor block={block} onChange={onChange} />
    case 'api_call':
      return <ApiCallEditor block={block} onChange={onChange} />
    case 'conditional':
      return <ConditionalEditor block={block} onChange={onChange} />
    case 'timer':
      return <TimerEditor block={block} onChange={onChange} />
  }
}
