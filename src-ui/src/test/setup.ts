// Vitest setup: DOM matchers, the layout calls jsdom lacks, and a clean DOM and storage between tests.

import '@testing-library/jest-dom/vitest'
import { cleanup } from '@testing-library/react'
import { afterEach } from 'vitest'

// CodeMirror measures text ranges; jsdom has no layout, so every range is empty.
if (typeof Range !== 'undefined' && !Range.prototype.getClientRects) {
  Range.prototype.getClientRects = () => ({ length: 0, item: () => null, [Symbol.iterator]: [][Symbol.iterator] }) as unknown as DOMRectList
  Range.prototype.getBoundingClientRect = () => new DOMRect()
}

// Dialogs trap the focus among the controls that can be seen, which jsdom cannot measure: an
// element counts as seen while it is in the document and neither it nor an ancestor is not displayed.
if (typeof Element !== 'undefined' && !('checkVisibility' in Element.prototype)) {
  const displayed = (element: Element): boolean =>
    getComputedStyle(element).display !== 'none' && (element.parentElement === null || displayed(element.parentElement))
  Object.defineProperty(Element.prototype, 'checkVisibility', {
    value(this: Element) {
      return this.isConnected && displayed(this)
    },
  })
}

afterEach(() => {
  cleanup()
  localStorage.clear()
})
