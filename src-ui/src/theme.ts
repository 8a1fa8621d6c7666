// Light/dark theme, remembered in localStorage and applied as <html data-theme>.

import { useCallback, useSyncExternalStore } from 'react'

export type Theme = 'light' | 'dark'
const STORAGE = 'runbook-studio.theme'
const listeners = new Set<() => void>()

export function readTheme(): Theme {
  try {
    return localStorage.getItem(STORAGE) === 'dark' ? 'dark' : 'light'
  } catch {
    return 'light'
  }
}

export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme
  document.documentElement.style.colorScheme = theme
}

export function setTheme(theme: Theme): void {
  localStorage.setItem(STORAGE, theme)
  applyTheme(theme)
  listeners.forEach((listener) => listener())
}

export function useTheme(): [Theme, () => void] {
  const theme = useSyncExternalStore(
    (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    readTheme,
  )
  const toggle = useCallback(() => setTheme(readTheme() === 'dark' ? 'light' : 'dark'), [])
  return [theme, toggle]
}
