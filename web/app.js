/* app.js - the prunerd dashboard: jobs table, job page, submit form (no dependencies, no build) */
/*
 * DESIGN
 * One page, three views chosen by the location hash: #/jobs (default),
 * #/jobs/ID and #/submit.  Every API call goes through api(), which adds
 * "Authorization: Bearer <token>" from sessionStorage; downloads use fetch
 * and a blob for the same reason (a plain link cannot send the header).
 * Uploads are the one exception: putUpload() sends the File with an
 * XMLHttpRequest (the same header), which the browser streams from disk
 * and which, unlike fetch, reports upload progress.
 * One poller at a time: the jobs view polls GET /v1/jobs (one call per
 * tick), the job view polls GET /v1/jobs/ID until the job ends.  Polling
 * stops while the tab is hidden (visibilitychange) and resumes at once
 * when it shows again.  Rows are kept in a Map by job id and only cells
 * whose text changed are touched, so hundreds of jobs cost little.
 * User text only ever reaches the DOM as text nodes or attributes:
 * there is no innerHTML anywhere.
 */
(function () {
  'use strict';

  const TOKEN_KEY = 'prunerd.token';
  const POLL_KEY = 'prunerd.poll_ms';
  const LIST_LIMIT = 200;
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  /* ---- DOM helpers: text only, never markup ---- */

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    setProps(e, props);
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function svg(tag, props, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setProps(e, props);
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function setProps(e, props) {
    if (!props) return;
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.setAttribute('class', v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function setText(node, text) {
    text = text === null || text === undefined ? '' : String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function clear(node) {
    while (node.firstChild) node.firstChild.remove();
  }

  /* ---- formatting ---- */

  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const fmt = (x, d = 3) => (isNum(x) ? x.toFixed(d) : '–');
  const pct = (x, d = 1) => (isNum(x) ? (x * 100).toFixed(d) + '%' : '–');

  function signed(x, d = 3) {
    if (!isNum(x)) return '';
    const s = x.toFixed(d);
    return x > 0 ? '+' + s : s === (-0).toFixed(d) ? (0).toFixed(d) : s;
  }

  function seconds(v) {
    if (isNum(v)) return v;
    if (typeof v === 'string' && v) {
      const t = Date.parse(v);
      return Number.isNaN(t) ? null : t / 1000;
    }
    return null;
  }

  function fmtDuration(s) {
    if (!isNum(s)) return '–';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  }

  function fmtAge(t) {
    const s = seconds(t);
    if (s === null) return '';
    const d = Math.max(0, Date.now() / 1000 - s);
    if (d < 60) return Math.floor(d) + ' s';
    if (d < 3600) return Math.floor(d / 60) + ' min';
    if (d < 86400) return Math.floor(d / 3600) + ' h';
    return Math.floor(d / 86400) + ' d';
  }

  function fmtBytes(n) {
    if (!isNum(n)) return '–';
    if (n < 1024) return n + ' B';
    const u = ['KiB', 'MiB', 'GiB', 'TiB'];
    let i = -1;
    do {
      n /= 1024;
      i++;
    } while (n >= 1024 && i < u.length - 1);
    return n.toFixed(n < 10 ? 2 : 1) + ' ' + u[i];
  }

  function fmtAmount(req) {
    if (!req || req.amount === null || req.amount === undefined) return '–';
    if (req.amount_kind === 'count') return String(req.amount) + ' (count)';
    return isNum(req.amount) ? +(req.amount * 100).toFixed(4) + '%' : String(req.amount);
  }

  /* One entry of a request's targets: a glob, or {glob, amount} with its own amount
   * ("…query (62%)"; an integer is a count). */
  function targetText(t) {
    if (typeof t === 'string') return t;
    if (!t || typeof t !== 'object') return String(t);
    const a = t.amount;
    const amount = !isNum(a) ? '' : Number.isInteger(a) ? String(a) : +(a * 100).toFixed(4) + '%';
    return String(t.glob) + (amount ? ' (' + amount + ')' : '');
  }

  const targetsText = (r) => (Array.isArray(r.targets) ? r.targets.map(targetText).join(', ') : '');
  const isSweep = (r) => !!r && r.kind === 'sweep';

  function isoLocal(t) {
    const s = seconds(t);
    return s === null ? '' : new Date(s * 1000).toLocaleString();
  }

  /* ---- the API ---- */

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || (status ? 'HTTP ' + status : 'request failed'));
      this.status = status;
      this.code = e.code || '';
      this.field = e.field || '';
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }

  /* Calls the API; resolves {status, data, headers}, rejects with an ApiError. */
  async function api(method, path, body) {
    const init = { method, cache: 'no-store', headers: authHeaders(body === undefined ? null : { 'Content-Type': 'application/json' }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { error: { code: 'network', message: 'cannot reach prunerd: ' + e.message } });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = text;
      }
    }
    if (!resp.ok) {
      const err = new ApiError(resp.status, data && typeof data === 'object' ? data : null);
      if (resp.status === 401) needToken(err.message);
      throw err;
    }
    if (banner.kind === 'auth') hideBanner();
    return { status: resp.status, data, headers: resp.headers };
  }

  /* ---- banner and token ---- */

  const banner = { kind: '' };

  function showBanner(text, kind) {
    const b = $('#banner');
    banner.kind = kind || 'error';
    b.className = 'banner banner-' + banner.kind;
    setText(b, text);
    b.hidden = false;
  }

  function hideBanner() {
    banner.kind = '';
    $('#banner').hidden = true;
  }

  function needToken(message) {
    showBanner((token() ? 'The token was refused: ' : 'This daemon needs a token: enter it at the top right. ') + (message || ''), 'auth');
    $('#token').classList.add('attention');
  }

  function showTokenState() {
    setText($('#token-state'), token() ? 'set for this tab' : 'none');
    $('#token').classList.remove('attention');
  }

  function initToken() {
    $('#token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('#token').value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      $('#token').value = '';
      showTokenState();
      hideBanner();
      refreshNow();
      if (!$('#view-submit').hidden) loadUploads(); /* each token has its own */
    });
    $('#token-clear').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $('#token').value = '';
      showTokenState();
      refreshNow();
      if (!$('#view-submit').hidden) loadUploads();
    });
    showTokenState();
  }

  /* ---- the poller: one at a time, paused while the tab is hidden ---- */

  const poll = { fn: null, gen: 0, timer: null, busy: false, interval: 2000, last: null, done: false, error: '' };

  function setPoller(fn) {
    poll.fn = fn;
    poll.gen++;
    poll.done = false;
    poll.last = null;
    refreshNow();
  }

  function refreshNow() {
    clearTimeout(poll.timer);
    poll.timer = null;
    if (poll.fn) tick();
  }

  function schedule() {
    clearTimeout(poll.timer);
    poll.timer = null;
    if (poll.fn && !poll.done && poll.interval > 0 && !document.hidden) poll.timer = setTimeout(tick, poll.interval);
    showPollState();
  }

  async function tick() {
    poll.timer = null;
    if (!poll.fn || document.hidden) return showPollState();
    if (poll.busy) {
      poll.again = true; /* a refresh asked for during a call: one more after it */
      return;
    }
    const gen = poll.gen;
    poll.busy = true;
    try {
      const r = await poll.fn();
      if (gen === poll.gen) {
        poll.done = r === 'done';
        poll.last = new Date();
        poll.error = '';
      }
    } catch (e) {
      if (gen === poll.gen) {
        poll.error = e.message;
        if (e.status !== 401) showBanner(e.message, 'error');
      }
    } finally {
      poll.busy = false;
    }
    if (poll.again) {
      poll.again = false;
      return tick();
    }
    schedule();
  }

  function showPollState() {
    const s = $('#poll-state');
    let text;
    if (document.hidden) text = 'paused while the tab is hidden';
    else if (poll.interval <= 0) text = 'auto refresh off';
    else text = 'every ' + poll.interval / 1000 + ' s';
    if (poll.last) text += ' · updated ' + poll.last.toLocaleTimeString();
    if (poll.error) text += ' · last call failed';
    setText(s, text);
    s.dataset.state = document.hidden ? 'paused' : poll.interval > 0 ? 'polling' : 'off';
  }

  function initPoll() {
    const sel = $('#poll-interval');
    const saved = sessionStorage.getItem(POLL_KEY);
    if (saved !== null && $$('option', sel).some((o) => o.value === saved)) sel.value = saved;
    poll.interval = Number(sel.value);
    sel.addEventListener('change', () => {
      poll.interval = Number(sel.value);
      sessionStorage.setItem(POLL_KEY, sel.value);
      schedule();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) {
        clearTimeout(poll.timer);
        poll.timer = null;
        showPollState();
      } else {
        refreshNow();
      }
    });
  }

  /* ---- views and routing ---- */

  function showView(name) {
    for (const v of $$('.view')) v.hidden = v.id !== 'view-' + name;
    for (const a of $$('nav a')) a.classList.toggle('on', a.dataset.nav === name);
  }

  function route() {
    hideBannerUnlessAuth();
    const h = location.hash || '#/jobs';
    const m = /^#\/jobs\/([0-9a-fA-F-]{36})$/.exec(h);
    if (m) {
      showView('job');
      openJob(m[1].toLowerCase());
    } else if (h === '#/submit') {
      showView('submit');
      jobView.id = null;
      setPoller(null);
      showPollState();
      loadUploads();
    } else {
      showView('jobs');
      jobView.id = null;
      setPoller(pollJobs);
    }
  }

  function hideBannerUnlessAuth() {
    if (banner.kind !== 'auth') hideBanner();
  }

  /* ---- jobs table ---- */

  const jobs = { status: '', search: '', first: [], older: [], next: null, olderLoaded: false, rows: new Map() };

  async function pollJobs() {
    const q = new URLSearchParams({ limit: String(LIST_LIMIT) });
    if (jobs.status) q.set('status', jobs.status);
    const status = jobs.status;
    const { data } = await api('GET', '/v1/jobs?' + q);
    if (status !== jobs.status) return; /* the filter changed meanwhile */
    jobs.first = data.jobs || [];
    if (!jobs.olderLoaded) jobs.next = data.next_cursor || null;
    renderJobs();
  }

  async function loadOlder() {
    if (!jobs.next) return;
    const q = new URLSearchParams({ limit: String(LIST_LIMIT), cursor: jobs.next });
    if (jobs.status) q.set('status', jobs.status);
    try {
      const { data } = await api('GET', '/v1/jobs?' + q);
      jobs.older = jobs.older.concat(data.jobs || []);
      jobs.next = data.next_cursor || null;
      jobs.olderLoaded = true;
      renderJobs();
    } catch (e) {
      showBanner(e.message, 'error');
    }
  }

  function jobMatches(job, words) {
    if (!words.length) return true;
    const r = job.request || {};
    const hay = [job.name, job.id, r.kind, r.method, targetsText(r)].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  }

  function renderJobs() {
    const tbody = $('#jobs tbody');
    const words = jobs.search.toLowerCase().split(/\s+/).filter(Boolean);
    const ids = new Set();
    const list = [];
    for (const j of jobs.first.concat(jobs.older)) {
      if (ids.has(j.id)) continue;
      ids.add(j.id);
      if (jobMatches(j, words)) list.push(j);
    }
    const shown = new Set();
    let prev = null;
    for (const j of list) {
      shown.add(j.id);
      let row = jobs.rows.get(j.id);
      if (!row) {
        row = makeRow(j.id);
        jobs.rows.set(j.id, row);
      }
      updateRow(row, j);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of jobs.rows) {
      if (!shown.has(id)) {
        row.tr.remove();
        jobs.rows.delete(id);
      }
    }
    $('#jobs-empty').hidden = list.length > 0;
    setText($('#jobs-count'), list.length + (list.length === 1 ? ' job' : ' jobs') + (jobs.next ? ' shown; older ones exist' : ''));
    $('#jobs-more').hidden = !jobs.next;
  }

  function beforeAfterCell() {
    const td = el('td', { class: 'ba num' });
    const before = el('span', { class: 'before' });
    const after = el('span', { class: 'after' });
    const delta = el('span', { class: 'delta' });
    td.append(before, el('span', { class: 'arrow', text: ' → ' }), after, ' ', delta);
    return { td, before, after, delta };
  }

  function setBeforeAfter(c, b, a) {
    setText(c.before, fmt(b));
    setText(c.after, fmt(a));
    const d = isNum(a) && isNum(b) ? a - b : null;
    setText(c.delta, d === null ? '' : '(' + signed(d) + ')');
    c.delta.className = 'delta ' + (d === null || Math.abs(d) < 5e-4 ? '' : d > 0 ? 'up' : 'down');
  }

  function makeRow(id) {
    const link = el('a', { href: '#/jobs/' + id });
    const status = el('span', { class: 'status' });
    const fill = el('div', { class: 'pfill' });
    const ptext = el('span', { class: 'ptext' });
    const pbar = el('div', { class: 'pbar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, fill);
    const acc = beforeAfterCell();
    const f1 = beforeAfterCell();
    const cells = {
      name: el('td', { class: 'name' }, link),
      status: el('td', null, status),
      stage: el('td', { class: 'stage' }),
      progress: el('td', { class: 'progress' }, pbar, ptext),
      method: el('td', { class: 'method' }, el('span'), ' ', el('span', { class: 'scope' })),
      amount: el('td', { class: 'num' }),
      targets: el('td', { class: 'targets' }),
      age: el('td', { class: 'age num' }),
    };
    const tr = el('tr', { 'data-id': id }, cells.name, cells.status, cells.stage, cells.progress, cells.method, cells.amount, cells.targets, acc.td, f1.td, cells.age);
    return { tr, link, status, fill, ptext, pbar, acc, f1, cells, key: '' };
  }

  function updateRow(row, j) {
    const r = j.request || {};
    const targets = targetsText(r);
    const key = JSON.stringify([j.name, j.status, j.stage, j.progress, j.accuracy_before, j.accuracy_after, j.macro_f1_before, j.macro_f1_after, r.kind, r.method, r.scope, r.group, r.amount, r.amount_kind, targets]);
    setText(row.cells.age, fmtAge(j.created_at));
    if (key === row.key) return; /* nothing but the age changed */
    row.key = key;
    row.tr.dataset.status = j.status;
    setText(row.link, j.name || j.id.slice(0, 8));
    row.link.title = j.id;
    setText(row.status, j.status);
    row.status.className = 'status status-' + j.status;
    setText(row.cells.stage, j.status === 'running' || j.status === 'queued' ? j.stage : j.status === 'succeeded' ? '' : j.stage);
    const p = isNum(j.progress) ? Math.max(0, Math.min(1, j.progress)) : 0;
    row.fill.style.width = (p * 100).toFixed(1) + '%';
    row.fill.className = 'pfill pfill-' + j.status;
    row.pbar.setAttribute('aria-valuenow', String(Math.round(p * 100)));
    setText(row.ptext, Math.round(p * 100) + '%');
    /* A sweep tries many amounts: no one amount to show, and its scope is always local. */
    const sweep = isSweep(r);
    setText(row.cells.method.firstChild, sweep ? 'sweep (' + (r.method || '') + ')' : r.method || '');
    setText(row.cells.method.lastChild, sweep ? (r.group ? 'per ' + r.group : '') : r.scope || '');
    setText(row.cells.amount, sweep ? '' : fmtAmount(r));
    setText(row.cells.targets, targets);
    row.cells.targets.title = targets;
    setBeforeAfter(row.acc, j.accuracy_before, j.accuracy_after);
    setBeforeAfter(row.f1, j.macro_f1_before, j.macro_f1_after);
    row.cells.age.title = 'created ' + isoLocal(j.created_at);
  }

  function initJobs() {
    for (const b of $$('.filters button')) {
      b.addEventListener('click', () => {
        for (const o of $$('.filters button')) o.classList.toggle('on', o === b);
        jobs.status = b.dataset.status;
        jobs.first = [];
        jobs.older = [];
        jobs.next = null;
        jobs.olderLoaded = false;
        renderJobs();
        refreshNow();
      });
    }
    let t = null;
    $('#jobs-search').addEventListener('input', (ev) => {
      clearTimeout(t);
      t = setTimeout(() => {
        jobs.search = ev.target.value;
        renderJobs();
      }, 120);
    });
    $('#jobs-more').addEventListener('click', loadOlder);
  }

  /* ---- one job ---- */

  const jobView = { id: null, job: null, result: null };

  function openJob(id) {
    if (jobView.id !== id) {
      jobView.id = id;
      jobView.job = null;
      jobView.result = null;
      resetJobPage();
    }
    setPoller(pollJob);
  }

  function resetJobPage() {
    setText($('#job-name'), 'loading…');
    setText($('#job-id'), jobView.id);
    setText($('#job-status'), '');
    setText($('#job-download-state'), '');
    clear($('#job-progress'));
    clear($('#job-timeline tbody'));
    setText($('#job-request'), '');
    $('#job-error').hidden = true;
    $('#job-results').hidden = true;
    $('#job-structured').hidden = true;
    $('#job-speedup').hidden = true;
    $('#job-sweep').hidden = true;
    $('#job-recommend').hidden = true;
    $('#job-recovery').hidden = true;
    $('#job-sparsity-card').hidden = false;
    $('#job-confusion-card').hidden = false;
    for (const b of $$('[data-download]')) b.disabled = true;
    $('#job-cancel').disabled = true;
    $('#job-delete').disabled = true;
  }

  async function pollJob() {
    const id = jobView.id;
    let job;
    try {
      job = (await api('GET', '/v1/jobs/' + id)).data;
    } catch (e) {
      if (e.status === 404 && jobView.id === id) {
        setText($('#job-name'), 'no such job');
        showBanner('Job ' + id + ' does not exist (deleted?).', 'error');
        return 'done';
      }
      throw e;
    }
    if (jobView.id !== id) return;
    jobView.job = job;
    renderJobHead(job);
    renderTimeline(job);
    if (job.status === 'succeeded' && !jobView.result) {
      const res = (await api('GET', '/v1/jobs/' + id + '/result')).data;
      if (jobView.id !== id) return;
      jobView.result = res;
      renderResult(res, job);
    }
    return TERMINAL.has(job.status) ? 'done' : undefined;
  }

  function renderJobHead(job) {
    setText($('#job-name'), job.name || 'job ' + job.id.slice(0, 8));
    const st = $('#job-status');
    setText(st, job.status);
    st.className = 'status status-' + job.status;
    document.title = (job.name || job.id.slice(0, 8)) + ' · ' + job.status + ' · prunerd';

    const box = $('#job-progress');
    clear(box);
    const p = isNum(job.progress) ? Math.max(0, Math.min(1, job.progress)) : 0;
    const fill = el('div', { class: 'pfill pfill-' + job.status });
    fill.style.width = (p * 100).toFixed(1) + '%';
    box.append(
      el('div', { class: 'pbar big', role: 'progressbar', 'aria-valuenow': String(Math.round(p * 100)), 'aria-valuemin': '0', 'aria-valuemax': '100' }, fill),
      el('span', { class: 'muted', text: (job.stage && job.status !== 'succeeded' ? job.stage + ' · ' : '') + Math.round(p * 100) + '%' + (job.attempts > 1 ? ' · attempt ' + job.attempts : '') + (job.cancel_requested && !TERMINAL.has(job.status) ? ' · cancelling' : '') })
    );

    const err = $('#job-error');
    if (job.error) {
      clear(err);
      err.append(el('strong', { text: 'Error' + (job.stage ? ' in ' + job.stage : '') + ': ' }), job.error);
      err.hidden = false;
    } else {
      err.hidden = true;
    }
    setText($('#job-request'), JSON.stringify(job.request, null, 2));
    setDownloadButtons(job, jobView.result);
    $('#job-cancel').disabled = TERMINAL.has(job.status) || !!job.cancel_requested;
    $('#job-delete').disabled = !TERMINAL.has(job.status);
  }

  function renderTimeline(job) {
    const tbody = $('#job-timeline tbody');
    clear(tbody);
    const stages = Array.isArray(job.stages) ? job.stages : [];
    const now = Date.now() / 1000;
    const rows = stages.map((s) => {
      const a = seconds(s.started_at);
      const b = seconds(s.finished_at);
      return { stage: s.stage, a, b, open: b === null, d: a === null ? null : (b === null ? (TERMINAL.has(job.status) ? a : now) : b) - a };
    });
    const t0 = rows.length && rows[0].a !== null ? rows[0].a : null;
    let t1 = t0;
    for (const r of rows) if (r.a !== null) t1 = Math.max(t1, r.a + (r.d || 0));
    const span = t0 !== null && t1 > t0 ? t1 - t0 : 1;
    for (const r of rows) {
      const bar = el('div', { class: 'tl-bar' + (r.open && !TERMINAL.has(job.status) ? ' open' : '') });
      if (r.a !== null) {
        bar.style.left = (((r.a - t0) / span) * 100).toFixed(2) + '%';
        bar.style.width = Math.max(0.5, ((r.d || 0) / span) * 100).toFixed(2) + '%';
      }
      tbody.append(el('tr', { 'data-stage': r.stage },
        el('td', { text: r.stage }),
        el('td', { class: 'muted', text: r.a === null ? '' : new Date(r.a * 1000).toLocaleTimeString() }),
        el('td', { class: 'num', text: fmtDuration(r.d) + (r.open && !TERMINAL.has(job.status) ? ' …' : '') }),
        el('td', { class: 'w-bar' }, el('div', { class: 'tl' }, bar))));
    }
    if (!rows.length) tbody.append(el('tr', null, el('td', { colspan: '4', class: 'muted', text: job.status === 'queued' ? 'waiting for a worker' : 'no stages recorded' })));
    const total = rows.length && t0 !== null ? t1 - t0 : null;
    if (total !== null) tbody.append(el('tr', { class: 'total' }, el('td', { text: 'total' }), el('td'), el('td', { class: 'num', text: fmtDuration(total) }), el('td')));
  }

  const METRICS = [
    ['accuracy', 'accuracy', 3],
    ['macro_precision', 'macro precision', 3],
    ['macro_recall', 'macro recall', 3],
    ['macro_f1', 'macro F1', 3],
    ['weighted_precision', 'weighted precision', 3],
    ['weighted_recall', 'weighted recall', 3],
    ['weighted_f1', 'weighted F1', 3],
    ['samples', 'samples', 0],
    ['samples_per_s', 'samples / s', 1],
  ];

  function deltaCell(d, digits) {
    const td = el('td', { class: 'num delta ' + (!isNum(d) || Math.abs(d) < Math.pow(10, -digits) / 2 ? '' : d > 0 ? 'up' : 'down'), text: signed(d, digits) });
    return td;
  }

  function renderResult(res, job) {
    $('#job-results').hidden = false;
    const m = res.metrics || {};
    const before = m.before || null;
    const after = m.after || null;

    const mt = $('#job-metrics tbody');
    clear(mt);
    for (const [key, label, d] of METRICS) {
      const b = before ? before[key] : null;
      const a = after ? after[key] : null;
      if (!isNum(b) && !isNum(a)) continue;
      mt.append(el('tr', { 'data-metric': key }, el('th', { text: label }), el('td', { text: fmt(b, d) }), el('td', { text: fmt(a, d) }), deltaCell(isNum(a) && isNum(b) ? a - b : null, d)));
    }
    if (!before && !after) mt.append(el('tr', null, el('td', { colspan: '4', class: 'muted', text: 'no evaluation was asked for' })));

    const ct = $('#job-classes tbody');
    clear(ct);
    const pb = (before && before.per_class) || [];
    const pa = (after && after.per_class) || [];
    for (let i = 0; i < Math.max(pb.length, pa.length); i++) {
      const cb = pb[i] || {};
      const ca = pa[i] || {};
      ct.append(el('tr', null, el('th', { text: ca.name || cb.name || String(i) }), el('td', { text: String(ca.support !== undefined ? ca.support : cb.support !== undefined ? cb.support : '') }), el('td', { text: fmt(cb.f1) }), el('td', { text: fmt(ca.f1) }), deltaCell(isNum(ca.f1) && isNum(cb.f1) ? ca.f1 - cb.f1 : null, 3)));
    }

    renderConfusion(before, after);
    renderSparsity(res.sparsity || {}, job.request || {});
    renderStructured(res);
    renderSweep(res);
    renderRecovery(res);

    const tt = $('#job-timings tbody');
    clear(tt);
    const tm = res.timings || {};
    for (const [k, v] of Object.entries(tm)) tt.append(el('tr', null, el('th', { text: k.replace(/_s$/, '') }), el('td', { text: fmtDuration(v) })));

    const at = $('#job-artifacts tbody');
    clear(at);
    const arts = Array.isArray(res.artifacts) ? res.artifacts : [];
    const artRow = (name, x) => el('tr', null, el('td', { text: name }), el('td', { class: 'num', text: fmtBytes(x.bytes), title: String(x.bytes) + ' bytes' }), el('td', { class: 'mono small', text: x.sha256 || '' }));
    for (const a of arts) {
      at.append(artRow(a.format, a));
      for (const f of artifactFiles(a)) at.append(artRow(a.format + '/' + f.name, f));
    }
    setDownloadButtons(job, res);
    setText($('#job-provenance'), JSON.stringify(res.provenance || {}, null, 2));
  }

  function renderConfusion(before, after) {
    const box = $('#job-confusion');
    clear(box);
    const cb = before && before.confusion;
    const ca = after && after.confusion;
    if (!Array.isArray(cb) || !Array.isArray(ca) || cb.length !== ca.length) {
      box.append(el('p', { class: 'muted', text: 'needs the before and after evaluations' }));
      return;
    }
    const names = ((after.per_class || before.per_class || []).map((c) => c.name));
    const n = ca.length;
    let max = 0;
    const diff = [];
    for (let i = 0; i < n; i++) {
      diff.push([]);
      for (let j = 0; j < n; j++) {
        const d = (ca[i][j] || 0) - (cb[i][j] || 0);
        diff[i].push(d);
        max = Math.max(max, Math.abs(d));
      }
    }
    const table = el('table', { class: 'heat' });
    const head = el('tr', null, el('th', { class: 'corner', text: 'true \\ pred' }));
    for (let j = 0; j < n; j++) head.append(el('th', { class: 'col', text: names[j] || String(j) }));
    table.append(el('thead', null, head));
    const body = el('tbody');
    for (let i = 0; i < n; i++) {
      const tr = el('tr', null, el('th', { text: names[i] || String(i) }));
      for (let j = 0; j < n; j++) {
        const d = diff[i][j];
        const good = i === j ? d : -d;
        const td = el('td', {
          class: 'cell' + (i === j ? ' diag' : '') + (d === 0 ? ' zero' : good > 0 ? ' good' : ' bad'),
          'data-row': String(i), 'data-col': String(j), 'data-diff': String(d),
          title: (names[i] || i) + ' predicted as ' + (names[j] || j) + ': ' + cb[i][j] + ' before, ' + ca[i][j] + ' after',
          text: d === 0 ? '0' : d > 0 ? '+' + d : String(d),
        });
        if (d !== 0 && max > 0) {
          const alpha = (0.15 + 0.75 * (Math.abs(d) / max)).toFixed(3);
          td.style.backgroundColor = good > 0 ? 'rgba(22, 163, 74, ' + alpha + ')' : 'rgba(220, 38, 38, ' + alpha + ')';
        }
        tr.append(td);
      }
      body.append(tr);
    }
    table.append(body);
    box.append(table);
  }

  /* Horizontal bar chart of fractions (0..1), one rect.bar per item, as inline SVG; a dashed
   * line at marker (a fraction, or null), titled markerTitle. */
  function barChart(cls, items, marker, markerTitle) {
    const labelW = Math.min(340, 40 + 7 * items.reduce((m, it) => Math.max(m, it.label.length), 0));
    const barW = 420;
    const rowH = 22;
    const top = 22;
    const W = labelW + barW + 70;
    const H = top + items.length * rowH + 8;
    const s = svg('svg', { class: 'chart ' + cls, viewBox: '0 0 ' + W + ' ' + H, width: String(W), height: String(H), role: 'img', 'aria-label': cls });
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      const x = labelW + t * barW;
      s.append(svg('line', { class: 'grid', x1: x, x2: x, y1: top - 4, y2: H - 6 }), svg('text', { class: 'tick', x, y: 12, 'text-anchor': 'middle', text: t * 100 + '%' }));
    }
    items.forEach((it, i) => {
      const y = top + i * rowH;
      const v = isNum(it.value) ? Math.max(0, Math.min(1, it.value)) : 0;
      s.append(
        svg('text', { class: 'label', x: labelW - 8, y: y + 15, 'text-anchor': 'end', text: it.label }),
        svg('rect', { class: 'track', x: labelW, y: y + 3, width: barW, height: rowH - 6 }),
        svg('rect', { class: 'bar', x: labelW, y: y + 3, width: (v * barW).toFixed(2), height: rowH - 6, 'data-name': it.name, 'data-value': String(it.value) }, svg('title', { text: it.title })),
        svg('text', { class: 'value', x: labelW + barW + 6, y: y + 15, text: pct(it.value) })
      );
    });
    if (isNum(marker)) {
      const x = labelW + Math.max(0, Math.min(1, marker)) * barW;
      s.append(svg('line', { class: 'marker', x1: x, x2: x, y1: top - 6, y2: H - 4 }, svg('title', { text: markerTitle || 'requested amount ' + pct(marker) })));
    }
    return s;
  }

  function commonPrefix(names) {
    if (names.length < 2) return '';
    let p = names[0];
    for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
    return p.slice(0, p.lastIndexOf('.') + 1);
  }

  function renderSparsity(sp, req) {
    const params = Array.isArray(sp.parameters) ? sp.parameters : [];
    const layers = Array.isArray(sp.layers) ? sp.layers : [];
    const prefix = commonPrefix(params.map((p) => p.name));
    const marker = req.amount_kind === 'fraction' && isNum(req.amount) ? req.amount : null;
    const box = $('#job-sparsity');
    clear(box);
    box.append(barChart('sparsity', params.map((p) => ({
      name: p.name,
      label: p.name.slice(prefix.length),
      value: p.sparsity,
      title: p.name + ' ' + (Array.isArray(p.shape) ? '[' + p.shape.join('×') + '] ' : '') + p.zeros + ' / ' + p.numel + ' zero (' + pct(p.sparsity, 2) + ')',
    })), marker));
    const lb = $('#job-layers');
    clear(lb);
    lb.append(layers.length ? barChart('layer-sparsity', layers.map((l) => ({
      name: String(l.layer),
      label: typeof l.layer === 'number' ? 'layer ' + l.layer : String(l.layer),
      value: l.sparsity,
      title: 'layer ' + l.layer + ': ' + l.zeros + ' / ' + l.numel + ' zero (' + pct(l.sparsity, 2) + ')',
    })), null) : el('p', { class: 'muted', text: 'no per-layer numbers' }));
    const parts = [];
    if (isNum(sp.targets)) parts.push('targets: ' + pct(sp.targets, 2) + ' zero');
    if (isNum(sp.global)) parts.push('whole model: ' + pct(sp.global, 2) + ' zero');
    parts.push(params.length + ' pruned parameter' + (params.length === 1 ? '' : 's') + (prefix ? ' (under ' + prefix + ')' : ''));
    if (marker !== null) parts.push('dashed line: requested amount');
    setText($('#job-sparsity-summary'), parts.join(' · '));
  }

  /* ---- method structured: heads and neurons kept, speed-up against accuracy ---- */

  const count = (x) => (isNum(x) ? x.toLocaleString() : '–');
  const ratio = (a, b) => (isNum(a) && isNum(b) && b > 0 ? a / b : null);

  /* Shows result.structured (only a structured job's result has one) and hides the
   * sparsity card, which is empty for it: whole heads and neurons go, nothing is masked. */
  function renderStructured(res) {
    const st = res.structured && typeof res.structured === 'object' ? res.structured : null;
    const sp = res.sparsity || {};
    $('#job-structured').hidden = !st;
    $('#job-speedup').hidden = !st;
    $('#job-sparsity-card').hidden = !!st && !(Array.isArray(sp.parameters) && sp.parameters.length);
    if (!st) return;
    const layers = Array.isArray(st.layers) ? st.layers : [];

    const parts = [];
    if (st.importance) parts.push('importance: ' + st.importance);
    if (isNum(st.seq_len)) parts.push('MACs counted at ' + st.seq_len + ' tokens');
    parts.push(layers.filter((l) => l.selected !== false).length + ' of ' + layers.length + ' layers selected');
    const rs = st.rescale && typeof st.rescale === 'object' ? st.rescale : null;
    if (rs && isNum(rs.layers)) {
      const stop = rs.stopped && typeof rs.stopped === 'object' ? rs.stopped : null;
      parts.push('rescaled ' + rs.layers + ' of ' + layers.length + ' layers' +
        (stop ? ' (stopped at layer ' + stop.layer + "'s " + stop.at + ': ' + stop.reason + ')' : ''));
    }
    setText($('#job-structured-summary'), parts.join(' · '));

    const tb = $('#job-structured-totals tbody');
    clear(tb);
    const h = st.heads || {};
    const n = st.neurons || {};
    const pa = st.parameters || {};
    const mc = st.encoder_macs || {};
    for (const [key, label, kept, before, frac] of [
      ['heads', 'attention heads', h.after, h.before, ratio(h.after, h.before)],
      ['neurons', 'FFN neurons', n.after, n.before, ratio(n.after, n.before)],
      ['parameters', 'parameters', pa.pruned, pa.dense, isNum(pa.kept) ? pa.kept : ratio(pa.pruned, pa.dense)],
      ['encoder_macs', 'encoder MACs' + (isNum(st.seq_len) ? ' at ' + st.seq_len + ' tokens' : ''), mc.pruned, mc.dense,
        isNum(mc.kept) ? mc.kept : ratio(mc.pruned, mc.dense)],
    ]) {
      tb.append(el('tr', { 'data-total': key, 'data-kept': isNum(kept) ? kept : null, 'data-before': isNum(before) ? before : null, 'data-fraction': isNum(frac) ? frac : null },
        el('th', { text: label }), el('td', { text: count(kept) }), el('td', { text: count(before) }), el('td', { text: pct(frac) })));
    }

    /* Tracks are scaled to the largest layer of their kind, so a layer smaller before
     * (pruned earlier) shows a shorter track. */
    const maxOf = (k) => layers.reduce((m, l) => (isNum(l[k]) ? Math.max(m, l[k]) : m), 0);
    const kinds = [['heads', 'heads', 'heads_before', maxOf('heads_before')], ['ffn', 'FFN neurons', 'ffn_before', maxOf('ffn_before')]];
    const lb = $('#job-structured-layers tbody');
    clear(lb);
    for (const l of layers) {
      const name = typeof l.layer === 'number' ? 'layer ' + l.layer : String(l.layer);
      const removed = Array.isArray(l.removed_heads) ? l.removed_heads : [];
      kinds.forEach(([key, label, beforeKey, max], i) => {
        const kept = l[key];
        const before = l[beforeKey];
        const track = el('div', { class: 'kbar kbar-' + key, 'aria-hidden': 'true', title: name + ': ' + count(kept) + ' of ' + count(before) + ' ' + label + ' kept (' + pct(ratio(kept, before)) + ')' },
          el('div', { class: 'kfill' }));
        track.style.width = (max > 0 && isNum(before) ? (before / max) * 100 : 0).toFixed(2) + '%';
        track.firstChild.style.width = ((ratio(kept, before) || 0) * 100).toFixed(2) + '%';
        const tr = el('tr', { class: (i ? 'second' : 'first') + (l.selected === false ? ' unselected' : ''), 'data-layer': String(l.layer), 'data-kind': key, 'data-kept': isNum(kept) ? kept : null, 'data-before': isNum(before) ? before : null });
        if (!i) tr.append(el('th', { rowspan: '2', text: name + (l.selected === false ? ' (not selected)' : '') }));
        tr.append(el('td', { class: 'kind', text: label }), el('td', { class: 'w-bar' }, track), el('td', { class: 'num kept', text: count(kept) + ' / ' + count(before) }));
        if (!i) tr.append(el('td', { rowspan: '2', class: 'mono removed', text: removed.length ? removed.join(', ') : 'none' }));
        lb.append(tr);
      });
    }
    if (!layers.length) lb.append(el('tr', null, el('td', { colspan: '5', class: 'muted', text: 'no per-layer numbers' })));

    renderLatency(st.latency && typeof st.latency === 'object' ? st.latency : null);
    renderAccuracyChange(res.metrics || {});
  }

  /* One row per latency point; none for a result written before latency was measured. */
  function renderLatency(lat) {
    const info = [];
    const tb = $('#job-latency tbody');
    clear(tb);
    $('#job-latency').hidden = !lat;
    if (!lat) {
      setText($('#job-latency-info'), 'not measured: this result has no latency');
      return;
    }
    if (lat.device) info.push(String(lat.device) + (isNum(lat.threads) ? ', ' + lat.threads + ' thread' + (lat.threads === 1 ? '' : 's') : ''));
    if (isNum(lat.runs)) info.push('p50 of ' + lat.runs + ' runs' + (isNum(lat.warmup) && lat.warmup > 0 ? ' after ' + lat.warmup + ' warm-up' : ''));
    const skipped = Array.isArray(lat.skipped_seq_lens) ? lat.skipped_seq_lens : [];
    if (skipped.length) info.push('skipped seq_len ' + skipped.join(', '));
    setText($('#job-latency-info'), info.join(' · '));
    const points = Array.isArray(lat.points) ? lat.points : [];
    for (const p of points) {
      const d = (p.dense_ms || {}).p50;
      const q = (p.pruned_ms || {}).p50;
      const s = isNum(p.speedup) ? p.speedup : ratio(d, q);
      tb.append(el('tr', { 'data-batch': isNum(p.batch) ? p.batch : null, 'data-seq-len': isNum(p.seq_len) ? p.seq_len : null },
        el('td', { text: String(p.batch) }), el('td', { text: String(p.seq_len) }),
        el('td', { text: fmt(d, 2), title: 'p90 ' + fmt((p.dense_ms || {}).p90, 2) + ' ms' }),
        el('td', { text: fmt(q, 2), title: 'p90 ' + fmt((p.pruned_ms || {}).p90, 2) + ' ms' }),
        el('td', { class: 'speedup ' + (!isNum(s) || s === 1 ? '' : s > 1 ? 'up' : 'down'), text: isNum(s) ? fmt(s, 2) + '×' : '–' })));
    }
    if (!points.length) tb.append(el('tr', null, el('td', { colspan: '5', class: 'muted', text: 'no points measured' })));
  }

  /* Accuracy and macro F1 before and after, in percent; the change in points.  With
   * rescale, also the smaller model before its factors (metrics.after_mask). */
  function renderAccuracyChange(m) {
    const tb = $('#job-accuracy-change tbody');
    clear(tb);
    const before = m.before || null;
    const rows = [['after', '', ''], ['after_mask', '_after_mask', ', before rescale']];
    for (const [when, suffix, note] of rows) {
      const after = m[when] || null;
      if (when === 'after_mask' && !after) continue;
      for (const [key, label] of [['accuracy', 'accuracy'], ['macro_f1', 'macro F1']]) {
        const b = before ? before[key] : null;
        const a = after ? after[key] : null;
        if (!isNum(b) && !isNum(a)) continue;
        const d = isNum(a) && isNum(b) ? (a - b) * 100 : null;
        tb.append(el('tr', { 'data-metric': key + suffix }, el('th', { text: label + note }), el('td', { text: pct(b, 2) }), el('td', { text: pct(a, 2) }),
          el('td', { class: 'num delta ' + (!isNum(d) || Math.abs(d) < 0.005 ? '' : d > 0 ? 'up' : 'down'), text: isNum(d) ? signed(d, 2) + ' pt' : '' })));
      }
    }
    if (!tb.firstChild) tb.append(el('tr', null, el('td', { colspan: '4', class: 'muted', text: 'no evaluation was asked for' })));
  }

  /* ---- a recover stage: the training curve; before, after pruning and after recovery ---- */

  /* A round tick step (1, 2 or 5 times a power of ten) that cuts span into at most n parts. */
  function roundStep(span, n) {
    const raw = span > 0 ? span / n : 1;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const k of [1, 2, 5]) if (k * p >= raw * (1 - 1e-9)) return k * p;
    return 10 * p;
  }

  /* Digits after the point that a tick step needs: 0.05 -> 2, 0.1 -> 1, 2 -> 0. */
  const stepDigits = (s) => Math.max(0, -Math.floor(Math.log10(s) + 1e-9));
  const plural = (n, one) => n + ' ' + one + (n === 1 ? '' : 's');
  const frac = (x) => (isNum(x) ? +(x * 100).toFixed(2) + '%' : '–');

  /* Shows result.recovery (only a job with a recover stage has one): a summary line, the loss
   * curve with the evaluations during training, and metrics.before, after_pruning and
   * after_recovery side by side. */
  function renderRecovery(res) {
    const rec = res.recovery && typeof res.recovery === 'object' ? res.recovery : null;
    const m = res.metrics || {};
    $('#job-recovery').hidden = !rec && !m.after_pruning;
    renderRecoveryMetrics(m);
    for (const id of ['#job-recovery-summary', '#job-recovery-chart', '#job-recovery-legend']) $(id).hidden = !rec;
    const box = $('#job-recovery-chart');
    clear(box);
    if (!rec) return;
    const curve = Array.isArray(rec.curve) ? rec.curve.filter((p) => p && isNum(p.step) && isNum(p.loss)) : [];
    const evals = Array.isArray(rec.eval) ? rec.eval.filter((p) => p && isNum(p.step) && isNum(p.accuracy)) : [];
    const sched = rec.schedule && typeof rec.schedule === 'object' ? rec.schedule : null;
    const prunings = sched && Array.isArray(sched.prunings) ? sched.prunings.filter((p) => p && isNum(p.step)) : [];
    const resumed = isNum(rec.resumed_from_step) && rec.resumed_from_step > 0 ? rec.resumed_from_step : null;

    const parts = [];
    let what = isNum(rec.steps) ? plural(rec.steps, 'step') : 'steps unknown';
    if (isNum(rec.epochs) && rec.epochs > 0) what += ' (' + plural(rec.epochs, 'epoch') + (isNum(rec.steps_per_epoch) ? ' of ' + rec.steps_per_epoch : '') + ')';
    if (isNum(rec.batch_size)) what += ' of batch ' + rec.batch_size;
    parts.push(what);
    if (resumed !== null) parts.push('resumed from step ' + resumed + (isNum(rec.steps_this_attempt) ? ' (' + rec.steps_this_attempt + ' this attempt)' : ''));
    if (isNum(rec.time_per_step_s)) parts.push(fmtDuration(rec.time_per_step_s) + ' a step' + (rec.device ? ' on ' + rec.device : ''));
    else if (rec.device) parts.push('on ' + rec.device);
    const d = rec.distill && typeof rec.distill === 'object' ? rec.distill : null;
    parts.push(d ? 'distilled from the dense model (temperature ' + d.temperature + ', alpha ' + d.alpha + ')' : 'no distillation');
    if (isNum(rec.lr)) {
      parts.push('lr ' + rec.lr + (isNum(rec.warmup_steps) ? ' after ' + plural(rec.warmup_steps, 'warm-up step') : '') +
        (isNum(rec.weight_decay) ? ', weight decay ' + rec.weight_decay : ''));
    }
    if (sched) {
      parts.push((sched.kind || 'cubic') + ' schedule ' + frac(sched.initial) + ' → ' + frac(sched.final) +
        (isNum(sched.steps) ? ' over ' + plural(sched.steps, 'step') : '') + (isNum(sched.every) ? ', every ' + sched.every : '') +
        ': ' + plural(prunings.length, 'pruning'));
    }
    if (isNum(rec.rows)) parts.push(plural(rec.rows, 'training row'));
    if (isNum(rec.train_s)) parts.push(fmtDuration(rec.train_s) + ' training');
    if (curve.length) parts.push('loss ' + fmt(curve[0].loss, 4) + ' → ' + fmt(curve[curve.length - 1].loss, 4));
    setText($('#job-recovery-summary'), parts.join(' · '));

    if (!curve.length && !evals.length) {
      box.append(el('p', { class: 'muted', text: 'no training steps recorded' }));
      setText($('#job-recovery-legend'), '');
      return;
    }
    box.append(recoveryChart(rec, curve, evals, prunings, resumed, m));
    const legend = ['Line: training loss (left axis), each point the mean over the steps since the one before'];
    if (evals.length) legend.push('dots: accuracy on the eval data during training (right axis)');
    else legend.push('no evaluation during training (recover.eval_every)');
    if (m.after_pruning || m.after_recovery) legend.push('dashed: accuracy after pruning and after recovery');
    if (prunings.length) legend.push('purple: the schedule prunes to the sparsity above the line');
    if (resumed !== null) legend.push('orange: where this attempt resumed');
    setText($('#job-recovery-legend'), legend.join('; ') + '.');
  }

  /* Loss (left axis) against step: svg#recovery-curve with one polyline.loss, a point per curve
   * entry; the evaluations' accuracy (right axis) as circle.eval-pt[data-step]; a dashed
   * line.pruning[data-step] at each step a schedule pruned; line.resumed where a resumed
   * attempt began; the accuracy after pruning and after recovery as line.ref[data-ref]. */
  function recoveryChart(rec, curve, evals, prunings, resumed, m) {
    const W = 720;
    const H = 300;
    const L = 56;
    const R = 60;
    const T = 26;
    const B = 40;
    const pw = W - L - R;
    const ph = H - T - B;
    let xmax = Math.max(1, isNum(rec.steps) ? rec.steps : 0);
    for (const p of curve.concat(evals, prunings)) xmax = Math.max(xmax, p.step);
    const x = (t) => L + (t / xmax) * pw;
    let lmax = 0;
    for (const p of curve) lmax = Math.max(lmax, p.loss);
    const lstep = roundStep(lmax > 0 ? lmax : 1, 5);
    lmax = Math.max(lstep, Math.ceil(lmax / lstep - 1e-9) * lstep);
    const yl = (v) => T + (1 - Math.max(0, v) / lmax) * ph;

    const refs = [['after_pruning', 'after pruning'], ['after_recovery', 'after recovery']].filter(([k]) => m[k] && isNum(m[k].accuracy));
    const accs = evals.map((p) => p.accuracy).concat(refs.map(([k]) => m[k].accuracy));
    let lo = accs.length ? Math.min(...accs) : 0;
    let hi = accs.length ? Math.max(...accs) : 1;
    const pad = Math.max((hi - lo) * 0.1, 0.005);
    const astep = roundStep(hi - lo + 2 * pad, 5);
    lo = Math.max(0, Math.floor((lo - pad) / astep) * astep);
    hi = Math.min(1, Math.ceil((hi + pad) / astep) * astep);
    if (hi <= lo) hi = lo + astep;
    const ya = (v) => T + (1 - (v - lo) / (hi - lo)) * ph;

    const s = svg('svg', { id: 'recovery-curve', class: 'chart recovery', viewBox: '0 0 ' + W + ' ' + H, width: String(W), height: String(H), role: 'img',
      'aria-label': 'training loss against step' + (evals.length ? ', with the accuracy of the evaluations during training' : '') });
    const ld = stepDigits(lstep);
    for (let i = 0, n = Math.round(lmax / lstep); i <= n; i++) {
      const v = i * lstep;
      s.append(svg('line', { class: 'grid', x1: L, x2: L + pw, y1: yl(v).toFixed(2), y2: yl(v).toFixed(2) }),
        svg('text', { class: 'tick', x: L - 6, y: (yl(v) + 4).toFixed(2), 'text-anchor': 'end', text: v.toFixed(ld) }));
    }
    if (accs.length) {
      const ad = stepDigits(astep);
      for (let i = 0, n = Math.round((hi - lo) / astep); i <= n; i++) {
        const v = lo + i * astep;
        s.append(svg('text', { class: 'tick acc', x: L + pw + 6, y: (ya(v) + 4).toFixed(2), text: v.toFixed(ad) }));
      }
    }
    const xstep = Math.max(1, Math.round(roundStep(xmax, 8)));
    for (let t = 0; t <= xmax; t += xstep) {
      s.append(svg('line', { class: 'grid', x1: x(t).toFixed(2), x2: x(t).toFixed(2), y1: T, y2: T + ph }),
        svg('text', { class: 'tick', x: x(t).toFixed(2), y: T + ph + 15, 'text-anchor': 'middle', text: String(t) }));
    }
    s.append(svg('line', { class: 'axis', x1: L, x2: L + pw, y1: T + ph, y2: T + ph }), svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: T + ph }),
      svg('text', { class: 'tick', x: L + pw / 2, y: H - 6, 'text-anchor': 'middle', text: 'step' }),
      svg('text', { class: 'tick', x: 12, y: T + ph / 2, 'text-anchor': 'middle', transform: 'rotate(-90 12 ' + (T + ph / 2) + ')', text: 'loss' }));
    if (accs.length) {
      s.append(svg('line', { class: 'axis', x1: L + pw, x2: L + pw, y1: T, y2: T + ph }),
        svg('text', { class: 'tick acc', x: W - 8, y: T + ph / 2, 'text-anchor': 'middle', transform: 'rotate(90 ' + (W - 8) + ' ' + (T + ph / 2) + ')', text: 'accuracy' }));
    }

    /* The prunings' sparsities above the plot, each where there is room for it. */
    let lastLabel = -Infinity;
    for (const p of prunings) {
      const px = x(p.step);
      s.append(svg('line', { class: 'pruning', 'data-step': String(p.step), 'data-sparsity': isNum(p.sparsity) ? String(p.sparsity) : null, x1: px.toFixed(2), x2: px.toFixed(2), y1: T - 4, y2: T + ph },
        svg('title', { text: 'step ' + p.step + ': pruned to ' + frac(p.sparsity) + ' sparsity' })));
      if (px - lastLabel >= 34) {
        s.append(svg('text', { class: 'pruning-label', x: px.toFixed(2), y: T - 8, 'text-anchor': 'middle', text: frac(p.sparsity) }));
        lastLabel = px;
      }
    }
    if (resumed !== null) {
      s.append(svg('line', { class: 'resumed', 'data-step': String(resumed), x1: x(resumed).toFixed(2), x2: x(resumed).toFixed(2), y1: T, y2: T + ph },
        svg('title', { text: 'this attempt resumed from step ' + resumed })));
    }
    refs.forEach(([k, label], i) => {
      const v = m[k].accuracy;
      s.append(svg('line', { class: 'ref', 'data-ref': k, 'data-value': String(v), x1: L, x2: L + pw, y1: ya(v).toFixed(2), y2: ya(v).toFixed(2) },
        svg('title', { text: 'accuracy ' + label + ': ' + fmt(v) })),
      svg('text', { class: 'ref-label', x: i ? L + pw - 4 : L + 4, y: (ya(v) - 4).toFixed(2), 'text-anchor': i ? 'end' : 'start', text: label + ' ' + fmt(v) }));
    });

    s.append(svg('polyline', { class: 'loss', 'data-points': String(curve.length), points: curve.map((p) => x(p.step).toFixed(2) + ',' + yl(p.loss).toFixed(2)).join(' ') },
      svg('title', { text: 'training loss' + (curve.length ? ': ' + fmt(curve[0].loss, 4) + ' at step ' + curve[0].step + ', ' + fmt(curve[curve.length - 1].loss, 4) + ' at step ' + curve[curve.length - 1].step : '') })));
    if (evals.length > 1) {
      s.append(svg('path', { class: 'eval-line', d: evals.map((p, i) => (i ? 'L' : 'M') + x(p.step).toFixed(2) + ' ' + ya(p.accuracy).toFixed(2)).join(' ') }));
    }
    for (const p of evals) {
      s.append(svg('circle', { class: 'eval-pt', 'data-step': String(p.step), 'data-accuracy': String(p.accuracy), cx: x(p.step).toFixed(2), cy: ya(p.accuracy).toFixed(2), r: 4 },
        svg('title', { text: 'step ' + p.step + ': accuracy ' + fmt(p.accuracy) + (isNum(p.macro_f1) ? ', macro F1 ' + fmt(p.macro_f1) : '') })));
    }
    return s;
  }

  /* Accuracy and macro F1 before, after pruning and after recovery, and the changes: what
   * training won back, and where it ended against the dense model.  Only with after_pruning. */
  function renderRecoveryMetrics(m) {
    const tb = $('#job-recovery-metrics tbody');
    clear(tb);
    const when = [m.before || null, m.after_pruning || null, m.after_recovery || m.after || null];
    $('#job-recovery-compare').hidden = !when[1];
    if (!when[1]) return;
    for (const [key, label] of [['accuracy', 'accuracy'], ['macro_f1', 'macro F1']]) {
      const [b, p, r] = when.map((x) => (x && isNum(x[key]) ? x[key] : null));
      tb.append(el('tr', { 'data-metric': key }, el('th', { text: label }),
        el('td', { 'data-when': 'before', text: fmt(b) }), el('td', { 'data-when': 'after_pruning', text: fmt(p) }),
        el('td', { 'data-when': 'after_recovery', text: fmt(r) }),
        deltaCell(isNum(r) && isNum(p) ? r - p : null, 3), deltaCell(isNum(r) && isNum(b) ? r - b : null, 3)));
    }
  }

  /* ---- kind sweep: accuracy against amount per group, and the recommendation ---- */

  /* Distinct, stable line colours: hues a golden angle apart. */
  const seriesColor = (i) => 'hsl(' + ((210 + i * 137.508) % 360).toFixed(1) + ', 68%, 42%)';

  /* "layer 3", "layer 0 · attention.self.query.weight", else the name less the common prefix. */
  function groupLabel(name, prefix) {
    const m = /(?:^|\.)layer\.(\d+)(?:\.(.+))?$/.exec(name);
    if (m) return 'layer ' + m[1] + (m[2] ? ' · ' + m[2] : '');
    return name.slice(prefix.length) || name;
  }

  /* A round tick step that cuts span into at most n parts. */
  function niceStep(span, n) {
    for (const s of [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5]) if (span / s <= n) return s;
    return 1;
  }

  /* Shows result.sweep, result.points and result.recommendation (only a sweep's result has
   * them), and hides the cards a sweep leaves empty: it masks nothing and evaluates one model. */
  function renderSweep(res) {
    const sw = res.sweep && typeof res.sweep === 'object' ? res.sweep : null;
    $('#job-sweep').hidden = !sw;
    const rec = sw && res.recommendation && typeof res.recommendation === 'object' ? res.recommendation : null;
    $('#job-recommend').hidden = !rec;
    if (!sw) return;
    $('#job-sparsity-card').hidden = true;
    $('#job-confusion-card').hidden = true;
    const groups = Array.isArray(sw.groups) ? sw.groups : [];
    const points = Array.isArray(res.points) ? res.points : [];
    const amounts = Array.isArray(sw.amounts) ? sw.amounts.filter(isNum) : [];
    const dense = sw.dense && isNum(sw.dense.accuracy) ? sw.dense.accuracy : null;
    const prefix = commonPrefix(groups.map((g) => g.group));
    const labels = new Map(groups.map((g) => [g.group, groupLabel(g.group, prefix)]));
    const colors = new Map(groups.map((g, i) => [g.group, seriesColor(i)]));

    const parts = [];
    if (sw.method) parts.push(sw.method);
    if (sw.group) parts.push('grouped by ' + sw.group);
    parts.push(groups.length + ' group' + (groups.length === 1 ? '' : 's') + ' × ' + amounts.length + ' amount' + (amounts.length === 1 ? '' : 's') + ' = ' + points.length + ' evaluation' + (points.length === 1 ? '' : 's'));
    if (dense !== null) parts.push('dense accuracy ' + fmt(dense) + (sw.dense && isNum(sw.dense.macro_f1) ? ', macro F1 ' + fmt(sw.dense.macro_f1) : ''));
    const secs = points.reduce((t, p) => (isNum(p.seconds) ? t + p.seconds : t), 0);
    if (secs > 0) parts.push(fmtDuration(secs) + ' evaluating');
    setText($('#job-sweep-summary'), parts.join(' · '));

    const box = $('#job-sweep-chart');
    clear(box);
    const chart = sweepChart(groups, points, amounts, dense, labels, colors);
    box.append(chart);
    renderSweepLegend(groups, labels, colors, chart);
    renderSweepPoints(groups, points, amounts, dense, labels);
    if (rec) renderRecommendation(rec, dense, labels);
  }

  /* Accuracy (y) against amount (x): one polyline[data-group] per group, in the order given
   * (most sensitive first), a dot per point (circle[data-series]), and the dense accuracy
   * as a dashed line[data-ref=dense]. */
  function sweepChart(groups, points, amounts, dense, labels, colors) {
    const W = 660;
    const H = 320;
    const L = 52;
    const R = 92;
    const T = 12;
    const B = 42;
    const pw = W - L - R;
    const ph = H - T - B;
    const accs = points.map((p) => p.accuracy).filter(isNum);
    if (dense !== null) accs.push(dense);
    let lo = accs.length ? Math.min(...accs) : 0;
    let hi = accs.length ? Math.max(...accs) : 1;
    const pad = Math.max((hi - lo) * 0.06, 0.005);
    const step = niceStep(hi - lo + 2 * pad, 6);
    lo = Math.max(0, Math.floor((lo - pad) / step) * step);
    hi = Math.min(1, Math.ceil((hi + pad) / step) * step);
    if (hi <= lo) hi = lo + step;
    const xmax = Math.min(1, Math.max(0.1, Math.ceil(Math.max(0, ...amounts) * 10 - 1e-9) / 10));
    const x = (a) => L + (a / xmax) * pw;
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * ph;
    const digits = step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3;
    const s = svg('svg', { class: 'chart sweep', viewBox: '0 0 ' + W + ' ' + H, width: String(W), height: String(H), role: 'img', 'aria-label': 'accuracy against amount pruned, one line per group' });

    for (let i = 0, n = Math.round((hi - lo) / step); i <= n; i++) {
      const v = lo + i * step;
      s.append(svg('line', { class: 'grid', x1: L, x2: L + pw, y1: y(v).toFixed(2), y2: y(v).toFixed(2) }),
        svg('text', { class: 'tick', x: L - 6, y: (y(v) + 4).toFixed(2), 'text-anchor': 'end', text: v.toFixed(digits) }));
    }
    for (let i = 0, n = Math.round(xmax * 10); i <= n; i++) {
      const a = i / 10;
      s.append(svg('line', { class: 'grid', x1: x(a).toFixed(2), x2: x(a).toFixed(2), y1: T, y2: T + ph }),
        svg('text', { class: 'tick', x: x(a).toFixed(2), y: T + ph + 15, 'text-anchor': 'middle', text: Math.round(a * 100) + '%' }));
    }
    s.append(svg('line', { class: 'axis', x1: L, x2: L + pw, y1: T + ph, y2: T + ph }), svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: T + ph }),
      svg('text', { class: 'tick', x: L + pw / 2, y: H - 6, 'text-anchor': 'middle', text: 'amount pruned in the group' }),
      svg('text', { class: 'tick', x: 12, y: T + ph / 2, 'text-anchor': 'middle', transform: 'rotate(-90 12 ' + (T + ph / 2) + ')', text: 'accuracy' }));

    if (dense !== null) {
      const yd = y(dense).toFixed(2);
      s.append(svg('line', { class: 'ref', 'data-ref': 'dense', 'data-value': String(dense), x1: L, x2: L + pw, y1: yd, y2: yd }, svg('title', { text: 'dense model: accuracy ' + fmt(dense) })),
        svg('text', { class: 'ref-label', x: L + pw + 6, y: (y(dense) + 4).toFixed(2), text: 'dense ' + fmt(dense) }));
    }

    for (const g of groups) {
      const pts = points.filter((p) => p.group === g.group && isNum(p.amount) && isNum(p.accuracy)).sort((a, b) => a.amount - b.amount);
      const color = colors.get(g.group);
      const label = labels.get(g.group);
      s.append(svg('polyline', { class: 'series', 'data-group': g.group, stroke: color, points: pts.map((p) => x(p.amount).toFixed(2) + ',' + y(p.accuracy).toFixed(2)).join(' ') },
        svg('title', { text: label + (isNum(g.sensitivity) ? ': mean accuracy drop ' + fmt(g.sensitivity * 100, 2) + ' pt' : '') })));
      for (const p of pts) {
        s.append(svg('circle', { class: 'pt', 'data-series': g.group, 'data-amount': String(p.amount), 'data-accuracy': String(p.accuracy), cx: x(p.amount).toFixed(2), cy: y(p.accuracy).toFixed(2), r: 3, fill: color },
          svg('title', { text: label + ' at ' + pct(p.amount, 0) + ': accuracy ' + fmt(p.accuracy) + (isNum(p.macro_f1) ? ', macro F1 ' + fmt(p.macro_f1) : '') })));
      }
    }
    return s;
  }

  /* The legend, most sensitive first; pointing at an entry brings its line forward. */
  function renderSweepLegend(groups, labels, colors, chart) {
    const ol = $('#job-sweep-legend');
    clear(ol);
    const focus = (group) => {
      chart.classList.toggle('focus', group !== null);
      for (const e of $$('.series, .pt', chart)) e.classList.toggle('hl', group !== null && (e.dataset.group || e.dataset.series) === group);
      for (const li of $$('li', ol)) li.classList.toggle('hl', li.dataset.group === group);
    };
    for (const g of groups) {
      const sens = isNum(g.sensitivity) ? fmt(g.sensitivity * 100, 2) + ' pt' : '–';
      const li = el('li', { 'data-group': g.group, tabindex: '0', title: g.group + (Array.isArray(g.tensors) ? '\n' + g.tensors.join('\n') : '') },
        svg('svg', { class: 'swatch', width: '22', height: '10', 'aria-hidden': 'true' }, svg('line', { x1: 1, x2: 21, y1: 5, y2: 5, stroke: colors.get(g.group) })),
        el('span', { class: 'gname', text: labels.get(g.group) }),
        el('span', { class: 'sens muted', text: sens }));
      li.addEventListener('mouseenter', () => focus(g.group));
      li.addEventListener('focus', () => focus(g.group));
      li.addEventListener('mouseleave', () => focus(null));
      li.addEventListener('blur', () => focus(null));
      ol.append(li);
    }
  }

  /* The points as a table: a row per group (most sensitive first), a column per amount; the
   * red tint grows with the drop from the dense accuracy. */
  function renderSweepPoints(groups, points, amounts, dense, labels) {
    const table = $('#job-sweep-points');
    const head = el('tr', null, el('th', { text: 'group' }), el('th', { text: 'size', title: 'the weights in the group; a structured group: its heads or neurons' }), el('th', { text: 'mean drop' }));
    for (const a of amounts) head.append(el('th', { 'data-amount': String(a), text: pct(a, 0) }));
    const thead = $('thead', table);
    clear(thead);
    thead.append(head);
    const at = new Map(points.map((p) => [p.group + '\u0000' + p.amount, p]));
    let maxDrop = 0;
    for (const p of points) if (isNum(p.accuracy) && dense !== null) maxDrop = Math.max(maxDrop, dense - p.accuracy);
    const tbody = $('tbody', table);
    clear(tbody);
    for (const g of groups) {
      const tr = el('tr', { 'data-group': g.group },
        el('th', { text: labels.get(g.group), title: g.group }),
        el('td', { text: isNum(g.parameters) ? count(g.parameters) : isNum(g.units) ? count(g.units) + ' ' + (g.unit || '') : '–' }),
        el('td', { text: isNum(g.sensitivity) ? fmt(g.sensitivity * 100, 2) + ' pt' : '–' }));
      for (const a of amounts) {
        const p = at.get(g.group + '\u0000' + a);
        const drop = p && isNum(p.accuracy) && dense !== null ? dense - p.accuracy : null;
        const td = el('td', {
          class: 'point', 'data-amount': String(a), 'data-accuracy': p && isNum(p.accuracy) ? String(p.accuracy) : null,
          title: p ? labels.get(g.group) + ' at ' + pct(a, 0) + ': accuracy ' + fmt(p.accuracy) + (drop !== null ? ' (' + signed(-drop) + ' from dense)' : '') + ', macro F1 ' + fmt(p.macro_f1) + (isNum(p.seconds) ? ', ' + fmtDuration(p.seconds) : '') : 'not evaluated',
          text: p ? fmt(p.accuracy) : '–',
        });
        if (drop !== null && drop > 0 && maxDrop > 0) td.style.backgroundColor = 'rgba(220, 38, 38, ' + (0.08 + 0.55 * (drop / maxDrop)).toFixed(3) + ')';
        tr.append(td);
      }
      tbody.append(tr);
    }
    if (!groups.length) tbody.append(el('tr', null, el('td', { colspan: String(3 + amounts.length), class: 'muted', text: 'no groups' })));
  }

  /* result.recommendation: the amount per group that reaches the asked sparsity, what the
   * points predict for it, and its prune job, ready to submit. */
  function renderRecommendation(rec, dense, labels) {
    const pred = rec.predicted_accuracy;
    const sum = $('#job-recommend-summary');
    clear(sum);
    sum.append('Amounts per group for ' + pct(rec.sparsity) + ' sparsity over the targets' + (isNum(rec.achieved) ? ' (achieved ' + pct(rec.achieved, 2) + ')' : '') + '; predicted accuracy ',
      el('strong', { id: 'job-recommend-predicted', 'data-value': isNum(pred) ? String(pred) : null, text: fmt(pred) }),
      dense !== null && isNum(pred) ? ' against ' + fmt(dense) + ' dense (' + signed(pred - dense) + ')' : '');
    const amounts = rec.amounts && typeof rec.amounts === 'object' ? Object.entries(rec.amounts) : [];
    const box = $('#job-recommend-amounts');
    clear(box);
    box.append(amounts.length ? barChart('recommend-amounts', amounts.map(([g, a]) => ({
      name: g,
      label: labels.get(g) || g,
      value: a,
      title: g + ': prune ' + pct(a, 2),
    })), isNum(rec.sparsity) ? rec.sparsity : null, 'asked sparsity ' + pct(rec.sparsity)) : el('p', { class: 'muted', text: 'no amounts' }));
    setText($('#job-recommend-request'), rec.request ? JSON.stringify(rec.request, null, 2) : '');
    $('#job-recommend-submit').disabled = !rec.request || typeof rec.request !== 'object';
    setText($('#job-recommend-state'), '');
  }

  /* POSTs the recommendation's prune job as it stands, then shows the new job. */
  async function submitRecommendation() {
    const rec = jobView.result && jobView.result.recommendation;
    if (!rec || !rec.request) return;
    const button = $('#job-recommend-submit');
    const state = $('#job-recommend-state');
    button.disabled = true;
    setText(state, 'submitting…');
    try {
      const { data } = await api('POST', '/v1/jobs', rec.request);
      setText(state, 'submitted ' + data.id);
      location.hash = '#/jobs/' + data.id;
    } catch (e) {
      setText(state, e.status ? 'refused (' + e.status + ')' + (e.field ? ' at ' + e.field : '') + ': ' + e.message : '');
      if (e.status !== 401) showBanner('submit failed: ' + e.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  /* ---- downloads: fetch + blob, so the Authorization header goes along ---- */

  /* The files of a folder artifact (safetensors: model.safetensors, config.json);
   * none for a single-file artifact, and for results written before folders existed. */
  function artifactFiles(a) {
    return a && Array.isArray(a.files) ? a.files.filter((f) => f && typeof f.name === 'string' && f.name) : [];
  }

  /* "torchscript", "state_dict", or "safetensors/config.json" for one file of a folder. */
  const downloadKey = (format, file) => (file ? format + '/' + file : format);

  /* Enables a checkpoint button only when the result lists that artifact (or that file of
   * it); nothing is downloadable before the job succeeded or after retention deleted it.
   * res is null while result.json has not been read. */
  function setDownloadButtons(job, res) {
    const done = job.status === 'succeeded' && !job.files_deleted;
    const keys = new Set();
    for (const a of res && Array.isArray(res.artifacts) ? res.artifacts : []) {
      const files = artifactFiles(a);
      if (files.length) for (const f of files) keys.add(downloadKey(a.format, f.name));
      else keys.add(a.format);
    }
    for (const b of $$('[data-download]')) {
      const kind = b.dataset.download;
      b.disabled = !done || (kind !== 'result' && !keys.has(downloadKey(kind, b.dataset.file)));
    }
  }

  /* The result.json entry a download is checked against: the artifact, or one file of it. */
  function expectedArtifact(kind, file) {
    const arts = jobView.result && Array.isArray(jobView.result.artifacts) ? jobView.result.artifacts : [];
    const art = arts.find((x) => x.format === kind) || null;
    return file ? artifactFiles(art).find((f) => f.name === file) || null : art;
  }

  function filenameOf(disposition) {
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition || '');
    return m ? decodeURIComponent(m[1]).replace(/[\/\\]/g, '_') : '';
  }

  async function sha256Hex(blob) {
    if (!window.crypto || !crypto.subtle) return null; /* only in secure contexts */
    const h = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
    return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /* Saves result.json, a checkpoint, or (file set) one file of a folder checkpoint. */
  async function download(kind, file) {
    const id = jobView.id;
    const state = $('#job-download-state');
    let path = kind === 'result' ? '/v1/jobs/' + id + '/result' : '/v1/jobs/' + id + '/checkpoint?format=' + encodeURIComponent(kind);
    if (file) path += '&file=' + encodeURIComponent(file);
    setText(state, 'downloading ' + (file || kind) + '…');
    let resp;
    try {
      resp = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    } catch (e) {
      setText(state, '');
      showBanner('download failed: ' + e.message, 'error');
      return;
    }
    if (!resp.ok) {
      let body = null;
      try {
        body = await resp.json();
      } catch (e) {
        body = null;
      }
      const err = new ApiError(resp.status, body);
      if (resp.status === 401) needToken(err.message);
      else showBanner('download failed: ' + err.message, 'error');
      setText(state, '');
      return;
    }
    const blob = await resp.blob();
    /* A folder's files keep their own names after the id, whatever the header says. */
    const name = file ? id + '-' + file : filenameOf(resp.headers.get('Content-Disposition')) || (kind === 'result' ? id + '-result.json' : id + '-' + kind + '.pt');
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: name });
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    let note = 'saved ' + name + ' (' + fmtBytes(blob.size) + ')';
    const art = kind === 'result' ? null : expectedArtifact(kind, file);
    if (art && art.sha256) {
      const got = await sha256Hex(blob);
      if (got === null) note += ', sha256 not checked (needs https or localhost)';
      else if (got === art.sha256) note += ', sha256 verified';
      else note += ', sha256 MISMATCH: got ' + got + ', expected ' + art.sha256;
    }
    setText(state, note);
    state.dataset.kind = kind;
    state.dataset.file = file || '';
  }

  async function cancelJob() {
    const id = jobView.id;
    try {
      await api('POST', '/v1/jobs/' + id + '/cancel');
      setPoller(pollJob);
    } catch (e) {
      showBanner('cancel failed: ' + e.message, 'error');
    }
  }

  async function deleteJob() {
    const id = jobView.id;
    if (!window.confirm('Delete job ' + id + ' and its files?')) return;
    try {
      await api('DELETE', '/v1/jobs/' + id);
      jobs.rows.get(id)?.tr.remove();
      jobs.rows.delete(id);
      location.hash = '#/jobs';
    } catch (e) {
      showBanner('delete failed: ' + e.message, 'error');
    }
  }

  function initJob() {
    for (const b of $$('[data-download]')) b.addEventListener('click', () => download(b.dataset.download, b.dataset.file));
    $('#job-cancel').addEventListener('click', cancelJob);
    $('#job-delete').addEventListener('click', deleteJob);
    $('#job-recommend-submit').addEventListener('click', submitRecommendation);
  }

  /* ---- submit form ---- */

  const form = { params: [] };

  function fieldBox(field) {
    const f = $('#submit-form');
    for (let name = field; name; name = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '') {
      const box = $$('[data-field]', f).find((e) => e.dataset.field === name);
      if (box) return box;
    }
    return null;
  }

  function clearFieldErrors() {
    for (const e of $$('#submit-form .field-error')) e.remove();
    for (const e of $$('#submit-form [aria-invalid]')) e.removeAttribute('aria-invalid');
    for (const e of $$('#submit-form .field.invalid')) e.classList.remove('invalid');
    const top = $('#submit-error');
    top.hidden = true;
    clear(top);
  }

  /* Shows message next to the form field the API named; the top box when none matches. */
  function showFieldError(field, message) {
    const box = field ? fieldBox(field) : null;
    if (!box || box.id === 'submit-error') {
      const top = $('#submit-error');
      clear(top);
      top.append(field ? el('strong', { text: field + ': ' }) : '', message);
      top.dataset.field = field || '';
      top.hidden = false;
      top.scrollIntoView({ block: 'nearest' });
      return;
    }
    box.classList.add('invalid');
    box.append(el('p', { class: 'field-error', role: 'alert', 'data-for': field, text: (box.dataset.field !== field ? field + ': ' : '') + message }));
    const input = $('input:not([type=radio]):not([type=checkbox]), select, textarea', box) || $('input', box);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus({ preventScroll: true });
    }
    box.scrollIntoView({ block: 'center' });
  }

  const val = (id) => $('#' + id).value.trim();

  /* A number typed into a text box: a number when it reads as one, else the text itself
   * (the API names what is wrong with it). */
  function numberOrText(s) {
    if (s === '') return undefined;
    const x = Number(s);
    return Number.isFinite(x) ? x : s;
  }

  /* The job JSON from the form; throws {field, message} for what cannot be sent at all. */
  function buildRequest() {
    const req = {};
    if (val('f-name')) req.name = val('f-name');
    if (val('f-model')) req.model = val('f-model');
    if (val('f-model-config')) req.model_config = val('f-model-config');
    const targets = $('#f-targets').value.split('\n').map((s) => s.trim()).filter(Boolean);
    if (targets.length) req.targets = targets;
    req.method = $('#f-method').value;
    const amount = numberOrText(val('f-amount'));
    if (amount !== undefined) req.amount = amount;
    /* JSON.stringify writes 1.0 as 1: the kind is sent, so a fraction of 1 stays a fraction. */
    req.amount_kind = $('input[name=amount_kind]:checked').value;
    req.scope = $('#f-scope').value;

    const o = {};
    const n = val('f-n');
    if (n) o.n = numberOrText(n);
    for (const [id, key] of [['f-dim', 'dim'], ['f-seed', 'seed'], ['f-threshold', 'threshold']]) {
      const v = numberOrText(val(id));
      if (v !== undefined) o[key] = v;
    }
    if (val('f-mask')) o.mask = val('f-mask');
    if (val('f-plugin')) o.plugin = val('f-plugin');
    const pp = val('f-plugin-params');
    if (pp) {
      try {
        o.plugin_params = JSON.parse(pp);
      } catch (e) {
        throw { field: 'options.plugin_params', message: 'is not valid JSON: ' + e.message };
      }
    }
    o.iterative = $('#f-iterative').checked;
    req.options = o;

    if ($('#f-eval-on').checked) {
      const ev = {};
      for (const [id, key] of [['f-eval-data', 'data'], ['f-eval-vocab', 'vocab'], ['f-eval-classes', 'classes']]) if (val(id)) ev[key] = val(id);
      for (const [id, key] of [['f-eval-limit', 'limit'], ['f-eval-batch', 'batch_size'], ['f-eval-maxlen', 'max_length']]) {
        const v = numberOrText(val(id));
        if (v !== undefined) ev[key] = v;
      }
      ev.lowercase = $('#f-eval-lowercase').checked;
      ev.padding = $('#f-eval-padding').value;
      ev.tokenizer = $('#f-eval-tokenizer').value;
      req.eval = ev;
    } else {
      req.eval = null;
    }
    /* None ticked: no "outputs", and the job writes the input's own format. */
    const outputs = $$('input[name=outputs]:checked').map((c) => c.value);
    if (outputs.length) req.outputs = outputs;
    req.device = $('#f-device').value;
    return req;
  }

  async function submitJob(ev) {
    ev.preventDefault();
    clearFieldErrors();
    const state = $('#submit-state');
    const busy = $$('#submit-form .upload-state[data-state=uploading]');
    if (busy.length) {
      showFieldError(busy[0].closest('[data-field]').dataset.field, 'wait for the upload to finish (or cancel it)');
      return;
    }
    let req;
    try {
      req = buildRequest();
    } catch (e) {
      showFieldError(e.field, e.message);
      return;
    }
    const button = $('#f-submit');
    button.disabled = true;
    setText(state, 'submitting…');
    try {
      const { data } = await api('POST', '/v1/jobs', req);
      setText(state, 'submitted ' + data.id);
      location.hash = '#/jobs/' + data.id;
    } catch (e) {
      setText(state, e.status ? 'refused (' + e.status + ')' : '');
      if (e.status === 401) return;
      showFieldError(e.field, e.message);
    } finally {
      button.disabled = false;
    }
  }

  function targetLines() {
    return $('#f-targets').value.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  function toggleTarget(name, on) {
    const lines = targetLines().filter((l) => l !== name);
    if (on) lines.push(name);
    $('#f-targets').value = lines.join('\n');
  }

  async function inspectModel() {
    clearFieldErrors();
    const path = val('f-model');
    const info = $('#f-params-info');
    if (!path) {
      showFieldError('model', 'give a model path first');
      return;
    }
    setText(info, 'loading…');
    $('#f-params').hidden = false;
    const q = new URLSearchParams({ path });
    if (val('f-model-config')) q.set('model_config', val('f-model-config'));
    try {
      const { data } = await api('GET', '/v1/models/inspect?' + q);
      form.params = (data.tensors || []).filter((t) => t.kind === 'parameter');
      setText(info, form.params.length + ' parameters, ' + (isNum(data.numel) ? data.numel.toLocaleString() : '?') + ' weights, ' + pct(data.sparsity, 2) + ' zero now');
      renderParams();
    } catch (e) {
      setText(info, '');
      $('#f-params').hidden = true;
      if (e.status !== 401) showFieldError(e.field === 'path' || !e.field ? 'model' : e.field, e.message);
    }
  }

  function renderParams() {
    const body = $('#f-params-body');
    clear(body);
    const words = val('f-params-filter').toLowerCase().split(/\s+/).filter(Boolean);
    const chosen = new Set(targetLines());
    const frag = document.createDocumentFragment();
    for (const p of form.params) {
      if (words.length && !words.every((w) => p.name.toLowerCase().includes(w))) continue;
      const box = el('input', { type: 'checkbox', value: p.name, 'aria-label': p.name });
      box.checked = chosen.has(p.name);
      box.addEventListener('change', () => toggleTarget(p.name, box.checked));
      frag.append(el('tr', { 'data-param': p.name },
        el('td', null, box),
        el('td', { class: 'mono', text: p.name }),
        el('td', { class: 'mono', text: Array.isArray(p.shape) ? p.shape.join('×') : '' }),
        el('td', { class: 'num', text: isNum(p.numel) ? p.numel.toLocaleString() : '' }),
        el('td', { class: 'num', text: pct(p.sparsity) })));
    }
    body.append(frag);
  }

  function initSubmit() {
    $('#submit-form').addEventListener('submit', submitJob);
    $('#f-inspect').addEventListener('click', inspectModel);
    $('#f-model').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        inspectModel();
      }
    });
    let t = null;
    $('#f-params-filter').addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(renderParams, 100);
    });
    $('#f-targets').addEventListener('change', renderParams);
    $('#f-eval-on').addEventListener('change', (ev) => {
      for (const i of $$('#f-eval input, #f-eval select')) i.disabled = !ev.target.checked;
    });
    /* Editing a field takes its error away. */
    $('#submit-form').addEventListener('input', (ev) => {
      const box = ev.target.closest('[data-field]');
      if (!box) return;
      box.classList.remove('invalid');
      for (const e of $$('.field-error', box)) e.remove();
      for (const e of $$('[aria-invalid]', box)) e.removeAttribute('aria-invalid');
    });
  }

  /* ---- uploads: the submit form's Upload… buttons, PUT /v1/uploads/{name} ---- */

  const uploads = { list: [], gen: 0 };

  /* The name a file is uploaded under: the daemon takes [A-Za-z0-9._-], 1 to 128 characters
   * (not "." or ".."), so each run of other characters becomes one "_", and a name over 128
   * keeps its extension. */
  function uploadName(fileName) {
    let s = String(fileName).replace(/[^A-Za-z0-9._-]+/g, '_');
    if (s.length > 128) {
      const dot = s.lastIndexOf('.');
      const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
      s = s.slice(0, 128 - ext.length) + ext;
    }
    return s === '' || s === '.' || s === '..' ? 'upload' : s;
  }

  /* An archive to unpack: ?unpack=tar or zip, and the folder's name (the file's without the
   * archive's extension).  Anything else is sent as tar: the daemon says if it is none. */
  function unpackOf(fileName) {
    const m = /^(.+?)\.(zip|tar|tgz|tbz2?|txz|tzst|tar\.(?:gz|xz|bz2|zst))$/i.exec(fileName);
    if (!m) return { unpack: 'tar', stem: fileName };
    return { unpack: m[2].toLowerCase() === 'zip' ? 'zip' : 'tar', stem: m[1] };
  }

  /* PUTs file to /v1/uploads/NAME?query with the token.  The body is the File itself, which the
   * browser streams from disk: nothing is read into memory here.  onProgress(sent, total) as it
   * goes; hold.xhr is the request, for Cancel.  Resolves {status, data, replayed}; rejects with
   * an ApiError (status 0: the connection failed, or the upload was cancelled: code "aborted"). */
  function putUpload(file, name, query, onProgress, hold) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      hold.xhr = xhr;
      const q = new URLSearchParams(query).toString();
      xhr.open('PUT', '/v1/uploads/' + encodeURIComponent(name) + (q ? '?' + q : ''));
      for (const [k, v] of Object.entries(authHeaders({ 'Content-Type': 'application/octet-stream' }))) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        let data = null;
        try {
          data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch (e) {
          data = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          if (banner.kind === 'auth') hideBanner();
          resolve({ status: xhr.status, data: data || {}, replayed: xhr.getResponseHeader('Idempotent-Replayed') === 'true' });
          return;
        }
        const err = new ApiError(xhr.status, data && typeof data === 'object' ? data : null);
        if (xhr.status === 401) needToken(err.message);
        reject(err);
      };
      xhr.onerror = () => reject(new ApiError(0, { error: { code: 'network', message: 'the connection broke off: prunerd is unreachable, or it refused the file before reading it all (over its upload limit?)' } }));
      xhr.onabort = () => reject(new ApiError(0, { error: { code: 'aborted', message: 'cancelled' } }));
      xhr.send(file);
    });
  }

  function clearUploadErrors(box) {
    for (const e of $$('.field-error', box)) e.remove();
    for (const e of $$('[aria-invalid]', box)) e.removeAttribute('aria-invalid');
    box.classList.remove('invalid');
  }

  /* An upload's refusal next to the field it was for: the status, the code, the field the
   * daemon named (name, body, replace, ...) and its message; actions are buttons to offer. */
  function showUploadError(box, name, e, actions) {
    clearUploadErrors(box);
    const what = e.status
      ? 'upload of ' + name + ' refused (' + e.status + (e.code ? ' ' + e.code : '') + (e.field ? ', field ' + e.field : '') + '): '
      : 'upload of ' + name + ' failed: ';
    const p = el('p', { class: 'field-error upload-error', role: 'alert', 'data-for': box.dataset.field, 'data-status': String(e.status),
      'data-code': e.code || '', 'data-upload-field': e.field || '' }, what + e.message);
    for (const a of actions || []) p.append(' ', a);
    box.classList.add('invalid');
    box.append(p);
    box.scrollIntoView({ block: 'nearest' });
  }

  /* Puts an upload's path into the form field it was for, as if typed. */
  function useUpload(targetId, path) {
    const input = $('#' + targetId);
    input.value = path;
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }

  /* Uploads file for the field box (its input #targetId); replace: send ?replace=1. */
  async function startUpload(box, targetId, file, replace) {
    const unpackBox = $('[data-unpack]', box);
    const query = {};
    let name = uploadName(file.name);
    if (unpackBox && unpackBox.checked) {
      const u = unpackOf(file.name);
      query.unpack = u.unpack;
      name = uploadName(u.stem);
    }
    if (replace) query.replace = '1';
    clearUploadErrors(box);
    const state = $('.upload-state', box);
    clear(state);
    const fill = el('div', { class: 'pfill' });
    const bar = el('div', { class: 'pbar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', 'aria-label': 'upload of ' + name }, fill);
    const text = el('span', { class: 'upload-text' });
    const cancel = el('button', { type: 'button', class: 'quiet small', text: 'Cancel' });
    const hold = {};
    cancel.addEventListener('click', () => hold.xhr && hold.xhr.abort());
    state.append(bar, text, cancel);
    state.hidden = false;
    state.dataset.state = 'uploading';
    state.dataset.name = name;
    const progress = (sent, total) => {
      const p = total > 0 ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
      fill.style.width = p + '%';
      bar.setAttribute('aria-valuenow', String(p));
      setText(text, 'uploading ' + name + ': ' + p + '% of ' + fmtBytes(total));
    };
    progress(0, file.size);
    try {
      const r = await putUpload(file, name, query, progress, hold);
      const u = r.data;
      useUpload(targetId, u.path);
      fill.style.width = '100%';
      bar.setAttribute('aria-valuenow', '100');
      fill.classList.add('pfill-succeeded');
      const size = u.kind === 'folder' ? u.files + (u.files === 1 ? ' file, ' : ' files, ') + fmtBytes(u.bytes) : fmtBytes(u.bytes);
      setText(text, (r.replayed ? 'already uploaded: ' : replace ? 'replaced ' : 'uploaded ') + name + ' (' + size + ')');
      state.dataset.state = 'done';
      state.dataset.path = u.path || '';
      loadUploads();
    } catch (e) {
      state.dataset.state = e.code === 'aborted' ? 'cancelled' : 'failed';
      fill.classList.add('pfill-failed');
      if (e.code === 'aborted') {
        setText(text, 'upload of ' + name + ' cancelled');
      } else {
        setText(text, e.status ? 'refused (' + e.status + ')' : 'failed');
        let actions = null;
        if (e.status === 409) {
          const again = el('button', { type: 'button', class: 'small', 'data-action': 'replace', text: 'Replace it' });
          again.addEventListener('click', () => startUpload(box, targetId, file, true));
          const keep = el('button', { type: 'button', class: 'small', 'data-action': 'use-existing', text: 'Use the one there' });
          keep.addEventListener('click', () => useExisting(box, targetId, name));
          actions = [again, keep];
        }
        showUploadError(box, name, e, actions);
      }
    }
    cancel.remove();
  }

  /* The name is taken (409): fill the field with the upload already there instead. */
  async function useExisting(box, targetId, name) {
    try {
      const { data } = await api('GET', '/v1/uploads/' + encodeURIComponent(name));
      clearUploadErrors(box);
      useUpload(targetId, data.path);
      const state = $('.upload-state', box);
      setText($('.upload-text', state), 'using the upload already there: ' + name + ' (' + fmtBytes(data.bytes) + ')');
      state.dataset.state = 'done';
      state.dataset.path = data.path || '';
    } catch (e) {
      showUploadError(box, name, e, null);
    }
  }

  /* GET /v1/uploads: the "Your uploads" table and the path fields' suggestions. */
  async function loadUploads() {
    const gen = ++uploads.gen;
    let list;
    try {
      list = (await api('GET', '/v1/uploads')).data.uploads || [];
    } catch (e) {
      if (gen === uploads.gen) setText($('#uploads-count'), '(cannot list them: ' + e.message + ')');
      return;
    }
    if (gen !== uploads.gen) return;
    uploads.list = list;
    renderUploads();
  }

  function renderUploads() {
    const list = uploads.list;
    setText($('#uploads-count'), '(' + list.length + ')');
    const body = $('#uploads-table tbody');
    clear(body);
    const opts = $('#upload-paths');
    clear(opts);
    for (const u of list) {
      const del = el('button', { type: 'button', class: 'quiet small danger', text: 'Delete' });
      del.addEventListener('click', () => deleteUpload(u.name));
      const size = u.kind === 'folder' ? fmtBytes(u.bytes) + ' (' + u.files + ' files)' : fmtBytes(u.bytes);
      body.append(el('tr', { 'data-upload': u.name },
        el('td', { class: 'mono', text: u.name }),
        el('td', { class: 'num', text: size }),
        el('td', { title: isoLocal(u.created), text: fmtAge(u.created) + ' ago' }),
        el('td', { class: 'mono', text: u.path }),
        el('td', null, del)));
      opts.append(el('option', { value: u.path, label: u.name + (u.kind === 'folder' ? '/' : '') }));
    }
    $('#uploads-table').hidden = list.length === 0;
    $('#uploads-empty').hidden = list.length > 0;
  }

  async function deleteUpload(name) {
    if (!window.confirm('Delete the upload ' + name + '?')) return;
    try {
      await api('DELETE', '/v1/uploads/' + encodeURIComponent(name));
    } catch (e) {
      if (e.status !== 401) showBanner('delete failed: ' + e.message, 'error');
    }
    loadUploads();
  }

  function initUploads() {
    for (const input of $$('#submit-form input[type=file][data-upload-for]')) {
      const box = input.closest('[data-field]');
      box.append(el('div', { class: 'upload-state', 'data-upload-state': input.dataset.uploadFor, 'aria-live': 'polite', hidden: true }));
      input.addEventListener('change', () => {
        const file = input.files && input.files[0];
        input.value = ''; /* so that choosing the same file again uploads it again */
        if (file) startUpload(box, input.dataset.uploadFor, file, false);
      });
    }
  }

  /* ---- start ---- */

  function start() {
    initToken();
    initPoll();
    initJobs();
    initJob();
    initSubmit();
    initUploads();
    window.addEventListener('hashchange', route);
    route();
    /* Ages tick on even when nothing else changes. */
    setInterval(() => {
      if (!document.hidden && !$('#view-jobs').hidden) for (const j of jobs.first.concat(jobs.older)) {
        const row = jobs.rows.get(j.id);
        if (row) setText(row.cells.age, fmtAge(j.created_at));
      }
    }, 10000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
