// test_dashboard.mjs - headless Chromium drives the dashboard served by the real prunerd daemon.
//
// Starts `prunerd serve` on a free port with a temporary data dir, the shared
// model and data as roots and one admin token; then, in the browser: enters
// the token, loads the model's parameters, submits the seed job through the
// form (first with a bad amount, whose 400 must land next to the amount
// field), watches its row reach `succeeded`, opens the job page (sparsity
// chart: one bar per pruned parameter; confusion difference; timeline),
// downloads a checkpoint and result.json and compares them with the API,
// cancels and deletes jobs, and checks polling pauses while the tab is hidden.
// Saves screenshot-jobs.png and screenshot-job.png into PRUNERD_SCREENSHOTS
// (default: the build folder); `PRUNERD_SCREENSHOTS=docs` refreshes the README's.
//
// Needs PRUNERD_BIN, PRUNERD_SHARED, /usr/bin/chromium (or PRUNERD_CHROMIUM)
// and node_modules/playwright-core (`npm ci` at the repository root).
// Missing any of them is a failure, never a skip.  Prints "N passed, N failed".
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PRUNERD_BIN || '';
/* Resolved: the daemon refuses request paths with ".." in them. */
const SHARED = process.env.PRUNERD_SHARED && fs.existsSync(process.env.PRUNERD_SHARED) ? fs.realpathSync(process.env.PRUNERD_SHARED) : process.env.PRUNERD_SHARED || '';
const CHROMIUM = process.env.PRUNERD_CHROMIUM || '/usr/bin/chromium';
const DOCS = path.resolve(ROOT, process.env.PRUNERD_SCREENSHOTS || process.env.PRUNERD_BUILD || 'build');
const MODEL = 'thucnews-bert-l4-h256.pt';
const TOKEN = 'browser-test-secret';
const SEED_TARGET = 'bert.encoder.layer.*.attention.self.query';

let passed = 0;
let failed = 0;

function check(cond, what, got) {
  if (cond) passed++;
  else {
    failed++;
    console.log('FAIL ' + what + (got !== undefined ? ': got ' + JSON.stringify(got) : ''));
  }
  return !!cond;
}

function finish(extraFailure) {
  if (extraFailure) {
    failed++;
    console.log('FAIL ' + extraFailure);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/* ---- preconditions: fail loudly, never skip ---- */

const modelPath = path.join(SHARED, 'models', MODEL);
const dataDir = path.join(SHARED, 'data');
const evalFiles = {
  data: path.join(dataDir, 'thucnews', 'dev.txt'),
  vocab: path.join(dataDir, 'vocab', 'bert-base-chinese-vocab.txt'),
  classes: path.join(dataDir, 'thucnews', 'class.txt'),
};
if (!BIN || !fs.existsSync(BIN)) finish(`PRUNERD_BIN is not a prunerd binary: '${BIN}' (run through meson test)`);
for (const f of [modelPath, ...Object.values(evalFiles)])
  if (!fs.existsSync(f)) finish(`shared data missing: ${f} (PRUNERD_SHARED='${SHARED}')`);
if (!fs.existsSync(CHROMIUM)) finish(`${CHROMIUM} is missing: install Debian's chromium (tools/deps.sh)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  finish(`cannot load playwright-core (${e.message}): run \`npm ci\` at ${ROOT}`);
}

/* ---- the daemon ---- */

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prunerd-browser-'));
const conf = path.join(tmp, 'prunerd.conf');
fs.writeFileSync(conf, `[tokens]\nbrowser = admin:${sha256(TOKEN)}\n`);
const logPath = path.join(tmp, 'daemon.log');
const logFd = fs.openSync(logPath, 'a');
const daemon = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(tmp, 'var'),
  '--model-root', path.join(SHARED, 'models'), '--data-root', dataDir, '--config', conf, '--workers', '1'],
  { stdio: ['ignore', logFd, logFd] });
const daemonLog = () => fs.readFileSync(logPath, 'utf8');

let context = null;
let userDir = null;

async function cleanup() {
  if (context) await context.close().catch(() => {});
  if (daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill('SIGTERM');
    await Promise.race([new Promise((r) => daemon.once('exit', r)), sleep(30000)]);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    /* Under ASan a leak turns into a non-zero exit status. */
    check(daemon.exitCode === 0, 'the daemon stops cleanly on SIGTERM', [daemon.exitCode, daemon.signalCode]);
  }
  if (failed) console.log('--- daemon log (tail) ---\n' + daemonLog().slice(-3000));
  fs.rmSync(tmp, { recursive: true, force: true });
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
}

let port = null;
for (let i = 0; i < 400 && port === null; i++) {
  if (daemon.exitCode !== null) break;
  const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(daemonLog());
  if (m) port = Number(m[1]);
  else await sleep(50);
}
if (port === null) {
  await cleanup();
  finish('prunerd did not start listening: ' + daemonLog().slice(-2000));
}
const BASE = `http://127.0.0.1:${port}`;

async function apiCall(method, p, body) {
  const headers = { Authorization: 'Bearer ' + TOKEN };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(BASE + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  return { status: r.status, headers: r.headers, data };
}

async function waitFor(fn, what, timeoutMs = 20000, stepMs = 100) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < timeoutMs) {
    last = await fn();
    if (last) return last;
    await sleep(stepMs);
  }
  check(false, 'timed out waiting for ' + what, last);
  return null;
}

/* ---- the static files, without a browser ---- */

async function testStatic() {
  const r = await fetch(BASE + '/');
  const body = await r.text();
  check(r.status === 200, 'GET / is 200', r.status);
  check((r.headers.get('content-type') || '').startsWith('text/html'), 'GET / is HTML', r.headers.get('content-type'));
  check(r.headers.get('cache-control') === 'no-cache', 'GET / Cache-Control: no-cache', r.headers.get('cache-control'));
  const etag = r.headers.get('etag') || '';
  check(/^"[0-9a-f]{32}"$/.test(etag), 'GET / has a strong ETag', etag);
  check(body.includes('src="/app.js"') && body.includes('href="/style.css"') && !/https?:\/\/(?!127)/.test(body.replace(/http:\/\/www\.w3\.org[^"]*/g, '')),
    'index.html loads its own files only (no CDN)');
  const idx = await fetch(BASE + '/index.html');
  check(idx.status === 200 && idx.headers.get('etag') === etag, '/index.html is / with the same ETag', idx.headers.get('etag'));
  for (const [p, type] of [['/app.js', 'text/javascript'], ['/style.css', 'text/css']]) {
    const a = await fetch(BASE + p);
    const text = await a.text();
    check(a.status === 200 && (a.headers.get('content-type') || '').startsWith(type), `${p} is ${type}`, [a.status, a.headers.get('content-type')]);
    check(text.length > 1000 && Number(a.headers.get('content-length')) === Buffer.byteLength(text), `${p} Content-Length`, a.headers.get('content-length'));
    const again = await fetch(BASE + p, { headers: { 'If-None-Match': a.headers.get('etag') } });
    check(again.status === 304, `${p} If-None-Match -> 304`, again.status);
    const other = await fetch(BASE + p, { headers: { 'If-None-Match': '"0000"' } });
    check(other.status === 200, `${p} other ETag -> 200`, other.status);
  }
  const js = fs.readFileSync(path.join(ROOT, 'web', 'app.js'), 'utf8');
  check(!/\.innerHTML\s*=|insertAdjacentHTML|document\.write/.test(js), 'app.js never writes markup (no innerHTML)');
  const none = await fetch(BASE + '/nothing.js');
  check(none.status === 404, 'an unknown file is 404', none.status);
  const jobs = await fetch(BASE + '/v1/jobs');
  check(jobs.status === 401, 'the API itself still wants the token', jobs.status);
}

/* ---- hundreds of jobs: the list answered by the test, DOM changes counted ---- */

function fakeJobs(n, changed) {
  const created = new Date(Date.now() - 3 * 86400e3).toISOString();
  const jobs = [];
  for (let i = 0; i < n; i++) {
    const done = i === 7 && changed;
    jobs.push({
      id: '00000000-0000-4000-8000-' + String(i).padStart(12, '0'), name: 'fake job ' + i,
      status: i === 7 ? (done ? 'succeeded' : 'running') : i % 3 ? 'succeeded' : 'failed',
      stage: i === 7 && !done ? 'evaluating_after' : 'saving', progress: i === 7 && !done ? 0.6 : 1, owner: 'browser',
      created_at: created, started_at: created, finished_at: created,
      request: { model: '/m.pt', targets: ['bert.encoder.layer.*.attention.self.query'], method: 'l1_unstructured', amount: 0.3, amount_kind: 'fraction', scope: 'global' },
      accuracy_before: 0.9, accuracy_after: done || i !== 7 ? 0.85 : null, macro_f1_before: 0.88, macro_f1_after: done || i !== 7 ? 0.8 : null,
    });
  }
  return { jobs, next_cursor: null };
}

async function testManyJobs(page) {
  const N = 300;
  let changed = false;
  let served = 0;
  const isList = (u) => u.pathname === '/v1/jobs';
  await page.route(isList, (route) => {
    served++;
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(fakeJobs(N, changed)) });
  });
  await waitFor(async () => (await page.locator('#jobs tbody tr').count()) === N, `${N} rows`, 10000);
  check(await page.locator('#jobs tbody tr').count() === N, `${N} jobs make ${N} rows`);
  await page.evaluate(() => {
    window.__mutations = [];
    window.__observer = new MutationObserver((ms) => {
      for (const m of ms) {
        const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
        const tr = node && node.closest('tr');
        window.__mutations.push(tr ? tr.dataset.id || 'row?' : m.type + ' on tbody');
      }
    });
    window.__observer.observe(document.querySelector('#jobs tbody'), { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const before = served;
  await waitFor(() => served >= before + 2, 'two more polls', 5000, 50);
  await sleep(100);
  const quiet = await page.evaluate(() => window.__mutations.splice(0));
  check(quiet.length === 0, 'an unchanged list of 300 jobs changes nothing in the DOM', quiet.slice(0, 5));
  changed = true;
  const id7 = '00000000-0000-4000-8000-000000000007';
  await page.waitForSelector(`#jobs tbody tr[data-id="${id7}"][data-status=succeeded]`);
  await sleep(100);
  const touched = await page.evaluate(() => window.__mutations.splice(0));
  check(touched.length > 0 && touched.every((id) => id === id7), 'one job changing touches only its row', [...new Set(touched)].slice(0, 5));
  const t = Date.now();
  const polls = served;
  await sleep(1500);
  const ms = await page.evaluate(() => {
    window.__observer.disconnect();
    return window.__mutations.length;
  });
  check(ms === 0 && served > polls, 'later polls of the same list change nothing', [ms, served - polls, Date.now() - t]);
  await page.unroute(isList);
  await waitFor(async () => (await page.locator('#jobs tbody tr').count()) === 3, 'the real jobs again', 10000);
}

/* ---- the browser ---- */

async function main() {
  await testStatic();
  const inspect = await apiCall('GET', '/v1/models/inspect?path=' + encodeURIComponent(MODEL));
  if (!check(inspect.status === 200, 'inspect the shared model through the API', inspect.status)) return;
  const paramNames = inspect.data.tensors.filter((t) => t.kind === 'parameter').map((t) => t.name);
  const queryWeights = paramNames.filter((n) => /^bert\.encoder\.layer\.\d+\.attention\.self\.query\.weight$/.test(n));

  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunerd-chromium-'));
  context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20000);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text());
  });
  const apiRequests = []; /* every request the page makes to the API */
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/v1/')) apiRequests.push({ t: Date.now(), method: r.method(), path: u.pathname, search: u.search, auth: r.headers().authorization || '' });
  });

  // 1. No token yet: the page says so.
  await page.goto(BASE + '/');
  await page.waitForSelector('#banner:not([hidden])');
  check(/token/i.test(await page.textContent('#banner')), 'without a token the page asks for one', await page.textContent('#banner'));
  const tokenSetAt = apiRequests.length;

  // 2. Token in the page (sessionStorage), then the empty jobs table.
  await page.fill('#token', TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForSelector('#jobs-empty:not([hidden])');
  check(await page.isHidden('#banner'), 'the banner goes once the token works');
  check(await page.evaluate(() => sessionStorage.getItem('prunerd.token')) === TOKEN, 'the token is kept in sessionStorage');

  // 3. Submit form: load the parameters, pick a target, bad amount first.
  await page.click('nav a[data-nav=submit]');
  await page.waitForSelector('#view-submit:not([hidden])');
  await page.fill('#f-model', MODEL);
  await page.click('#f-inspect');
  await page.waitForSelector('#f-params-body tr');
  check(await page.locator('#f-params-body tr').count() === paramNames.length, 'the parameter list shows every parameter',
    [await page.locator('#f-params-body tr').count(), paramNames.length]);
  const box = page.locator(`#f-params-body tr[data-param="${queryWeights[0]}"] input[type=checkbox]`);
  await box.check();
  check((await page.inputValue('#f-targets')).trim() === queryWeights[0], 'ticking a parameter adds it to the targets', await page.inputValue('#f-targets'));
  await box.uncheck();
  check((await page.inputValue('#f-targets')).trim() === '', 'unticking takes it away', await page.inputValue('#f-targets'));
  await page.fill('#f-targets', SEED_TARGET);
  await page.fill('#f-name', 'seed: global L1 30% on query');
  await page.selectOption('#f-method', 'l1_unstructured');
  await page.check('input[name=amount_kind][value=fraction]');
  await page.selectOption('#f-scope', 'global');
  await page.fill('#f-eval-data', evalFiles.data);
  await page.fill('#f-eval-vocab', evalFiles.vocab);
  await page.fill('#f-eval-classes', evalFiles.classes);
  // A fraction of 1 goes out as the JSON number 1: amount_kind keeps it a fraction.
  // limit 0 is refused, and the error for a nested field lands next to it.
  await page.fill('#f-eval-limit', '0');
  await page.fill('#f-amount', '1');
  const [nested] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/jobs') && r.request().method() === 'POST'),
    page.click('#f-submit'),
  ]);
  const sentNested = nested.request().postDataJSON();
  check(sentNested.amount === 1 && sentNested.amount_kind === 'fraction', 'amount 1 is sent with amount_kind fraction', sentNested);
  const nestedBody = await nested.json().catch(() => null);
  check(nested.status() === 400 && nestedBody?.error?.field === 'eval.limit', 'limit 0 is refused as eval.limit', [nested.status(), nestedBody]);
  await page.locator('.field[data-field="eval.limit"] .field-error').waitFor();
  check(await page.textContent('.field[data-field="eval.limit"] .field-error') === nestedBody?.error?.message, "the eval.limit error is shown next to the limit field");
  await page.fill('#f-eval-limit', '200');

  await page.fill('#f-amount', '1.5');
  const [bad] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/jobs') && r.request().method() === 'POST'),
    page.click('#f-submit'),
  ]);
  check(bad.status() === 400, 'amount 1.5 (fraction) is refused by the API', bad.status());
  const badBody = await bad.json().catch(() => null);
  check(badBody?.error?.field === 'amount', 'the API names the amount field', badBody);
  const err = page.locator('.field[data-field="amount"] .field-error');
  await err.waitFor();
  const errText = await err.textContent();
  check(errText === badBody?.error?.message, "the API's message is shown next to the amount field", errText);
  check(await page.getAttribute('#f-amount', 'aria-invalid') === 'true', 'the amount input is marked invalid');
  check(await page.locator('.field-error').count() === 1, 'only that field shows an error', await page.locator('.field-error').count());
  const sentBad = bad.request().postDataJSON();
  check(sentBad.amount === 1.5 && sentBad.amount_kind === 'fraction', 'the bad request carried amount and amount_kind', sentBad);

  await page.fill('#f-amount', '0.3');
  check(await page.locator('.field-error').count() === 0, 'editing the field clears its error');
  const [good] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/jobs') && r.request().method() === 'POST'),
    page.click('#f-submit'),
  ]);
  check(good.status() === 201, 'the seed job is accepted', good.status());
  const sent = good.request().postDataJSON();
  check(sent.amount === 0.3 && sent.amount_kind === 'fraction' && sent.scope === 'global' && sent.method === 'l1_unstructured' &&
    JSON.stringify(sent.targets) === JSON.stringify([SEED_TARGET]) && sent.eval?.limit === 200, 'the form sent the seed request', sent);
  const seedId = (await good.json()).id;
  await page.waitForFunction((id) => location.hash === '#/jobs/' + id, seedId);
  check(true, 'after submitting, the page shows the new job');

  // Two more jobs through the API: one that fails (with markup in its name), one to cancel.
  const evalSmall = { ...evalFiles, limit: 64 };
  const xssName = '<img src=x onerror="window.__xss=1"><b>bad</b> targets';
  const failing = await apiCall('POST', '/v1/jobs', { name: xssName, model: MODEL, targets: ['no.such.parameter'], method: 'l1_unstructured', amount: 0.5, eval: evalSmall });
  check(failing.status === 201, 'a job that will fail is accepted', failing);
  const cancelMe = await apiCall('POST', '/v1/jobs', { name: 'to cancel', model: MODEL, targets: ['bert.encoder.layer.*.output.dense'], method: 'random_unstructured', amount: 0.5, options: { seed: 1 }, eval: { ...evalFiles } });
  check(cancelMe.status === 201, 'a job to cancel is accepted', cancelMe);

  // 4. The jobs table follows the seed job to the end.
  await page.click('nav a[data-nav=jobs]');
  const row = page.locator(`#jobs tbody tr[data-id="${seedId}"]`);
  await row.waitFor();
  const seen = new Set();
  const finalStatus = await waitFor(async () => {
    const st = await row.getAttribute('data-status');
    seen.add(st);
    return ['succeeded', 'failed', 'cancelled'].includes(st) ? st : null;
  }, 'the seed row to finish', 180000, 150);
  check(finalStatus === 'succeeded', 'the seed row reaches succeeded', [finalStatus, [...seen]]);
  check(seen.size >= 2, 'the row changed status while polling', [...seen]);
  const seedJob = (await apiCall('GET', '/v1/jobs/' + seedId)).data;
  const rowText = (await row.innerText()).replace(/\s+/g, ' ');
  check(rowText.includes('100%') && rowText.includes('l1_unstructured') && rowText.includes('30%') && rowText.includes(SEED_TARGET),
    'the row shows progress, method, amount and targets', rowText);
  check(rowText.includes(seedJob.accuracy_before.toFixed(3)) && rowText.includes(seedJob.macro_f1_after.toFixed(3)),
    'the row shows accuracy and F1 from the API', [rowText, seedJob.accuracy_before, seedJob.macro_f1_after]);

  // The failing job: shown as text, never as markup.
  const failRow = page.locator(`#jobs tbody tr[data-id="${failing.data.id}"]`);
  await waitFor(async () => (await failRow.getAttribute('data-status').catch(() => null)) === 'failed', 'the failing job to fail', 60000, 200);
  check(await failRow.locator('td.name a').textContent() === xssName, 'a name with markup is shown as text', await failRow.locator('td.name a').textContent());
  check(await page.evaluate(() => window.__xss === undefined && !document.querySelector('#jobs img, #jobs b')), 'no markup from job names runs or renders');

  // Status filter: one list call with ?status=failed.
  await page.click('.filters button[data-status=failed]');
  await waitFor(async () => {
    const st = await page.locator('#jobs tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.status));
    return st.length === 1 && st[0] === 'failed';
  }, 'the failed filter to show only the failed job', 10000);
  check(apiRequests.some((r) => r.path === '/v1/jobs' && r.search.includes('status=failed')), 'the filter asks the API with ?status=failed');
  await page.click('.filters button[data-status=""]');
  await waitFor(async () => (await page.locator('#jobs tbody tr').count()) === 3, 'all three jobs to be listed again', 10000);

  // Cancel the third job from its page.
  await page.goto(BASE + '/#/jobs/' + cancelMe.data.id);
  await page.waitForSelector('#job-cancel:not([disabled])');
  await page.click('#job-cancel');
  await page.waitForFunction(() => document.querySelector('#job-status')?.textContent === 'cancelled', null, { timeout: 60000 });
  check((await apiCall('GET', '/v1/jobs/' + cancelMe.data.id)).data.status === 'cancelled', 'Cancel cancels the job');
  check(await page.isEnabled('#job-delete') && await page.isDisabled('#job-cancel'), 'a cancelled job can be deleted, not cancelled again');

  // 5. Polling: one list call per tick, none while the tab is hidden.
  await page.click('nav a[data-nav=jobs]');
  await page.selectOption('#poll-interval', '1000');
  await sleep(300);
  const t0 = Date.now();
  await sleep(2600);
  const inWindow = apiRequests.filter((r) => r.t >= t0 && r.t < t0 + 2600);
  const lists = inWindow.filter((r) => r.method === 'GET' && r.path === '/v1/jobs');
  check(lists.length >= 2 && lists.length <= 4 && inWindow.length === lists.length, 'the jobs view polls with one list call per tick', inWindow.map((r) => r.path + r.search));
  check(/every 1 s/.test(await page.textContent('#poll-state')), 'the interval is shown', await page.textContent('#poll-state'));
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  check(await page.getAttribute('#poll-state', 'data-state') === 'paused', 'hidden tab: polling shown as paused', await page.textContent('#poll-state'));
  await sleep(300);
  const t1 = Date.now();
  await sleep(2200);
  check(apiRequests.filter((r) => r.t >= t1).length === 0, 'hidden tab: no API calls', apiRequests.filter((r) => r.t >= t1).length);
  const t2 = Date.now();
  await page.evaluate(() => {
    delete document.hidden;
    delete document.visibilityState;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await waitFor(() => apiRequests.some((r) => r.t >= t2 && r.path === '/v1/jobs'), 'a list call once the tab shows again', 3000, 50);
  await testManyJobs(page);
  await page.selectOption('#poll-interval', '2000');
  await page.waitForSelector(`#jobs tbody tr[data-id="${cancelMe.data.id}"][data-status=cancelled]`);
  fs.mkdirSync(DOCS, { recursive: true });
  await page.screenshot({ path: path.join(DOCS, 'screenshot-jobs.png') });

  // 6. The job page.
  await page.click(`#jobs tbody tr[data-id="${seedId}"] td.name a`);
  await page.waitForSelector('svg.sparsity rect.bar');
  const result = (await apiCall('GET', `/v1/jobs/${seedId}/result`)).data;
  const bars = await page.locator('svg.sparsity rect.bar').evaluateAll((rs) => rs.map((r) => ({ name: r.dataset.name, w: Number(r.getAttribute('width')) })));
  const tracks = await page.locator('svg.sparsity rect.track').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('width'))));
  check(bars.length === queryWeights.length && bars.length === 4, 'one sparsity bar per target parameter (4)', [bars.length, queryWeights.length]);
  check(JSON.stringify(bars.map((b) => b.name).sort()) === JSON.stringify([...queryWeights].sort()), 'the bars are the query weights', bars.map((b) => b.name));
  const params = result.sparsity.parameters;
  check(bars.every((b, i) => Math.abs(b.w / tracks[i] - params.find((p) => p.name === b.name).sparsity) < 0.005),
    'bar lengths are the sparsities from result.json', bars.map((b, i) => b.w / tracks[i]));
  check(await page.locator('svg.layer-sparsity rect.bar').count() === result.sparsity.layers.length, 'one bar per layer', result.sparsity.layers.length);
  const stages = await page.locator('#job-timeline tr[data-stage]').evaluateAll((rs) => rs.map((r) => r.dataset.stage));
  check(JSON.stringify(stages) === JSON.stringify(seedJob.stages.map((s) => s.stage)), 'the timeline lists the stages', stages);
  const accRow = (await page.locator('#job-metrics tr[data-metric=accuracy]').innerText()).replace(/\s+/g, ' ');
  check(accRow.includes(result.metrics.before.accuracy.toFixed(3)) && accRow.includes(result.metrics.after.accuracy.toFixed(3)), 'before/after accuracy side by side', accRow);
  const nClasses = result.metrics.before.per_class.length;
  check(await page.locator('#job-classes tbody tr').count() === nClasses, 'one per-class F1 row per class', nClasses);
  const cells = await page.locator('#job-confusion td.cell').evaluateAll((cs) => cs.map((c) => [Number(c.dataset.row), Number(c.dataset.col), Number(c.dataset.diff)]));
  const cb = result.metrics.before.confusion;
  const ca = result.metrics.after.confusion;
  check(cells.length === nClasses * nClasses && cells.every(([i, j, d]) => d === ca[i][j] - cb[i][j]), 'the heat map is after - before of the confusion matrices', cells.length);
  check(await page.isHidden('#job-error'), 'no error box on a job that succeeded');
  await page.screenshot({ path: path.join(DOCS, 'screenshot-job.png'), fullPage: true });

  // 7. Downloads through fetch + blob, with the token.
  const art = result.artifacts.find((a) => a.format === 'torchscript');
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click('[data-download=torchscript]')]);
  const file = await dl.path();
  const bytes = fs.readFileSync(file);
  const head = await fetch(`${BASE}/v1/jobs/${seedId}/checkpoint?format=torchscript`, { method: 'HEAD', headers: { Authorization: 'Bearer ' + TOKEN } });
  check(bytes.length === art.bytes && bytes.length === Number(head.headers.get('content-length')), 'the checkpoint has the bytes the API announces', [bytes.length, art.bytes, head.headers.get('content-length')]);
  check(sha256(bytes) === art.sha256 && head.headers.get('etag') === `"${art.sha256}"`, 'the checkpoint sha256 matches result.json and the ETag', [sha256(bytes), art.sha256, head.headers.get('etag')]);
  check(dl.suggestedFilename().startsWith(seedId), 'the file is named after Content-Disposition', dl.suggestedFilename());
  await page.waitForFunction(() => /sha256 verified/.test(document.querySelector('#job-download-state').textContent));
  check(true, 'the page checks the sha256 itself');
  const [dl2] = await Promise.all([page.waitForEvent('download'), page.click('[data-download=result]')]);
  const resText = fs.readFileSync(await dl2.path(), 'utf8');
  check(JSON.stringify(JSON.parse(resText)) === JSON.stringify(result), 'result.json downloads as the API serves it');
  const dlReqs = apiRequests.filter((r) => r.path.endsWith('/checkpoint') || r.path.endsWith('/result'));
  check(dlReqs.length >= 2 && dlReqs.every((r) => r.auth === 'Bearer ' + TOKEN), 'downloads send the bearer token', dlReqs);

  // 8. The failed job's page shows the error; Delete removes it.
  await page.goto(BASE + '/#/jobs/' + failing.data.id);
  await page.waitForSelector('#job-error:not([hidden])');
  const failJob = (await apiCall('GET', '/v1/jobs/' + failing.data.id)).data;
  check((await page.textContent('#job-error')).includes(failJob.error), 'the job page shows the error', [await page.textContent('#job-error'), failJob.error]);
  check(await page.isDisabled('[data-download=torchscript]'), 'no download for a failed job');
  page.once('dialog', (d) => d.accept());
  await page.click('#job-delete');
  await page.waitForFunction(() => location.hash === '#/jobs');
  check((await apiCall('GET', '/v1/jobs/' + failing.data.id)).status === 404, 'Delete deletes the job');

  // Every API call after the token was set carried it.
  const after = apiRequests.slice(tokenSetAt);
  check(after.length > 10 && after.every((r) => r.auth === 'Bearer ' + TOKEN), 'every API call sends Authorization: Bearer', after.filter((r) => r.auth !== 'Bearer ' + TOKEN));
  check(pageErrors.length === 0, 'no script errors in the page', pageErrors);
}

try {
  await main();
} catch (e) {
  check(false, 'unexpected exception: ' + (e && e.stack ? e.stack : e));
}
await cleanup();
finish();
