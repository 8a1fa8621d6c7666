// Entry point: applies the stored theme before the first paint, then mounts the app.

import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './App'
import { hasUnsavedDrafts } from './editor/draftCache'
import './styles.css'
import { applyTheme, readTheme } from './theme'

applyTheme(readTheme())

window.addEventListener('beforeunload', (event) => {
  if (hasUnsavedDrafts()) event.preventDefault()
})

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
