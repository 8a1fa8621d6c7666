// Whether an api_call's URL names its host in its own text. The engine sends a credential bound
// to no host only to a host written there; one that a template supplies (a parameter, an earlier
// step's output) needs the credential bound to that host. Mirrors the engine's rule: the text
// before the first `{{` or `{%` must hold the whole scheme://authority, ended by `/`, `?`, `#`
// or `\`.

export function hostFromTemplate(url: string): boolean {
  const starts = ['{{', '{%'].map((marker) => url.indexOf(marker)).filter((at) => at >= 0)
  if (starts.length === 0) return false
  const written = url.slice(0, Math.min(...starts))
  const scheme = written.indexOf('://')
  if (scheme < 0) return true
  return !/[/?#\\]/.test(written.slice(scheme + 3))
}
