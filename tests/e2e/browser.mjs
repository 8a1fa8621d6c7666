//! Browser end-to-end test: the real headless server (`runbook-studio serve`) serving the built UI,
//! driven with Debian's chromium through playwright-core. Signs in with a fresh API key, authors a
//! runbook (rename, tags, a command block), saves with the button and with Ctrl+S, checks History,
//! provokes and resolves a version conflict, runs the runbook and reads its output in the console.
//!
//! Run:  (cd src-ui && npm run build) && (cd tests/e2e && npm ci && npm test)
//! Env:  RUNBOOK_BIN  server binary (default ../../target/debug/runbook-studio, relative to this file)
//!       RUNBOOK_UI_DIR  built UI (default ../../src-ui/dist)
//!       CHROMIUM  browser executable (default /usr/bin/chromium)
//!       E2E_TIMEOUT_MS  hard limit for the whole run (default 180000)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(HERE, process.env.RUNBOOK_BIN ?? '../../target/debug/runbook-studio');
const UI_DIR = resolve(HERE, process.env.RUNBOOK_UI_DIR ?? '../../src-ui/dist');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = join(HERE, 'screenshots');
const ARTIFACTS = join(HERE, '.artifacts');
const HARD_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 180_000);
const MARKER = 'hello-from-e2e';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

const run = promisify(execFile);
const dataDir = mkdtempSync(join(tmpdir(), 'runbook-e2e-data-'));
const profileDir = mkdtempSync(join(tmpdir(), 'runbook-e2e-chromium-'));
// Servers read the master key from the environment; a random one keeps the test off the OS keychain.
const env = {
  ...process.env,
  RUNBOOK_UI_DIR: UI_DIR,
  RUNBOOK_DATA_DIR: dataDir,
  RUNBOOK_MASTER_KEY: randomBytes(32).toString('base64'),
};

let server = null;
let context = null;
let page = null;
let baseUrl = '';
let token = '';
let runbookUrl = '';

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastError = null;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
}

async function shot(name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

async function api(method, path, body) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { 'X-API-KEY': token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path} → ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const button = (name) => page.getByRole('button', { name, exact: true });
const savedVersion = (n) => page.getByTestId('dirty-indicator').filter({ hasText: `Saved · version ${n}` });

describe('browser: sign in, author, version and run a runbook', { timeout: HARD_TIMEOUT_MS }, () => {
  before(async () => {
    assert.ok(existsSync(BIN), `server binary not found at ${BIN} (cargo build -p runbook-server, or set RUNBOOK_BIN)`);
    assert.ok(existsSync(join(UI_DIR, 'index.html')), `built UI not found in ${UI_DIR} (cd src-ui && npm run build)`);
    assert.ok(existsSync(CHROMIUM), `chromium not found at ${CHROMIUM}`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    mkdirSync(ARTIFACTS, { recursive: true });

    const created = await run(BIN, ['keys', 'create', '--name', 'e2e-admin', '--role', 'admin', '--data-dir', dataDir], {
      env,
      timeout: 60_000,
    });
    token = created.stdout.trim().split('\n').at(-1).trim();
    assert.ok(token.length >= 16, `unexpected token line: ${JSON.stringify(token)}`);

    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    const log = createWriteStream(join(ARTIFACTS, 'browser-server.log'));
    server = spawn(BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout.pipe(log);
    server.stderr.pipe(log);
    const exited = new Promise((_, reject) => server.once('exit', (code) => reject(new Error(`server exited early (code ${code}); see .artifacts/browser-server.log`))));
    await Promise.race([
      exited,
      waitFor('GET /healthz to answer 200', async () => (await fetch(`${baseUrl}/healthz`)).status === 200, 30_000),
    ]);
    exited.catch(() => {});

    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1440, height: 900 },
    });
    context.setDefaultTimeout(15_000);
    page = context.pages()[0] ?? (await context.newPage());
    const consoleLog = createWriteStream(join(ARTIFACTS, 'browser-console.log'));
    page.on('console', (message) => consoleLog.write(`[${message.type()}] ${message.text()}\n`));
    page.on('pageerror', (error) => consoleLog.write(`[pageerror] ${error.stack ?? error.message}\n`));
  });

  after(async () => {
    if (page && process.exitCode) await shot('99-failure').catch(() => {});
    await context?.close().catch(() => {});
    if (server && server.exitCode === null) {
      const gone = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(profileDir, { recursive: true, force: true });
  });

  it('signs in with an API key', async () => {
    await page.goto(`${baseUrl}/`);
    const keyField = page.getByLabel('API key');
    await keyField.fill('not-a-key');
    await button('Sign in').click();
    await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
    await shot('00-sign-in');

    await keyField.fill(token);
    await button('Sign in').click();
    await page.getByTestId('whoami').filter({ hasText: 'e2e-admin' }).waitFor();
    assert.match(await page.getByTestId('whoami').innerText(), /admin/);
  });

  it('creates, renames and extends a runbook, then saves it', async () => {
    await button('New runbook').click();
    await page.waitForURL(/#\/runbooks\/[0-9a-f-]+/);
    runbookUrl = page.url();
    const name = page.getByLabel('Name', { exact: true });
    assert.equal(await name.inputValue(), 'Untitled runbook');
    await name.fill('E2E smoke check');
    await page.getByLabel('Tags').fill('e2e, smoke');

    await button('Add block').click();
    await page.getByRole('menuitem', { name: 'Command' }).click();
    const card = page.getByRole('region', { name: 'Command block step-2' });
    await card.waitFor();
    const script = card.getByRole('textbox', { name: 'Script' });
    await script.click();
    await page.keyboard.type(`echo ${MARKER}`);
    await page.getByTestId('dirty-indicator').filter({ hasText: 'Unsaved changes' }).waitFor();
    await card.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await shot('01-editor');

    await button('Save').click();
    await savedVersion(2).waitFor();
    // The sidebar lists the renamed runbook with its tags.
    const link = page.getByRole('navigation', { name: 'Runbooks' }).getByRole('link', { name: /E2E smoke check/ });
    await link.waitFor();
    assert.match(await link.innerText(), /smoke/);

    const stored = await api('GET', `/runbooks/${runbookUrl.split('/').at(-1)}`);
    assert.equal(stored.name, 'E2E smoke check');
    assert.deepEqual(stored.tags, ['e2e', 'smoke']);
    assert.equal(stored.blocks[1].kind, 'command');
    assert.equal(stored.blocks[1].script, `echo ${MARKER}`);
  });

  it('saves with Ctrl+S and lists the versions in History', async () => {
    await page.getByLabel('Change note').fill('describe the check');
    await page.getByRole('textbox', { name: 'Description' }).fill('Says **hello** so the test can see it.');
    await page.keyboard.press('Control+s');
    await savedVersion(3).waitFor();

    await page.getByRole('tab', { name: 'History' }).click();
    const v3 = page.getByTestId('version-3');
    await v3.waitFor();
    assert.match(await v3.innerText(), /describe the check/);
    assert.match(await v3.innerText(), /e2e-admin/);
    await page.getByTestId('version-2').click();
    await page.getByLabel('Differences').waitFor();
    await shot('02-history');
  });

  it('refuses a stale save and recovers from the conflict', async () => {
    const id = runbookUrl.split('/').at(-1);
    const current = await api('GET', `/runbooks/${id}`);
    const { name, description, tags, params, blocks, version } = current;
    await api('PUT', `/runbooks/${id}`, { name, description, tags, params, blocks, version, message: 'edited elsewhere' });

    await page.getByRole('tab', { name: 'Editor' }).click();
    await page.getByLabel('Tags').fill('e2e, smoke, stale');
    await button('Save').click();
    await page.getByRole('alert').filter({ hasText: 'someone else saved a newer version' }).waitFor();
    await button('Discard my edits and load the latest').click();
    await savedVersion(4).waitFor();
  });

  it('runs the runbook and streams its output to the console', async () => {
    await button('Run').click();
    await page.waitForURL(/#\/executions\/[0-9a-f-]+/);
    await waitFor(
      `"${MARKER}" in the console`,
      async () => (await page.getByTestId('console-text').textContent())?.includes(MARKER),
      30_000,
    );
    await page.getByTestId('execution-status').filter({ hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
    await page.getByTestId('step-step-2').filter({ hasText: 'succeeded' }).waitFor();
    for (const control of ['Pause', 'Resume', 'Stop', 'Acknowledge']) {
      assert.equal(await button(control).isDisabled(), true, `${control} is disabled once the run is over`);
    }
    await shot('03-run-view');

    // Reopening the finished run loads the whole console from stored output.
    await page.reload();
    await waitFor('the console after reload', async () => (await page.getByTestId('console-text').textContent())?.includes(MARKER), 15_000);
  });

  it('lists the run on the runbook\'s Runs tab', async () => {
    await page.goto(`${runbookUrl}?tab=runs`);
    const row = page.locator('[data-testid^="execution-"]').first();
    await row.waitFor();
    assert.match(await row.innerText(), /succeeded/i);
    await page.getByPlaceholder('Search runbooks').fill('smoke');
    await page.getByRole('navigation', { name: 'Runbooks' }).getByRole('link', { name: /E2E smoke check/ }).waitFor();
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await shot('04-runs-dark');
  });
});
