// One error type for both transports: REST error bodies and Tauri rejections end up here.

import type { FieldError } from './types'

export class ApiError extends Error {
  readonly code: string
  readonly status?: number
  readonly details?: unknown

  constructor(code: string, message: string, status?: number, details?: unknown) {
    super(message)
    this.name = 'ApiError'
    this.code = code
    this.status = status
    this.details = details
  }

  /** The per-field problems of a validation error, if the server sent them. */
  get fieldErrors(): FieldError[] {
    return Array.isArray(this.details) ? this.details.filter(isFieldError) : []
  }

  get isUnauthorized(): boolean {
    return this.status === 401 || this.code === 'unauthorized'
  }

  /** Refused because the caller's role is too low (REST 403, or the Tauri command's `forbidden`). */
  get isForbidden(): boolean {
    return this.status === 403 || this.code === 'forbidden'
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isFieldError(value: unknown): value is FieldError {
  return isRecord(value) && typeof value.path === 'string' && typeof value.message === 'string'
}

/** Reads `{code, message, details?}` from an object, if it has that shape. */
function fromErrorObject(value: unknown, status?: number): ApiError | null {
  if (!isRecord(value) || typeof value.code !== 'string') return null
  const message = typeof value.message === 'string' ? value.message : value.code
  return new ApiError(value.code, message, status, value.details)
}

const STATUS_CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  422: 'invalid',
  429: 'too_many_requests',
}

/** Builds the error for a non-2xx HTTP response from its status and (possibly non-JSON) body. */
export function errorFromHttp(status: number, bodyText: string, statusText = ''): ApiError {
  let parsed: unknown = null
  try {
    parsed = JSON.parse(bodyText)
  } catch {
    // Not JSON (a proxy page, an empty body): fall through to a generic error.
  }
  const fromBody = isRecord(parsed) ? fromErrorObject(parsed.error, status) : null
  if (fromBody) return fromBody
  const code = STATUS_CODES[status] ?? (status >= 500 ? 'server_error' : `http_${status}`)
  const text = bodyText.trim().slice(0, 200)
  return new ApiError(code, text || statusText || `The server answered HTTP ${status}.`, status)
}

/** Turns whatever a Tauri command rejected with (or fetch threw) into an ApiError. */
export function normalizeError(error: unknown): ApiError {
  if (error instanceof ApiError) return error
  const fromObject = fromErrorObject(error) ?? (isRecord(error) ? fromErrorObject(error.error) : null)
  if (fromObject) return fromObject
  if (typeof error === 'string') return new ApiError('error', error)
  if (error instanceof TypeError) {
    return new ApiError('network_error', `Could not reach the server (${error.message}).`)
  }
  if (error instanceof Error) return new ApiError('error', error.message)
  return new ApiError('error', 'Something went wrong.')
}

/** True when the server refused a request because the caller's role is too low. */
export function isForbidden(error: unknown): boolean {
  return normalizeError(error).isForbidden
}
