import { describe, expect, it } from 'vitest'
import { hostFromTemplate } from './urlHost'

describe('hostFromTemplate', () => {
  it('is false when the host is written before any template', () => {
    expect(hostFromTemplate('https://api.example.com/health')).toBe(false)
    expect(hostFromTemplate('https://api.example.com/v1/{{ params.path }}')).toBe(false)
    expect(hostFromTemplate('https://api.example.com:8443?q={{ params.q }}')).toBe(false)
  })

  it('is true when a template can change the host or the port', () => {
    expect(hostFromTemplate('https://{{ params.host }}/health')).toBe(true)
    expect(hostFromTemplate('{{ params.base_url }}/health')).toBe(true)
    expect(hostFromTemplate('https://api.example.com{{ params.path }}')).toBe(true)
    expect(hostFromTemplate('https://api.example.com:{{ params.port }}/')).toBe(true)
    expect(hostFromTemplate('https://{% if params.prod %}api{% else %}staging{% endif %}.example.com/')).toBe(true)
  })
})
