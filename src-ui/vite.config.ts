/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The REST server to proxy to during `npm run dev` (the UI calls same-origin relative URLs).
const api = process.env.RUNBOOK_API ?? 'http://127.0.0.1:8080'
const apiPaths = ['/runbooks', '/executions', '/me', '/credentials', '/users', '/keys', '/audit', '/vault', '/healthz']

export default defineConfig({
  // Relative asset URLs: the build loads under Tauri's custom protocol and under the server's `/`.
  base: './',
  plugins: [react()],
  build: {
    outDir: 'dist',
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: Object.fromEntries(apiPaths.map((path) => [path, { target: api, changeOrigin: true }])),
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    css: false,
  },
})
