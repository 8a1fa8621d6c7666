//! Browser end-to-end test: the real headless server (`runbook-studio serve`) serving the built UI,
//! driven with Debian's chromium through playwright-core. Signs in with a fresh API key, authors a
//! runbook (rename, tags, a command block), saves with the button and with Ctrl+S, checks History,
//! provokes and resolves a version conflict, runs the runbook and reads its output in the console;
//! pauses, resumes and stops a timer run (countdown frozen while paused, also by keyboard) and a run
//! the command line executes on the same database, edits a
//! conditional's branches inline (with a server validation error shown on the nested field), pages
//! through the run history, and loads a million-line console without stalling the page. As an admin
//! it creates, replaces and deletes a credential (no response ever carries its value), creates an
//! API key whose token is shown once, reads the audit trail and verifies its chain; an operator sees
//! no admin links and an "Admin only" message on the admin pages.
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
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
const runStatus = (status) => page.getByTestId('execution-status').filter({ hasText: new RegExp(`^${status}$`, 'i') });
const executionId = () => page.url().split('/').at(-1);

/** A command block with the contract's defaults. */
function command(id, script) {
  return { id, kind: 'command', script, shell: 'sh', host: 'local', timeout_secs: 60, workdir: null, env: {}, expect_exit_codes: [0], on_failure: 'stop', secrets: {} };
}

async function createRunbook(name, blocks) {
  return api('POST', '/runbooks', { name, description: '', tags: ['e2e'], params: [], blocks });
}

async function waitForRun(id, statuses, timeoutMs = 30_000) {
  return waitFor(`run ${id} to be ${statuses.join('/')}`, async () => {
    const execution = await api('GET', `/executions/${id}`);
    return statuses.includes(execution.status) ? execution : null;
  }, timeoutMs);
}

/** The first `countdown` event of run `id`'s event stream that `wanted` accepts. */
async function streamedCountdown(id, wanted, timeoutMs = 10_000) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(`${baseUrl}/executions/${id}/events`, { headers: { 'X-API-KEY': token, Accept: 'text/event-stream' }, signal: abort.signal });
    assert.ok(response.ok, `event stream → ${response.status}`);
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of response.body) {
      buffered += decoder.decode(chunk, { stream: true });
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) {
        if (!line.startsWith('data:')) continue;
        const event = JSON.parse(line.slice(5));
        if (event.type === 'countdown' && wanted(event)) return event;
      }
    }
    throw new Error('the event stream ended without the countdown');
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** `runbook-studio run RUNBOOK` on the server's database, as a terminal would run it. */
function runInTerminal(runbookId) {
  const child = spawn(BIN, ['run', runbookId], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  child.stdout.on('data', (chunk) => { printed += chunk; });
  child.stderr.on('data', (chunk) => { printed += chunk; });
  return {
    printed: () => printed,
    ended: new Promise((resolveExit) => child.once('exit', (code) => resolveExit(code))),
    kill: () => { if (child.exitCode === null) child.kill('SIGKILL'); },
  };
}

/** Seconds left on a timer step's countdown ("0:27" → 27). */
async function countdownSeconds(blockId) {
  const text = (await page.getByTestId(`countdown-${blockId}`).innerText()).trim();
  const parts = text.split(':').map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

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
    // Notifications are allowed for the app, and every one the page shows is recorded.
    await context.grantPermissions(['notifications'], { origin: baseUrl });
    await context.addInitScript(() => {
      window.__notifications = [];
      const Real = window.Notification;
      if (!Real) return;
      window.Notification = class extends Real {
        constructor(title, options) {
          window.__notifications.push({ title, body: options?.body ?? '', tag: options?.tag ?? '' });
          super(title, options);
        }
      };
    });
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

  it('exports the finished run as a Markdown report with its steps and plain console', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), button('Export report').click()]);
    assert.match(download.suggestedFilename(), /^e2e-smoke-check-[0-9a-f]{8}\.md$/);
    const report = readFileSync(await download.path(), 'utf8');
    assert.match(report, /^# Run report: E2E smoke check \(version \d+\)\n/);
    assert.match(report, /- Status: \*\*succeeded\*\*/);
    assert.match(report, /## Steps\n/);
    assert.match(report, /\| `step-2` \| succeeded \|/);
    assert.ok(report.includes(MARKER), 'the console is in the report');
    // The engine colours each step's header line: it is there, with its colours removed.
    assert.ok(report.includes('▶ step-2 (command)\n'), 'the coloured step header is in the report as plain text');
    assert.ok(!report.includes('\x1b'), 'the console has no escape codes');
    await page.getByTestId('export-notice').filter({ hasText: `Report downloaded as ${download.suggestedFilename()}` }).waitFor();
    await shot('03b-run-exported');
  });

  it('saves the whole console as a log file', async () => {
    const id = executionId();
    const [download] = await Promise.all([page.waitForEvent('download'), button('Save console').click()]);
    const name = download.suggestedFilename();
    assert.match(name, /^e2e-smoke-check-[0-9a-f]{8}\.log$/);
    assert.ok(name.endsWith(`-${id.slice(0, 8)}.log`), `${name} names run ${id}`);
    const log = readFileSync(await download.path(), 'utf8');
    assert.ok(log.includes(`${MARKER}\n`), 'the command\'s output is in the log');
    // The engine colours each step's header line: it is there, with its colours removed.
    assert.ok(log.includes('▶ step-2 (command)\n'), 'the coloured step header is in the log as plain text');
    assert.ok(!log.includes('\x1b'), 'the log has no escape codes');
    assert.ok(!log.includes('\r'), 'the log\'s lines end in \\n alone');
    // The stored console has escapes: the plain log had some to remove.
    const raw = await fetch(`${baseUrl}/executions/${id}/console?escapes=keep`, { headers: { 'X-API-KEY': token } });
    assert.ok(raw.ok, `GET /executions/${id}/console?escapes=keep → ${raw.status}`);
    assert.ok((await raw.text()).includes('\x1b'), 'the stored console is coloured');
    await page.getByTestId('console-notice').filter({ hasText: `Console downloaded as ${name}` }).waitFor();
    await shot('03c-console-saved');
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
  it('pauses, resumes and stops a timer run, its countdown frozen while paused', async () => {
    const runbook = await createRunbook('E2E timer', [command('prepare', 'echo timer-ahead'), { id: 'wait', kind: 'timer', seconds: 30 }, command('after', 'echo never-runs')]);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}`);
    await button('Run').click();
    await page.waitForURL(/#\/executions\/[0-9a-f-]+/);
    const id = executionId();
    await page.getByTestId('countdown-wait').waitFor({ timeout: 15_000 });
    await runStatus('running').waitFor();
    assert.equal(await button('Resume').isDisabled(), true, 'Resume is disabled while running');

    await button('Pause').click();
    await runStatus('paused').waitFor();
    const paused = await waitForRun(id, ['paused']);
    assert.equal(paused.steps.find((step) => step.block_id === 'wait').status, 'paused');
    assert.equal(await button('Pause').isDisabled(), true, 'Pause is disabled while paused');
    const frozen = await countdownSeconds('wait');
    await page.waitForTimeout(1_500);
    assert.equal(await countdownSeconds('wait'), frozen, 'the countdown does not move while paused');
    assert.ok(frozen > 15 && frozen <= 30, `a 30 s timer paused early shows ${frozen} s left`);
    await page.getByTestId('step-wait').filter({ hasText: 'frozen while paused' }).waitFor();
    await shot('05-run-paused');

    await button('Resume').click();
    await runStatus('running').waitFor();
    await waitForRun(id, ['running']);
    const resumed = await countdownSeconds('wait');
    await page.waitForTimeout(1_500);
    assert.ok((await countdownSeconds('wait')) < resumed, 'the countdown moves again after Resume');

    // The keyboard does the same: p pauses and resumes.
    await page.keyboard.press('p');
    await runStatus('paused').waitFor();
    await waitForRun(id, ['paused']);
    await page.keyboard.press('p');
    await runStatus('running').waitFor();

    await button('Stop').click();
    const dialog = page.getByRole('dialog', { name: 'Stop this run?' });
    await dialog.waitFor();
    await shot('06-stop-confirm');
    await dialog.getByRole('button', { name: 'Stop run' }).click();
    await runStatus('stopped').waitFor();
    const stopped = await waitForRun(id, ['stopped']);
    assert.equal(stopped.steps.find((step) => step.block_id === 'wait').status, 'stopped');
    assert.notEqual(stopped.steps.find((step) => step.block_id === 'after').status, 'succeeded');
    assert.equal(await page.getByTestId('countdown-wait').count(), 0, 'no countdown once the timer ended');
    for (const control of ['Pause', 'Resume', 'Stop']) {
      assert.equal(await button(control).isDisabled(), true, `${control} is disabled once stopped`);
    }
    await button('Retry from failed step').waitFor();
    await shot('07-run-stopped');
  });

  it('asks before stopping with the s key and stops nothing when cancelled', async () => {
    const runbook = await createRunbook('E2E keyboard stop', [{ id: 'wait', kind: 'timer', seconds: 30 }]);
    const started = await api('POST', `/runbooks/${runbook.id}/execute`, { params: {}, version: null });
    await page.goto(`${baseUrl}/#/executions/${started.id}`);
    await runStatus('running').waitFor({ timeout: 15_000 });
    await page.keyboard.press('s');
    const dialog = page.getByRole('dialog', { name: 'Stop this run?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForTimeout(300);
    assert.equal((await api('GET', `/executions/${started.id}`)).status, 'running', 'cancelling the dialog stops nothing');
    // Keys typed into a field are text, not shortcuts.
    await page.getByLabel('Search console').fill('s');
    await page.getByLabel('Search console').press('s');
    assert.equal(await dialog.count(), 0);
    await page.getByLabel('Search console').fill('');
    await page.getByTestId('execution-status').click();
    await page.keyboard.press('s');
    await dialog.waitFor();
    await page.keyboard.press('Enter');
    await waitForRun(started.id, ['stopped']);
    await runStatus('stopped').waitFor();
  });

  it('pauses, resumes and stops a run the command line executes on the same database', async () => {
    const script = 'i=0; while :; do i=$((i + 1)); echo tick $i; sleep 0.1; done';
    const runbook = await createRunbook('E2E terminal run', [command('ticks', script)]);
    const terminal = runInTerminal(runbook.id);
    try {
      await waitFor('the terminal run to tick', async () => terminal.printed().includes('tick 2\n'), 30_000);
      const runs = await api('GET', `/executions?runbook_id=${runbook.id}`);
      assert.equal(runs.items.length, 1);
      const id = runs.items[0].id;
      await page.goto(`${baseUrl}/#/executions/${id}`);
      await runStatus('running').waitFor();

      // The server relays the action to the process executing the run: its ticks stop.
      await button('Pause').click();
      await runStatus('paused').waitFor();
      await waitForRun(id, ['paused']);
      await page.waitForTimeout(300);
      const frozen = terminal.printed().length;
      await page.waitForTimeout(1_000);
      assert.equal(terminal.printed().length, frozen, 'the terminal run went on ticking while paused');
      await shot('08-terminal-run-paused');

      await button('Resume').click();
      await runStatus('running').waitFor();
      await waitFor('the ticks to go on', async () => terminal.printed().length > frozen, 10_000);

      await button('Stop').click();
      await page.getByRole('dialog', { name: 'Stop this run?' }).getByRole('button', { name: 'Stop run' }).click();
      await runStatus('stopped').waitFor();
      assert.equal(await terminal.ended, 1, `the terminal run exits 1 once stopped: ${terminal.printed().slice(-500)}`);
      assert.equal((await waitForRun(id, ['stopped'])).steps[0].status, 'stopped');
    } finally {
      terminal.kill();
    }
  });

  it('counts down a timer the command line runs, holding it while paused', async () => {
    const runbook = await createRunbook('E2E terminal timer', [{ id: 'soak', kind: 'timer', seconds: 60 }]);
    const terminal = runInTerminal(runbook.id);
    try {
      await waitFor('the terminal run to wait', async () => terminal.printed().includes('waiting 60 s'), 30_000);
      const runs = await api('GET', `/executions?runbook_id=${runbook.id}`);
      const id = runs.items[0].id;
      await page.goto(`${baseUrl}/#/executions/${id}`);
      await runStatus('running').waitFor();
      await page.getByTestId('countdown-soak').waitFor({ timeout: 15_000 });

      await button('Pause').click();
      await runStatus('paused').waitFor();
      await waitForRun(id, ['paused']);
      await page.waitForTimeout(1_000);
      const frozen = await countdownSeconds('soak');
      await page.waitForTimeout(5_000);
      assert.equal(await countdownSeconds('soak'), frozen, 'the countdown does not move while paused');
      const stored = (await api('GET', `/executions/${id}`)).steps[0].timer;
      assert.equal(Math.ceil(stored.remaining_ms / 1000), frozen, 'the page shows the time left the run stored');
      // The server tells the paused time left of a run it follows, as the page heard it.
      const told = await streamedCountdown(id, (event) => event.paused);
      assert.deepEqual([told.block_id, told.remaining_ms, told.total_ms], ['soak', stored.remaining_ms, 60_000]);

      // Resumed, it counts on from where it was paused: the paused time is not taken off.
      await button('Resume').click();
      await runStatus('running').waitFor();
      await waitForRun(id, ['running']);
      await page.waitForTimeout(600);
      const resumed = await countdownSeconds('soak');
      assert.ok(resumed >= frozen - 2 && resumed <= frozen, `${frozen} s left at the pause, ${resumed} s after the resume`);
      await shot('10-terminal-timer-resumed');

      await button('Stop').click();
      await page.getByRole('dialog', { name: 'Stop this run?' }).getByRole('button', { name: 'Stop run' }).click();
      await runStatus('stopped').waitFor();
      assert.equal(await terminal.ended, 1, `the terminal run exits 1 once stopped: ${terminal.printed().slice(-500)}`);
    } finally {
      terminal.kill();
    }
  });

  it('shows a stop asked for elsewhere with who asked, and kills what ignores it from the page', async () => {
    const script = "trap '' TERM; echo draining; while :; do sleep 0.2; done";
    const runbook = await createRunbook('E2E slow drain', [{ ...command('drain', script), stop_grace_secs: 600 }]);
    const run = await api('POST', `/runbooks/${runbook.id}/execute`, { params: {}, version: null });
    await page.goto(`${baseUrl}/#/executions/${run.id}`);
    await runStatus('running').waitFor();
    await waitFor('the command to start', async () => (await page.getByTestId('console-text').textContent())?.includes('draining'), 30_000);
    assert.equal(await page.getByTestId('stop-requested').count(), 0);

    // Stopped by someone else (here through the API): the command ignores SIGTERM and has ten minutes.
    await api('POST', `/executions/${run.id}/control`, { action: 'stop' });
    await page.getByTestId('stop-requested').filter({ hasText: 'stop requested by e2e-admin' }).waitFor();
    await runStatus('running').waitFor();
    await button('Stopping…').waitFor();
    assert.equal(await button('Stopping…').isDisabled(), true);
    await waitFor(
      'the stop in the console',
      async () => (await page.getByTestId('console-text').textContent())?.includes('stop requested by e2e-admin: SIGTERM sent'),
      15_000,
    );
    await shot('09-stop-requested');

    await button('Kill now').click();
    await runStatus('stopped').waitFor();
    assert.equal(await page.getByTestId('stop-requested').count(), 0, 'an ended run is stopped, not stopping');
    const ended = await waitForRun(run.id, ['stopped']);
    assert.equal(ended.stop_requested.by, 'e2e-admin');
  });

  it('edits a conditional\'s branches inline and shows a server error on the nested field', async () => {
    const runbook = await createRunbook('E2E branches', [
      command('check', 'echo check'),
      { id: 'branch', kind: 'conditional', expr: 'steps.check.exit_code == 0', then: [{ id: 'wait', kind: 'timer', seconds: 5 }], else: [] },
    ]);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}`);
    await page.getByRole('button', { name: 'Switch to light theme' }).click();
    const thenBranch = page.getByRole('group', { name: 'then branch of branch' });
    const wait = thenBranch.getByRole('region', { name: 'Timer block wait' });
    await wait.getByLabel('Seconds').fill('12');

    await thenBranch.getByRole('button', { name: 'Add block to then of branch' }).click();
    await page.getByRole('menuitem', { name: 'Command' }).click();
    const added = thenBranch.getByRole('region', { name: 'Command block step-4' });
    await added.waitFor();
    await added.getByRole('textbox', { name: 'Script' }).click();
    await page.keyboard.type('echo from-the-branch');
    await added.getByRole('button', { name: 'Move up' }).click();

    // An else-branch conditional without an expression: the server refuses it and says where.
    const elseBranch = page.getByRole('group', { name: 'else branch of branch' });
    await elseBranch.getByRole('button', { name: 'Add block to else of branch' }).click();
    await page.getByRole('menuitem', { name: 'Conditional' }).click();
    const nested = elseBranch.getByRole('region', { name: 'Conditional block step-5' });
    await nested.waitFor();
    await nested.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await button('Save').click();
    await page.getByRole('alert').filter({ hasText: 'The runbook was not saved' }).waitFor();
    const exprField = nested.locator('.field').filter({ has: page.getByLabel('Expression') }).first();
    const serverMessage = await exprField.getByRole('alert').innerText();
    assert.ok(serverMessage.length > 0, 'the nested expression shows the server\'s error');
    assert.doesNotMatch(serverMessage, /required, e\.g\./, 'the server\'s message is shown, not only the local check');
    const banner = await page.getByRole('alert').filter({ hasText: 'The runbook was not saved' }).innerText();
    assert.match(banner, /blocks\[1\]\.else\[0\]\.expr/);
    await shot('08-nested-error');

    await nested.getByLabel('Expression').fill('params.env == "prod" ||');
    await nested.locator('.field-error').filter({ hasText: /^1:\d+: / }).first().waitFor();
    await nested.getByLabel('Expression').fill('steps.check.stdout.contains("check")');
    await button('Save').click();
    await savedVersion(2).waitFor();
    await page.getByRole('region', { name: 'Conditional block branch' }).evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await shot('09-branches-saved');

    const stored = await api('GET', `/runbooks/${runbook.id}`);
    const branch = stored.blocks[1];
    assert.deepEqual(branch.then.map((block) => block.id), ['step-4', 'wait']);
    assert.equal(branch.then[0].kind, 'command');
    assert.equal(branch.then[0].script, 'echo from-the-branch');
    assert.equal(branch.then[1].seconds, 12);
    assert.equal(branch.else[0].kind, 'conditional');
    assert.equal(branch.else[0].expr, 'steps.check.stdout.contains("check")');
  });

  it('shows every block kind with all its fields editable', async () => {
    const runbook = await createRunbook('E2E all kinds', [
      { id: 'read-first', kind: 'instruction', text: '## Before you start\nCheck the **dashboard**.', confirm: true },
      {
        ...command('restart', 'systemctl restart {{ params.service }}\necho "PID=$(pidof payments)" >> "$RUNBOOK_OUTPUT"'),
        shell: 'bash',
        workdir: '/srv/payments',
        env: { REGION: 'eu-west-1' },
        secrets: { TOKEN: 'payments-token' },
        expect_exit_codes: [0, 3],
        on_failure: 'continue',
      },
      {
        id: 'health', kind: 'api_call', method: 'POST', url: 'https://api.example/health', headers: { Accept: 'application/json' },
        body: '{"deep": true}', credential: 'payments-token', timeout_secs: 10, expect_status: [200, 204], on_failure: 'stop',
      },
      { id: 'healthy', kind: 'conditional', expr: 'steps.health.status == 200', then: [], else: [{ id: 'cool-down', kind: 'timer', seconds: 90 }] },
    ]);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}`);
    const restart = page.getByRole('region', { name: 'Command block restart' });
    assert.equal(await restart.getByLabel('Shell').inputValue(), 'bash');
    assert.equal(await restart.getByLabel('Working directory').inputValue(), '/srv/payments');
    assert.equal(await restart.getByLabel('Expected exit codes').inputValue(), '0, 3');
    assert.equal(await restart.getByLabel('On failure').inputValue(), 'continue');
    assert.equal(await restart.getByLabel('Variable 1 name').inputValue(), 'REGION');
    assert.equal(await restart.getByLabel('Secret 1 value').inputValue(), 'payments-token');
    const health = page.getByRole('region', { name: 'API call block health' });
    assert.equal(await health.getByLabel('Method').inputValue(), 'POST');
    assert.equal(await health.getByLabel('Header 1 value').inputValue(), 'application/json');
    assert.equal(await health.getByLabel('Body').inputValue(), '{"deep": true}');
    assert.equal(await health.getByLabel('Expected status').inputValue(), '200, 204');
    assert.equal(await health.getByLabel('Credential').inputValue(), 'payments-token');
    await restart.evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await shot('12-command-and-api-call');

    await health.getByLabel('Method').selectOption('PUT');
    await health.getByRole('button', { name: 'Add header' }).click();
    await health.getByLabel('Header 2 name').fill('X-Trace');
    await health.getByLabel('Header 2 value').fill('{{ params.trace }}');
    await restart.getByRole('button', { name: 'Remove variable REGION' }).click();
    await page.getByRole('region', { name: 'Instruction block read-first' }).getByRole('button', { name: 'Collapse block' }).click();
    await page.keyboard.press('Control+s');
    await savedVersion(2).waitFor();
    const stored = await api('GET', `/runbooks/${runbook.id}`);
    assert.equal(stored.blocks[2].method, 'PUT');
    assert.deepEqual(stored.blocks[2].headers, { Accept: 'application/json', 'X-Trace': '{{ params.trace }}' });
    assert.deepEqual(stored.blocks[1].env, {});
    assert.deepEqual(stored.blocks[1].secrets, { TOKEN: 'payments-token' });
  });

  // ---- security: credentials, API keys, admin-only pages, audit trail ----

  it('creates a credential, replaces its value and deletes it; no response ever carries the value', async () => {
    const name = 'e2e-api-token';
    const secret = `e2e-secret-${randomBytes(12).toString('hex')}`;
    const replaced = `e2e-replaced-${randomBytes(12).toString('hex')}`;
    // Every response body the page receives, to prove no value ever comes back.
    const bodies = [];
    const record = (response) => {
      if ((response.headers()['content-type'] ?? '').includes('text/event-stream')) return;
      bodies.push(response.text().then((text) => ({ url: response.url(), text }), () => ({ url: response.url(), text: '' })));
    };
    page.on('response', record);
    try {
      await page.goto(`${baseUrl}/#/`);
      await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Credentials' }).click();
      await page.getByRole('heading', { name: 'Credentials' }).waitFor();
      // The server runs on a master key from the environment: no vault warning.
      assert.equal((await api('GET', '/vault')).warning, null);
      assert.equal(await page.getByTestId('vault-warning').count(), 0);

      await button('New credential').click();
      const dialog = page.getByRole('dialog', { name: 'New credential' });
      await dialog.getByLabel('Name', { exact: true }).fill(name);
      await dialog.getByLabel('Kind').selectOption('header');
      await dialog.getByLabel('Header name').fill('X-E2E-Token');
      const value = dialog.getByLabel('Value', { exact: true });
      await value.fill(secret);
      assert.equal(await value.getAttribute('type'), 'password', 'the value is masked while typed');
      await dialog.getByLabel('Hosts').fill('API.example.com');
      await dialog.getByLabel('Description').fill('Made by the browser test');
      await shot('20-credential-create');
      await dialog.getByRole('button', { name: 'Create credential' }).click();
      const row = page.getByTestId(`credential-${name}`);
      await row.waitFor();
      assert.equal(await dialog.count(), 0, 'the dialog closes once created');
      assert.match(await row.innerText(), /Custom header/);
      assert.match(await row.innerText(), /header\s+X-E2E-Token/);
      assert.match(await row.getByTestId('last-used').innerText(), /never/);
      assert.equal((await row.getByTestId('hosts').innerText()).trim(), 'api.example.com', 'the list shows the host, lowercase');

      const listed = await api('GET', '/credentials');
      const stored = listed.items.find((item) => item.name === name);
      assert.ok(stored, `GET /credentials lists ${name}`);
      assert.equal(stored.kind, 'header');
      assert.equal(stored.header_name, 'X-E2E-Token');
      assert.equal(stored.description, 'Made by the browser test');
      assert.deepEqual(stored.hosts, ['api.example.com']);
      assert.ok(!('value' in stored), 'no value field in the listing');
      assert.ok(!JSON.stringify(listed).includes(secret), 'the listing never carries the value');

      // A second credential with the same name: the server's 409 shows on the name field.
      await button('New credential').click();
      await dialog.getByLabel('Name', { exact: true }).fill(name);
      await dialog.getByLabel('Value', { exact: true }).fill('another value');
      await dialog.getByRole('button', { name: 'Create credential' }).click();
      const nameField = dialog.locator('.field').filter({ has: page.getByLabel('Name', { exact: true }) });
      await nameField.getByRole('alert').waitFor();
      assert.match(await nameField.getByRole('alert').innerText(), new RegExp(name));
      await shot('21-credential-duplicate');
      await dialog.getByRole('button', { name: 'Cancel' }).click();

      // Replace value: the field starts empty; the new value is stored, the metadata stays.
      await button(`Edit ${name}`).click();
      const replace = page.getByRole('dialog', { name: `Edit “${name}”` });
      await replace.getByText('The current value is never shown').waitFor();
      const newValue = replace.getByLabel('New value', { exact: true });
      assert.equal(await newValue.inputValue(), '', 'the current value is not shown');
      assert.equal(await replace.getByLabel('Header name').inputValue(), 'X-E2E-Token');
      await newValue.fill(replaced);
      await shot('22-credential-replace');
      await replace.getByRole('button', { name: 'Replace value', exact: true }).click();
      await page.getByRole('status').filter({ hasText: `The value of “${name}” was replaced.` }).waitFor();
      const after = await api('GET', `/credentials/${stored.id}`);
      assert.ok(Date.parse(after.updated_at) >= Date.parse(stored.updated_at));
      assert.equal(after.header_name, 'X-E2E-Token');
      await shot('23-credentials');

      // Delete, after a confirmation.
      await button(`Delete credential ${name}`).click();
      const confirm = page.getByRole('dialog', { name: `Delete credential “${name}”?` });
      await confirm.getByRole('button', { name: 'Delete credential' }).click();
      await row.waitFor({ state: 'detached' });
      assert.ok(!(await api('GET', '/credentials')).items.some((item) => item.name === name));
      const gone = await fetch(`${baseUrl}/credentials/${stored.id}`, { headers: { 'X-API-KEY': token } });
      assert.equal(gone.status, 404);

      const received = await Promise.all(bodies);
      assert.ok(received.some(({ url }) => /\/credentials$/.test(url)), 'the page listed the credentials');
      for (const { url, text } of received) {
        assert.ok(!text.includes(secret) && !text.includes(replaced), `the response of ${url} carries no credential value`);
      }
      const webStorage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
      assert.ok(!webStorage.includes(secret) && !webStorage.includes(replaced), 'no value in web storage');
    } finally {
      page.off('response', record);
    }
  });

  it('creates an API key and shows its token once, then revokes it', async () => {
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Users & API keys' }).click();
    await page.getByRole('heading', { name: 'API keys' }).waitFor();
    await button('New API key').click();
    const form = page.getByRole('dialog', { name: 'New API key' });
    await form.getByLabel('Name', { exact: true }).fill('e2e-ci');
    await form.getByLabel('Role', { exact: true }).selectOption('operator');
    await form.getByRole('button', { name: 'Create key' }).click();

    const shown = page.getByRole('dialog', { name: 'API key “e2e-ci” created' });
    await shown.waitFor();
    const created = await shown.getByLabel('API key token').inputValue();
    assert.match(created, /^rbs_[0-9a-f]{64}$/);
    assert.match(await shown.getByRole('alert').innerText(), /you will not see it again/);
    await shot('24-api-key-token');
    // The token works at once, with the role it was given.
    const me = await fetch(`${baseUrl}/me`, { headers: { 'X-API-KEY': created } });
    assert.equal(me.status, 200);
    assert.equal((await me.json()).role, 'operator');
    // Escape does not lose it by accident; Done does, for good.
    await page.keyboard.press('Escape');
    assert.equal(await shown.count(), 1);
    await shown.getByRole('button', { name: /Done/ }).click();
    await shown.waitFor({ state: 'detached' });
    assert.ok(!(await page.content()).includes(created), 'the token is gone from the page');
    const keyRow = page.getByTestId('key-e2e-ci');
    await keyRow.waitFor();
    assert.match(await keyRow.innerText(), /operator/);
    assert.match(await keyRow.innerText(), /active/);
    const listed = await api('GET', '/keys');
    assert.ok(!JSON.stringify(listed).includes(created), 'GET /keys never carries a token');
    assert.ok(listed.items.every((item) => !('token' in item)));

    await button('Revoke e2e-ci').click();
    await page.getByRole('dialog', { name: 'Revoke API key “e2e-ci”?' }).getByRole('button', { name: 'Revoke key' }).click();
    await keyRow.filter({ hasText: 'revoked' }).waitFor();
    assert.equal((await fetch(`${baseUrl}/me`, { headers: { 'X-API-KEY': created } })).status, 401, 'a revoked key is refused');
    await shot('25-access');
  });

  it('manages a user: its role, a key that follows the role, and deletion revoking the key', async () => {
    await button('New user').click();
    const form = page.getByRole('dialog', { name: 'New user' });
    await form.getByLabel('Name', { exact: true }).fill('e2e-bob');
    await form.getByLabel('Role', { exact: true }).selectOption('operator');
    await form.getByRole('button', { name: 'Create user' }).click();
    const userRow = page.getByTestId('user-e2e-bob');
    await userRow.waitFor();
    await userRow.getByLabel('Role of e2e-bob').selectOption('editor');
    await waitFor('the new role to be stored', async () => (await api('GET', '/users')).items.find((user) => user.name === 'e2e-bob')?.role === 'editor', 5_000);

    // A key owned by the user acts with the user's role.
    await button('New API key').click();
    const keyForm = page.getByRole('dialog', { name: 'New API key' });
    await keyForm.getByLabel('Name', { exact: true }).fill('e2e-bob-key');
    await keyForm.getByRole('radio', { name: /A user/ }).check();
    await keyForm.getByLabel('User', { exact: true }).selectOption({ label: 'e2e-bob (editor)' });
    await keyForm.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByRole('dialog', { name: 'API key “e2e-bob-key” created' });
    const bobToken = await shown.getByLabel('API key token').inputValue();
    await shown.getByRole('button', { name: /Done/ }).click();
    const keyRow = page.getByTestId('key-e2e-bob-key');
    await keyRow.waitFor();
    assert.match(await keyRow.innerText(), /editor[\s\S]*e2e-bob/);
    const me = await fetch(`${baseUrl}/me`, { headers: { 'X-API-KEY': bobToken } });
    assert.equal((await me.json()).role, 'editor');

    await userRow.getByRole('button', { name: 'Delete user e2e-bob' }).click();
    await page.getByRole('dialog', { name: 'Delete user “e2e-bob”?' }).getByRole('button', { name: 'Delete user' }).click();
    await userRow.waitFor({ state: 'detached' });
    await keyRow.filter({ hasText: 'revoked' }).waitFor();
    assert.equal((await fetch(`${baseUrl}/me`, { headers: { 'X-API-KEY': bobToken } })).status, 401, 'a deleted user\'s key is refused');
    await shot('25b-users');
  });

  it('keeps an operator out of the admin pages with a clear message', async () => {
    const operator = await api('POST', '/keys', { name: 'e2e-operator', role: 'operator' });
    assert.ok(operator.token, 'POST /keys returns the token');
    assert.equal((await fetch(`${baseUrl}/credentials`, { headers: { 'X-API-KEY': operator.token } })).status, 403);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').fill(operator.token);
    await button('Sign in').click();
    await page.getByTestId('whoami').filter({ hasText: 'operator' }).waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Administration' }).count(), 0, 'no admin links for an operator');
    assert.equal(await page.getByRole('link', { name: 'Credentials' }).count(), 0);

    for (const [hash, pageName] of [['#/credentials', 'Credentials'], ['#/access', 'Access'], ['#/audit', 'The audit trail']]) {
      await page.goto(`${baseUrl}/${hash}`);
      const message = page.getByTestId('admin-only');
      await message.waitFor();
      assert.match(await message.innerText(), /Admin only/);
      assert.match(await message.innerText(), new RegExp(`${pageName} can only be opened by an admin`));
      if (hash === '#/credentials') await shot('26-admin-only');
    }

    // Below editor, the runbook editor is read only: readable and copyable, never changed.
    await page.goto(runbookUrl);
    await page.getByTestId('read-only-notice').waitFor();
    assert.match(await page.getByTestId('read-only-notice').innerText(), /Read only: editing needs the editor role or higher \(you are signed in as operator\)/);
    const name = page.getByLabel('Name', { exact: true });
    assert.equal(await name.getAttribute('readonly'), '');
    await name.click();
    await page.keyboard.type('changed');
    assert.equal(await name.inputValue(), 'E2E smoke check');
    const card = page.getByRole('region', { name: 'Command block step-2' });
    assert.equal(await card.locator('.cm-content').getAttribute('aria-readonly'), 'true');
    assert.equal(await button('Save').count(), 0, 'no Save button');
    assert.equal(await button('Add block').count(), 0, 'no Add block button');
    assert.equal(await card.getByRole('button', { name: 'Delete block' }).count(), 0, 'no Delete block button');
    await page.getByTestId('dirty-indicator').filter({ hasText: 'Read only · version' }).waitFor();
    await shot('27-read-only-editor');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').fill(token);
    await button('Sign in').click();
    await page.getByTestId('whoami').filter({ hasText: 'e2e-admin' }).waitFor();
  });

  it('lists the credential actions in the audit trail and verifies the chain', async () => {
    await page.goto(`${baseUrl}/#/`);
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Audit trail' }).click();
    await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
    await page.getByLabel('Action', { exact: true }).fill('credential.');
    const rows = page.locator('[data-testid^="audit-"]');
    await waitFor('the credential records', async () => {
      const texts = await rows.allInnerTexts();
      return ['credential.create', 'credential.update', 'credential.delete'].every((action) => texts.some((text) => text.includes(action))) && texts.every((text) => text.includes('credential.'));
    }, 10_000);
    const texts = await rows.allInnerTexts();
    for (const action of ['credential.create', 'credential.update', 'credential.delete']) {
      const mine = texts.filter((text) => text.includes(action) && text.includes('e2e-api-token'));
      assert.ok(mine.length > 0 && mine.every((text) => /e2e-admin/.test(text)), `${action} by the admin: ${JSON.stringify(texts)}`);
    }
    // Newest first: the delete comes before the create.
    assert.ok(texts.findIndex((text) => text.includes('credential.delete')) < texts.findIndex((text) => text.includes('credential.create')));

    const create = rows.filter({ hasText: 'credential.create' }).first();
    const seq = (await create.getAttribute('data-testid')).replace('audit-', '');
    await page.getByRole('button', { name: `Details of record ${seq}` }).click();
    const detail = page.locator('dl.audit-detail');
    await detail.waitFor();
    assert.match(await detail.innerText(), /Hash\s+\S{16,}/);

    const listed = await api('GET', '/audit?action=credential.&limit=100');
    const actions = listed.items.map((item) => item.action);
    for (const action of ['credential.create', 'credential.update', 'credential.delete']) assert.ok(actions.includes(action), `${action} is recorded`);
    assert.ok(listed.items.every((item, i, all) => i === 0 || all[i - 1].seq > item.seq), 'newest first');

    await button('Verify chain').click();
    const result = page.getByTestId('verify-result');
    await result.waitFor();
    const verified = await api('GET', '/audit/verify');
    assert.equal(verified.ok, true);
    assert.match(await result.innerText(), /^Chain intact — [\d,]+ records? checked$/);
    await shot('27-audit');
  });

  // The next three need the engine and validation of the "execution engine complete" issue; against
  // a server without them they skip, saying what is missing.

  it('retries a failed run from its failed step, reusing the steps before it', async () => {
    const flag = join(dataDir, `retry-flag-${Date.now()}`);
    const runbook = await createRunbook('E2E retry', [
      command('one', 'echo first-step'),
      command('two', `if [ -f '${flag}' ]; then echo fixed-now; else touch '${flag}'; echo broken >&2; exit 3; fi`),
      command('three', 'echo third-step'),
    ]);
    const first = await api('POST', `/runbooks/${runbook.id}/execute`, { params: {}, version: null });
    await waitForRun(first.id, ['failed']);
    await page.goto(`${baseUrl}/#/executions/${first.id}`);
    await runStatus('failed').waitFor();
    await button('Retry from failed step').click();
    await page.waitForURL((url) => !url.hash.endsWith(first.id), { timeout: 15_000 });

    const retryId = executionId();
    await runStatus('succeeded').waitFor({ timeout: 30_000 });
    const retried = await waitForRun(retryId, ['succeeded']);
    assert.equal(retried.retry_of, first.id);
    assert.equal(retried.retry_from, 'two');
    assert.equal(retried.steps.find((step) => step.block_id === 'one').reused, true);
    assert.notEqual(retried.steps.find((step) => step.block_id === 'two').reused, true);
    await page.getByTestId('step-one').filter({ hasText: 'reused' }).waitFor();
    assert.doesNotMatch(await page.getByTestId('step-two').innerText(), /reused/);
    const link = page.getByTestId('retry-of');
    const linkText = (await link.innerText()).replace(/\s+/g, ' ');
    assert.match(linkText, new RegExp(`retry of ${first.id.slice(0, 8)} from two`));
    await shot('13-retry');
    await link.click();
    await page.waitForURL(new RegExp(`${first.id}$`));
    // The first run names its retry; retrying it again after that retry succeeded asks first.
    const retriedAs = page.getByTestId('retried-as');
    await retriedAs.filter({ hasText: 'succeeded' }).waitFor();
    assert.match((await retriedAs.innerText()).replace(/\s+/g, ' '), new RegExp(`retried as ${retryId.slice(0, 8)}`));
    await button('Retry from failed step').click();
    const again = page.getByRole('dialog', { name: 'Retry this run again?' });
    await again.waitFor();
    await shot('13b-retry-again');
    await again.getByRole('button', { name: 'Cancel' }).click();
    await again.waitFor({ state: 'detached' });
    assert.match(page.url(), new RegExp(`${first.id}$`), 'cancelling starts no retry');
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}?tab=runs`);
    await page.getByTestId(`execution-${retryId}`).getByRole('link', { name: new RegExp(first.id.slice(0, 8)) }).waitFor();
  });

  it('runs an API call and a conditional, showing the response and the branch taken', async () => {
    const runbook = await createRunbook('E2E engine kinds', [
      { id: 'ping', kind: 'api_call', method: 'GET', url: `${baseUrl}/healthz`, headers: {}, body: null, credential: null, timeout_secs: 10, expect_status: [200], on_failure: 'stop' },
      { id: 'route', kind: 'conditional', expr: 'steps.ping.status == 200', then: [command('yes', 'echo took-then')], else: [command('no', 'echo took-else')] },
    ]);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}`);
    await button('Run').click();
    await page.waitForURL(/#\/executions\/[0-9a-f-]+/, { timeout: 15_000 });
    const finished = await waitForRun(executionId(), ['succeeded', 'failed', 'stopped']);

    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.steps));
    await runStatus('succeeded').waitFor();
    await page.getByTestId('step-ping').filter({ hasText: 'HTTP 200' }).waitFor();
    await page.getByTestId('step-ping').getByText(/^Response 200/).click();
    await page.getByTestId('branch-route').filter({ hasText: 'took then' }).waitFor();
    await page.getByTestId('step-no').filter({ hasText: /skipped/i }).waitFor();
    await waitFor('the then-branch output', async () => (await page.getByTestId('console-text').textContent())?.includes('took-then'), 10_000);
    await shot('14-api-call-and-branch');
  });

  it('raises a browser notification when the run shown starts waiting for an acknowledgement', async () => {
    const runbook = await createRunbook('E2E acknowledge', [
      command('prepare', 'sleep 3'),
      { id: 'drain', kind: 'instruction', text: '## Drain node-7\nMove its pods first.', confirm: true },
      command('after', 'echo drained'),
    ]);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}`);
    await button('Run').click();
    await page.waitForURL(/#\/executions\/[0-9a-f-]+/);
    const executionId = page.url().split('/').at(-1);
    await page.getByTestId('execution-status').filter({ hasText: 'waiting' }).waitFor({ timeout: 30_000 });
    const shown = await waitFor('the notification', async () => {
      const list = await page.evaluate(() => window.__notifications);
      return list.length > 0 ? list : null;
    }, 10_000);
    assert.deepEqual(shown, [{
      title: '“E2E acknowledge” waits for you',
      body: 'Step “drain” needs your acknowledgement: Drain node-7',
      tag: `runbook-studio-${executionId}-drain`,
    }]);
    await shot('14b-waiting');
    await button('Acknowledge').click();
    await page.getByTestId('execution-status').filter({ hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
    assert.equal((await page.evaluate(() => window.__notifications)).length, 1, 'one notification for one wait');
  });

  it('shows the server\'s template and expression errors on their fields', async () => {
    const runbook = await createRunbook('E2E server checks', [
      command('greet', 'echo hello'),
      { id: 'check', kind: 'conditional', expr: 'true', then: [], else: [] },
    ]);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}`);
    const greet = page.getByRole('region', { name: 'Command block greet' });
    await greet.getByRole('textbox', { name: 'Script' }).click();
    await page.keyboard.press('End');
    // The editor closes brackets as they are typed; an `if` without `endif` stays broken.
    await page.keyboard.type(' {% if params.name %}');
    await page.getByRole('region', { name: 'Conditional block check' }).getByLabel('Expression').fill('steps.greet.exit_code ==');
    await button('Save').click();
    await page.getByRole('alert').filter({ hasText: 'The runbook was not saved' }).waitFor();

    const scriptError = await greet.locator('.field-error').first().innerText();
    assert.ok(scriptError.length > 0, 'the template error is shown on the script');
    const exprField = page.getByRole('region', { name: 'Conditional block check' }).locator('.field').filter({ has: page.getByLabel('Expression') }).first();
    assert.match(await exprField.getByRole('alert').innerText(), /\d+:\d+|line \d+, column \d+/, 'the expression error names a line and column');
    const refused = await fetch(`${baseUrl}/runbooks/${runbook.id}`, {
      method: 'PUT',
      headers: { 'X-API-KEY': token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...runbook, blocks: [command('greet', 'echo {{ params.name'), { id: 'check', kind: 'conditional', expr: 'steps.greet.exit_code ==', then: [], else: [] }] }),
    });
    assert.equal(refused.status, 422);
    const codes = (await refused.json()).error.details.map((detail) => `${detail.path} ${detail.code}`);
    assert.ok(codes.includes('blocks[0].script invalid_template'), codes.join(', '));
    assert.ok(codes.includes('blocks[1].expr invalid_expression'), codes.join(', '));
    await shot('15-server-checks');
  });

  it('pages through a runbook\'s run history', async () => {
    const runbook = await createRunbook('E2E history', [{ id: 'note', kind: 'instruction', text: 'Nothing to do.', confirm: false }]);
    const ids = [];
    for (let i = 0; i < 23; i += 1) ids.push((await api('POST', `/runbooks/${runbook.id}/execute`, { params: {}, version: null })).id);
    await waitFor('every run to finish', async () => {
      const page1 = await api('GET', `/executions?runbook_id=${runbook.id}&limit=50`);
      return page1.total === 23 && page1.items.every((execution) => execution.status === 'succeeded');
    }, 30_000);
    await page.goto(`${baseUrl}/#/runbooks/${runbook.id}?tab=runs`);
    const pager = page.getByRole('navigation', { name: 'Pages' });
    await pager.filter({ hasText: '1–20 of 23' }).waitFor();
    assert.equal(await page.locator('[data-testid^="execution-"]').count(), 20);
    await pager.scrollIntoViewIfNeeded();
    await shot('10-runs-page-1');
    await pager.getByRole('button', { name: 'Next' }).click();
    await pager.filter({ hasText: '21–23 of 23' }).waitFor();
    assert.equal(await page.locator('[data-testid^="execution-"]').count(), 3);
    // Newest first: the last page holds the first runs.
    await page.getByTestId(`execution-${ids[0]}`).waitFor();
  });

  it('loads a million-line console without stalling the page', async () => {
    const runbook = await createRunbook('E2E big output', [command('flood', 'seq 1 1000000')]);
    const started = await api('POST', `/runbooks/${runbook.id}/execute`, { params: {}, version: null });
    await waitForRun(started.id, ['succeeded'], 60_000);
    await page.goto(`${baseUrl}/#/executions/${started.id}`);
    await page.getByTestId('console').waitFor();
    // Measure the longest gap between animation frames while the console loads.
    await page.evaluate(() => {
      window.__frameGaps = [];
      let last = performance.now();
      const tick = (now) => {
        window.__frameGaps.push(now - last);
        last = now;
        if (window.__frameGaps.length < 100_000) requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    const loadStart = Date.now();
    await page.getByTestId('console-meta').filter({ hasText: /1,000,00\d lines/ }).waitFor({ timeout: 120_000 });
    const loadMs = Date.now() - loadStart;
    const gaps = await page.evaluate(() => window.__frameGaps);
    const worst = Math.max(...gaps);
    // The page answers while it loads: a search box takes typing.
    await page.getByLabel('Search console').fill('999999');
    assert.equal(await page.getByLabel('Search console').inputValue(), '999999');
    assert.match(await page.getByTestId('console-text').textContent(), /1000000/);
    assert.match(await page.getByTestId('console-trimmed').getAttribute('title'), /keeps the last 50,000 lines/);
    await shot('11-million-lines');
    console.log(`# million-line console: loaded in ${loadMs} ms, ${gaps.length} frames, longest frame gap ${Math.round(worst)} ms`);
    assert.ok(worst < 500, `the page never froze for half a second (longest frame gap ${Math.round(worst)} ms)`);
    assert.ok(loadMs < 20_000, `a million lines load in well under 20 s (took ${loadMs} ms)`);
  });
  it('opens a huge console at its tail and loads the rest on request', async () => {
    const runbook = await createRunbook('E2E huge output', [command('flood', 'seq 1 5000000')]);
    const started = await api('POST', `/runbooks/${runbook.id}/execute`, { params: {}, version: null });
    await waitForRun(started.id, ['succeeded'], 120_000);
    await page.goto(`${baseUrl}/#/executions/${started.id}`);
    const meta = page.getByTestId('console-meta').first();
    await page.getByTestId('console-meta').filter({ hasText: /^complete · 37\.1 MB/ }).waitFor({ timeout: 60_000 });
    await page.getByText(/^29\.\d MB skipped$/).waitFor();
    const tail = await page.getByTestId('console-text').textContent();
    assert.match(tail, /\n5000000\r?\n/, 'the tail is there');
    assert.doesNotMatch(tail, /▶ flood/, 'the start is not loaded');
    assert.ok(!/5,000,00\d lines/.test(await meta.innerText()), 'only the tail was read');
    await shot('16-huge-console-tail');
    await button('Load all').click();
    await page.getByTestId('console-meta').filter({ hasText: /5,000,002 lines/ }).waitFor({ timeout: 120_000 });
    assert.equal(await button('Load all').count(), 0);
  });
});
