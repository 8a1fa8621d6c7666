import { render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../api/errors'
import type { AuditEntry, AuditFilter } from '../api/types'
import { ADMIN, renderWithClient } from '../test/render'

const call = vi.fn()
vi.mock('../api/transport', () => ({ call: (...args: unknown[]) => call(...args) }))

import { snapshotUntil, verificationText } from './audit'
import { AuditPage, VerifyResult } from './AuditPage'

function entry(seq: number, patch: Partial<AuditEntry> = {}): AuditEntry {
  return {
    seq,
    at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    actor: 'alice',
    action: 'credential.create',
    target: 'payments-token',
    outcome: 'success',
    request_id: `req-${seq}`,
    detail: { kind: 'bearer' },
    prev_hash: `prev-${seq}`,
    hash: `hash-${seq}`,
    ...patch,
  }
}

beforeEach(() => {
  call.mockReset()
})

describe('verification result', () => {
  it('says the chain is intact and how much was checked', () => {
    expect(verificationText({ ok: true, checked: 1234, broken: null })).toBe('Chain intact — 1,234 records checked')
    expect(verificationText({ ok: true, checked: 1, broken: null })).toBe('Chain intact — 1 record checked')
    render(<VerifyResult result={{ ok: true, checked: 12, broken: null }} />)
    const result = screen.getByTestId('verify-result')
    expect(result).toHaveTextContent('Chain intact — 12 records checked')
    expect(result).toHaveClass('verify-ok')
  })

  it('says where the chain broke and why', () => {
    render(<VerifyResult result={{ ok: false, checked: 7, broken: { seq: 5, reason: 'hash mismatch' } }} />)
    const result = screen.getByTestId('verify-result')
    expect(result).toHaveTextContent('Broken at record #5: hash mismatch')
    expect(result).toHaveClass('verify-broken')
    expect(verificationText({ ok: false, checked: 3, broken: null })).toBe('Chain broken — 3 records checked')
  })
})

describe('snapshotUntil', () => {
  it('is just after the newest time shown, to the microsecond, whatever digits the server wrote', () => {
    const times = (...ats: string[]) => ats.map((at, i) => entry(i + 1, { at }))
    expect(snapshotUntil(times('2026-01-01T00:00:00.123456Z'))).toBe('2026-01-01T00:00:00.123457Z')
    // The newest time, not the first record's: times of records written side by side can cross.
    expect(snapshotUntil(times('2026-01-01T00:00:01Z', '2026-01-01T00:00:01.5Z', '2026-01-01T00:00:00.999Z'))).toBe('2026-01-01T00:00:01.500001Z')
    expect(snapshotUntil(times('2026-01-01T00:00:59.999999Z'))).toBe('2026-01-01T00:01:00.000000Z')
    expect(snapshotUntil(times('2026-01-01T02:00:00.000000001+02:00'))).toBe('2026-01-01T00:00:00.000001Z')
    expect(snapshotUntil([])).toBeUndefined()
  })
})

describe('AuditPage', () => {
  it('lists records newest first, opens one to its detail and hashes, and verifies on demand', async () => {
    call.mockImplementation(async (command: string) => {
      if (command === 'list_audit') return { items: [entry(2, { action: 'credential.update', outcome: 'denied', detail: { fields: ['value'] } }), entry(1)], total: 2 }
      if (command === 'verify_audit') return { ok: false, checked: 2, broken: { seq: 2, reason: 'prev_hash does not match record #1' } }
      throw new Error(`unexpected ${command}`)
    })
    const user = userEvent.setup()
    renderWithClient(<AuditPage />, { me: ADMIN })
    const newest = await screen.findByTestId('audit-2')
    const rows = screen.getAllByTestId(/^audit-\d+$/)
    expect(rows.map((row) => row.dataset.testid)).toEqual(['audit-2', 'audit-1'])
    expect(newest).toHaveTextContent('credential.update')
    expect(within(newest).getByText('denied')).toHaveClass('badge-outcome-denied')
    expect(newest).toHaveTextContent('req-2')

    expect(screen.queryByText('hash-2')).toBeNull()
    await user.click(screen.getByRole('button', { name: 'Details of record 2' }))
    const detail = screen.getByText('hash-2').closest('dl') as HTMLElement
    expect(detail).toHaveTextContent('#2')
    expect(detail).toHaveTextContent('prev-2')
    expect(detail).toHaveTextContent('"fields": [')
    expect(screen.getByRole('button', { name: 'Details of record 2' })).toHaveAttribute('aria-expanded', 'true')
    // Clicking the row closes it again.
    await user.click(newest)
    expect(screen.queryByText('hash-2')).toBeNull()

    expect(screen.queryByTestId('verify-result')).toBeNull()
    await user.click(screen.getByRole('button', { name: /Verify chain/ }))
    expect(await screen.findByTestId('verify-result')).toHaveTextContent('Broken at record #2: prev_hash does not match record #1')
  })

  it('sends the filters, an action prefix and a since date included', async () => {
    call.mockResolvedValue({ items: [], total: 0 })
    const user = userEvent.setup()
    renderWithClient(<AuditPage />, { me: ADMIN })
    await screen.findByText('The audit trail is empty.')
    expect(call).toHaveBeenLastCalledWith('list_audit', { limit: 50, offset: 0 })
    await user.type(screen.getByLabelText('Actor'), 'bob')
    await user.type(screen.getByLabelText('Action'), 'credential.')
    await user.selectOptions(screen.getByLabelText('Outcome'), 'denied')
    await user.type(screen.getByLabelText('Since'), '2026-01-15')
    await waitFor(() =>
      expect(call).toHaveBeenLastCalledWith('list_audit', expect.objectContaining({ actor: 'bob', action: 'credential.', outcome: 'denied' })),
    )
    const since = new Date(call.mock.lastCall?.[1].since)
    expect([since.getFullYear(), since.getMonth(), since.getDate(), since.getHours()]).toEqual([2026, 0, 15, 0])
    expect(await screen.findByText('No records match these filters.')).toBeInTheDocument()
  })

  it('pages through the trail as it was, even while new records arrive', async () => {
    // Times with microseconds, as the server writes them.
    const at = (seq: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString().replace('Z', '000Z')
    const trail = Array.from({ length: 60 }, (_, i) => entry(i + 1, { at: at(i + 1) }))
    // The server's contract: newest first, `until` exclusive, then offset and limit.
    call.mockImplementation(async (command: string, filter: AuditFilter) => {
      if (command !== 'list_audit') throw new Error(`unexpected ${command}`)
      const kept = trail.filter((e) => filter.until === undefined || e.at < filter.until).sort((a, b) => b.seq - a.seq)
      const offset = filter.offset ?? 0
      return { items: kept.slice(offset, offset + (filter.limit ?? 50)), total: kept.length }
    })
    const user = userEvent.setup()
    renderWithClient(<AuditPage />, { me: ADMIN })
    await screen.findByTestId('audit-60')
    const shown = (): number[] => screen.getAllByTestId(/^audit-\d+$/).map((row) => Number(row.dataset.testid?.slice(6)))
    const first = shown()
    expect(first).toEqual(Array.from({ length: 50 }, (_, i) => 60 - i))

    // Five records are appended while the first page is read.
    trail.push(...Array.from({ length: 5 }, (_, i) => entry(61 + i, { at: at(61 + i) })))
    await user.click(screen.getByRole('button', { name: /Next/ }))
    await screen.findByTestId('audit-1')
    const second = shown()
    expect(second).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    expect(second.filter((seq) => first.includes(seq))).toEqual([])
    expect(screen.getByRole('navigation', { name: 'Pages' })).toHaveTextContent('51–60 of 60')

    // The first page again is the live trail, new records included.
    await user.click(screen.getByRole('button', { name: /Previous/ }))
    expect(await screen.findByTestId('audit-65')).toBeInTheDocument()
    expect(call).toHaveBeenLastCalledWith('list_audit', { limit: 50, offset: 0 })
  })

  it('renders a 403 as the admin-only message', async () => {
    call.mockRejectedValue(new ApiError('forbidden', 'Admins only.', 403))
    renderWithClient(<AuditPage />, { me: ADMIN })
    expect(await screen.findByTestId('admin-only')).toHaveTextContent('The audit trail can only be opened by an admin.')
  })
})
