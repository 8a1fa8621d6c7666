//! Desktop end-to-end test: drives the real Tauri app through tauri-driver (W3C WebDriver over
//! WebKitWebDriver) — create a runbook with a command block, save it, run it, read the console;
//! a run that waits for an acknowledgement sends a desktop notification over a private D-Bus;
//! a run a terminal's `runbook-studio run` executes on the same data shows its console live.
//!
//! Run (needs a display; the Makefile wraps it):
//!   xvfb-run -a -s "-screen 0 1280x800x24" node --test tests/e2e/desktop.mjs
//! Env: RUNBOOK_DESKTOP_BIN (app binary, built with `--features custom-protocol`),
//!      RUNBOOK_BIN (the `runbook-studio` CLI),
//!      TAURI_DRIVER, WEBKIT_WEBDRIVER, E2E_TIMEOUT_MS (hard limit for the whole run).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, createWriteStream, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(HERE, process.env.RUNBOOK_DESKTOP_BIN ?? '../../target/debug/runbook-studio-desktop');
const CLI = resolve(HERE, process.env.RUNBOOK_BIN ?? '../../target/debug/runbook-studio');
const NATIVE_DRIVER = process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver';
const SCREENSHOTS = join(HERE, 'screenshots');
const ARTIFACTS = join(HERE, '.artifacts');
const HARD_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 300_000);
const REQUEST_TIMEOUT_MS = 30_000;
const MARKER = 'hello-from-desktop';
/** W3C WebDriver's key for element references in JSON. */
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

const dataDir = mkdtempSync(join(tmpdir(), 'runbook-desktop-e2e-'));
let driver = null;
let sessionUrl = null;
/** A private D-Bus session bus for the app, and a monitor recording what is sent on it. */
let bus = null;
let busMonitor = null;
let busLog = '';
let busAddress = null;
/** A terminal's `runbook-studio run` on the app's data. */
let terminal = null;

/**
 * Starts a session bus of the test's own (no services to activate: no keychain, no
 * notification daemon) and records every call to the desktop notification service made on
 * it, as `dbus-monitor` prints them. Returns the bus address.
 */
async function startBus() {
  const config = join(dataDir, 'session-bus.conf');
  writeFileSync(config, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=${dataDir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`);
  bus = spawn('dbus-daemon', [`--config-file=${config}`, '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let printed = '';
  bus.stdout.on('data', (chunk) => { printed += chunk; });
  const address = await waitFor('the session bus address', () => printed.includes('\n') && printed.trim(), 10_000);
  busAddress = address;
  busMonitor = spawn('dbus-monitor', ['--address', address, "interface='org.freedesktop.Notifications'"], { stdio: ['ignore', 'pipe', 'inherit'] });
  busMonitor.stdout.on('data', (chunk) => { busLog += chunk; });
  // The monitor is in place once the bus has told it its name.
  await waitFor('the bus monitor', () => busLog.includes('NameAcquired'), 10_000);
  return address;
}

function stopBus() {
  for (const child of [busMonitor, bus]) {
    if (child && child.exitCode === null) child.kill('SIGTERM');
  }
}

function findTauriDriver() {
  if (process.env.TAURI_DRIVER) return process.env.TAURI_DRIVER;
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(join(homedir(), '.cargo', 'bin'));
  const found = dirs.map((d) => join(d, 'tauri-driver')).find((p) => existsSync(p));
  if (!found) throw new Error('tauri-driver not found: `cargo install tauri-driver --locked`');
  return found;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One W3C WebDriver call; throws with the driver's error message on failure. */
async function wd(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const v = json.value ?? {};
    throw new Error(`${method} ${url} -> ${res.status} ${v.error ?? ''}: ${v.message ?? JSON.stringify(json)}`);
  }
  return json.value;
}

const session = (method, path, body) => wd(method, `${sessionUrl}${path}`, body);

/** Polls `probe` until it returns a truthy value; `what` names the wait in the timeout error. */
async function waitFor(what, probe, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      lastError = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${lastError.message})` : ''}`);
}

async function findAll(xpath) {
  const found = await session('POST', '/elements', { using: 'xpath', value: xpath });
  return found.map((e) => e[ELEMENT]);
}

/** The first displayed element matching `xpath`, waiting for it to appear. */
async function waitVisible(what, xpath, timeoutMs) {
  return waitFor(what, async () => {
    for (const id of await findAll(xpath)) {
      if (await session('GET', `/element/${id}/displayed`)) return id;
    }
    return null;
  }, timeoutMs);
}

/** XPath for a control the user identifies by its accessible name (text, aria-label or title). */
function named(tag, name) {
  const n = JSON.stringify(name).replaceAll('"', "'");
  return `//${tag}[normalize-space(.)=${n} or @aria-label=${n} or @title=${n}]`;
}

/** Waits until no displayed element matches `xpath`. */
async function waitGone(what, xpath, timeoutMs) {
  return waitFor(what, async () => {
    for (const id of await findAll(xpath)) {
      if (await session('GET', `/element/${id}/displayed`)) return false;
    }
    return true;
  }, timeoutMs);
}

async function click(what, xpath) {
  const id = await waitVisible(what, xpath);
  await session('POST', `/element/${id}/click`, {});
  return id;
}

async function text(id) {
  return session('GET', `/element/${id}/text`);
}

async function screenshot(name) {
  // WebKit captures the last painted frame: let the current DOM reach the screen first.
  await session('POST', '/execute/async', {
    script: 'const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()))',
    args: [],
  });
  const png = await session('GET', '/screenshot');
  mkdirSync(SCREENSHOTS, { recursive: true });
  writeFileSync(join(SCREENSHOTS, `desktop-${name}.png`), Buffer.from(png, 'base64'));
}

function stopTerminal() {
  if (terminal && terminal.exitCode === null && terminal.signalCode === null) terminal.kill('SIGTERM');
}

function stopDriver() {
  if (!driver || driver.exitCode !== null) return;
  try {
    // tauri-driver was started as its own process group: this reaches WebKitWebDriver and the app.
    process.kill(-driver.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

async function cleanup() {
  if (sessionUrl) {
    await wd('DELETE', sessionUrl).catch(() => {});
    sessionUrl = null;
  }
  stopTerminal();
  stopDriver();
  stopBus();
  rmSync(dataDir, { recursive: true, force: true });
}

/** Ends the run at once: the driver's process group (and so the app) and the temp data go. */
function abort(reason, exitCode) {
  console.error(`desktop e2e: ${reason}`);
  stopTerminal();
  stopDriver();
  stopBus();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(exitCode);
}

// The hard limit: whatever hangs (driver, app, a fetch), the run ends.
const watchdog = setTimeout(() => abort(`hard timeout after ${HARD_TIMEOUT_MS} ms`, 2), HARD_TIMEOUT_MS);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => abort(`interrupted by ${signal}`, 130));

after(async () => {
  await cleanup();
  clearTimeout(watchdog);
});

/**
 * Authors a new runbook with a command block running `script`, typed into its CodeMirror script
 * editor (a contenteditable, so through real key events), and saves it: every save makes a
 * version, so the new runbook's version 1 becomes version 2. `editorShot` names a screenshot of
 * the editor taken before the save. Returns the block's id.
 */
async function authorCommandRunbook(script, editorShot) {
  await click('"New runbook"', named('button', 'New runbook'));
  await waitVisible('the new runbook in the editor', '//*[@data-testid="dirty-indicator" and contains(.,"version 1")]');
  await click('"Add block"', named('button', 'Add block'));
  await click('"Command" in the add-block menu', named('*[@role="menuitem"]', 'Command'));
  // The new command block is the last card.
  const card = await waitVisible('the new command block', '(//*[starts-with(@data-testid,"block-")])[last()]');
  const blockId = (await session('GET', `/element/${card}/attribute/data-testid`)).slice('block-'.length);
  const [editor] = await findAll(`//*[@data-testid="block-${blockId}"]//*[contains(@class,"cm-content")]`);
  assert.ok(editor, `block ${blockId} has no script editor`);
  await session('POST', `/element/${editor}/click`, {});
  await session('POST', `/element/${editor}/value`, { text: script });
  const typedEnd = script.slice(-12);
  await waitFor('the script text in the editor', async () => (await text(editor)).includes(typedEnd), 5_000);
  if (editorShot) await screenshot(editorShot);
  await click('"Save"', named('button', 'Save'));
  await waitVisible('the save to finish', '//*[@data-testid="dirty-indicator" and contains(.,"Saved") and contains(.,"version 2")]', 15_000);
  return blockId;
}

async function startApp() {
  assert.ok(existsSync(BIN), `app binary not found at ${BIN}: cargo build -p runbook-studio-desktop --features custom-protocol`);
  const port = await freePort();
  const nativePort = await freePort();
  mkdirSync(ARTIFACTS, { recursive: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Screenshots of an earlier run must not pass for this one's.
  for (const old of readdirSync(SCREENSHOTS).filter((f) => f.startsWith('desktop-'))) rmSync(join(SCREENSHOTS, old));
  const log = createWriteStream(join(ARTIFACTS, 'desktop-driver.log'));
  const env = {
    ...process.env,
    RUNBOOK_DATA_DIR: dataDir,
    RUNBOOK_EXPORT_DIR: join(dataDir, 'reports'),
    DBUS_SESSION_BUS_ADDRESS: await startBus(),
  };
  delete env.DATABASE_URL; // always the embedded SQLite database of the temp data dir
  driver = spawn(
    findTauriDriver(),
    ['--port', String(port), '--native-port', String(nativePort), '--native-driver', NATIVE_DRIVER],
    { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  driver.stdout.pipe(log);
  driver.stderr.pipe(log);
  const base = `http://127.0.0.1:${port}`;
  await waitFor('tauri-driver to listen', () => wd('GET', `${base}/status`).then(() => true), 15_000);
  const created = await wd('POST', `${base}/session`, {
    capabilities: { alwaysMatch: { 'tauri:options': { application: BIN } } },
  });
  sessionUrl = `${base}/session/${created.sessionId}`;
  await session('POST', '/timeouts', { implicit: 0, pageLoad: 30_000, script: 10_000 });
}

test('desktop: author a runbook with a command block, run it, see its output; store a credential and find it in the verified audit trail', async () => {
  await startApp();
  try {
    await waitVisible('the "New runbook" button', named('button', 'New runbook'), 30_000);
    await waitGone('the first data to load', '//*[normalize-space(.)="Loading…"]');
    await screenshot('01-start');

    const blockId = await authorCommandRunbook(`echo ${MARKER}`, '02-editor');
    // Saved and without parameters, Run starts at once and opens the run view.
    await click('"Run"', named('button', 'Run'));

    const consoleText = await waitFor(`"${MARKER}" in the console`, async () => {
      const [id] = await findAll('//*[@data-testid="console-text"]');
      // The mirror is visually hidden, so WebDriver's "text" (rendered text) would be empty.
      const value = id ? await session('POST', '/execute/sync', { script: 'return arguments[0].textContent', args: [{ [ELEMENT]: id }] }) : '';
      return value?.includes(MARKER) ? value : null;
    }, 30_000);
    assert.match(consoleText, new RegExp(`^${MARKER}$`, 'm'), 'the command output is a line of its own');

    await waitVisible('the execution status "succeeded"', '//*[@data-testid="execution-status" and normalize-space(.)="succeeded"]', 30_000);
    const [step] = await findAll(`//*[@data-testid="step-${blockId}"]`);
    assert.ok(step, `no timeline row for block ${blockId}`);
    assert.match(await text(step), /succeeded/i);
    await screenshot('03-run-succeeded');

    // The run's report for its postmortem is saved as a file, and the view says where.
    await click('"Export report"', named('button', 'Export report'));
    const notice = await waitVisible('the saved report notice', '//*[@data-testid="export-notice" and contains(., "Report saved to")]', 15_000);
    const saved = (await text(notice)).replace(/^.*Report saved to\s*/s, '').trim();
    assert.ok(saved.startsWith(join(dataDir, 'reports') + '/'), `the report is saved in the export directory: ${saved}`);
    const report = readFileSync(saved, 'utf8');
    assert.match(report, /^# Run report: /);
    assert.match(report, /## Steps\n/);
    assert.ok(report.includes(MARKER), 'the console is in the report');
    assert.ok(!report.includes('\x1b'), 'the console has no escape codes');
    await screenshot('03b-report-saved');

    // So is its whole console, as plain text, with its size.
    await click('"Save console"', named('button', 'Save console'));
    const consoleNotice = await waitVisible('the saved console notice', '//*[@data-testid="console-notice" and contains(., "Console saved to")]', 15_000);
    const [, logPath, size] = (await text(consoleNotice)).match(/Console saved to\s*(\S+)\s*\(([^)]+)\)/s) ?? [];
    assert.ok(logPath?.startsWith(join(dataDir, 'reports') + '/') && logPath.endsWith('.log'), `the console is saved in the export directory: ${logPath}`);
    const log = readFileSync(logPath, 'utf8');
    assert.match(log, new RegExp(`^${MARKER}$`, 'm'), 'the command output is a line of its own');
    assert.ok(!log.includes('\x1b') && !log.includes('\r'), 'plain text');
    assert.equal(size, `${Buffer.byteLength(log)} B`, 'the notice gives the size');
    await screenshot('03c-console-saved');

    // Credentials in the desktop app. Under Xvfb there is no keychain, so the master key
    // lives in a key file and the app says so.
    await click('"Credentials" in the sidebar', named('a', 'Credentials'));
    await waitVisible('the key file warning', '//*[@data-testid="vault-warning" and contains(., "No system keychain")]');
    await click('"New credential"', named('button', 'New credential'));
    const field = (label) =>
      `//*[@role="dialog"]//*[@id=//*[@role="dialog"]//label[normalize-space(.)="${label}"]/@for]`;
    const secret = `desktop-secret-${process.pid}`;
    for (const [label, value] of [['Name', 'desktop-token'], ['Value', secret]]) {
      const input = await waitVisible(`the ${label} field`, field(label));
      await session('POST', `/element/${input}/value`, { text: value });
    }
    await click('"Create credential"', named('button', 'Create credential'));
    await waitVisible('the new credential in the list', '//*[@data-testid="credential-desktop-token"]', 15_000);
    await waitGone('the dialog', '//*[@role="dialog"]');
    const page = String(await session('GET', '/source'));
    assert.ok(!page.includes(secret), 'the page never holds the value once it is stored');
    await screenshot('04-credentials');

    await click('"Audit trail" in the sidebar', named('a', 'Audit trail'));
    await waitVisible('the credential.create record', '//*[normalize-space(.)="credential.create"]', 15_000);
    await click('"Verify chain"', named('button', 'Verify chain'));
    await waitVisible('the verdict', '//*[contains(normalize-space(.), "Chain intact")]', 15_000);
    await screenshot('05-audit');

    // A run that waits for an acknowledgement raises a desktop notification (sent over the
    // session bus to the notification service), and Acknowledge lets it go on.
    await click('"New runbook"', named('button', 'New runbook'));
    await waitVisible('the new runbook in the editor', '//*[@data-testid="dirty-indicator" and contains(.,"version 1")]');
    await click('"Wait for a person to acknowledge this step"', '//label[contains(normalize-space(.), "Wait for a person to acknowledge this step")]');
    await click('"Save"', named('button', 'Save'));
    await waitVisible('the save to finish', '//*[@data-testid="dirty-indicator" and contains(.,"Saved") and contains(.,"version 2")]', 15_000);
    await click('"Run"', named('button', 'Run'));
    await waitVisible('the execution status "waiting"', '//*[@data-testid="execution-status" and normalize-space(.)="waiting"]', 30_000);
    const notified = await waitFor('the notification on the session bus', () => {
      const call = busLog.split(/(?=method call )/).find((m) => m.includes('member=Notify'));
      return call ?? null;
    }, 15_000);
    assert.ok(notified.includes('string "“Untitled runbook” waits for you"'), notified);
    assert.ok(notified.includes('string "Step “step-1” needs your acknowledgement: Describe the first step here."'), notified);
    await screenshot('06-waiting');
    // Its accessible name is "Acknowledge"; its text also holds the shortcut key.
    await click('"Acknowledge"', '//*[@aria-label="Run controls"]//button[starts-with(normalize-space(.), "Acknowledge")]');
    await waitVisible('the execution status "succeeded"', '//*[@data-testid="execution-status" and normalize-space(.)="succeeded"]', 30_000);
  } catch (error) {
    await screenshot('99-failure').catch(() => {});
    const source = await session('GET', '/source').catch(() => '');
    writeFileSync(join(ARTIFACTS, 'desktop-failure.html'), String(source));
    throw error;
  }
});

test('desktop: the console of a run a terminal executes on the same data goes on live', async () => {
  assert.ok(sessionUrl, 'the app is up (the first test started it)');
  assert.ok(existsSync(CLI), `CLI binary not found at ${CLI}: cargo build -p runbook-server --bin runbook-studio`);
  // The run waits at each gate until the test opens it. Typed into the script editor, so no
  // quotes or brackets (the editor closes those itself).
  const gate = (name) => join(dataDir, `follow-${name}`);
  const script =
    `echo terminal-first; while test ! -e ${gate('go')}; do sleep 0.1; done; ` +
    `echo terminal-second; while test ! -e ${gate('end')}; do sleep 0.1; done; echo terminal-last`;
  try {
    await authorCommandRunbook(script);
    const url = await session('GET', '/url');
    const runbookId = /#\/runbooks\/([0-9a-f-]{36})/.exec(url)?.[1];
    assert.ok(runbookId, `the editor's address names the runbook: ${url}`);

    // A terminal runs it on the app's database: this app does not execute it.
    let printed = '';
    const env = { ...process.env, RUNBOOK_DATA_DIR: dataDir, DBUS_SESSION_BUS_ADDRESS: busAddress };
    delete env.DATABASE_URL; // the app's embedded SQLite database
    terminal = spawn(CLI, ['run', runbookId, '--yes', '--no-keychain'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    terminal.stdout.on('data', (chunk) => { printed += chunk; });
    terminal.stderr.on('data', (chunk) => { printed += chunk; });
    const exited = new Promise((resolveExit) => terminal.on('exit', (code) => resolveExit(code)));
    await waitFor('the terminal to print the first line', () => printed.includes('terminal-first'), 30_000);

    await click('"All runs" in the sidebar', named('a', 'All runs'));
    await click('the running run', '//a[starts-with(@aria-label, "Open run ") and contains(@aria-label, ", running")]');
    await waitVisible('the execution status "running"', '//*[@data-testid="execution-status" and normalize-space(.)="running"]', 15_000);
    const consoleText = async () => {
      const [id] = await findAll('//*[@data-testid="console-text"]');
      return id ? String(await session('POST', '/execute/sync', { script: 'return arguments[0].textContent', args: [{ [ELEMENT]: id }] })) : '';
    };
    await waitFor('the first line in the console', async () => (await consoleText()).includes('terminal-first'), 15_000);
    // Longer than the view's own second read after it opens: what comes now comes live.
    await sleep(2_000);
    writeFileSync(gate('go'), '');
    await waitFor('the second line in the console while the run goes on', async () => (await consoleText()).includes('terminal-second'), 10_000);
    const running = await findAll('//*[@data-testid="execution-status" and normalize-space(.)="running"]');
    assert.equal(running.length, 1, 'the run still waits at its last gate');
    await screenshot('07-followed-from-terminal');

    writeFileSync(gate('end'), '');
    await waitVisible('the execution status "succeeded"', '//*[@data-testid="execution-status" and normalize-space(.)="succeeded"]', 30_000);
    await waitFor('the last line in the console', async () => (await consoleText()).includes('terminal-last'), 10_000);
    assert.equal(await exited, 0, `the terminal's run succeeded: ${printed}`);
    assert.match(await consoleText(), /^terminal-first$[\s\S]*^terminal-second$[\s\S]*^terminal-last$/m);
  } catch (error) {
    await screenshot('98-follow-failure').catch(() => {});
    writeFileSync(join(ARTIFACTS, 'desktop-follow-failure.html'), String(await session('GET', '/source').catch(() => '')));
    throw error;
  }
});
