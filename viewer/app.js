/* weft viewer: runs list, a run (tree + waterfall), replay, live updates.
   Every run value is rendered as text (textContent), never as HTML. */
'use strict';

const $main = document.getElementById('main');
const $crumbs = document.getElementById('crumbs');
const $live = document.getElementById('live');
let stream = null;      /* the EventSource of the page shown */
let page = 0;           /* bumped at each navigation: stale work stops */

/* An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmtTime(t) {
  return t ? new Date(t * 1000).toLocaleString() : '';
}
function fmtDur(s) {
  if (!(s >= 0)) return '';
  return s < 1 ? (s * 1000).toFixed(0) + ' ms' : s.toFixed(3) + ' s';
}
function fmtUsd(c) { return '$' + (c || 0).toFixed(4); }
function brief(v, n) {
  let s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s === undefined) s = '';
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
function pretty(v) {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}
function status(s) { return el('span', { class: 'st-' + s }, s); }

function setStream(es) {
  if (stream) stream.close();
  stream = es;
  $live.hidden = !es;
}

function crumbs(...links) {
  $crumbs.replaceChildren(...links.map(([t, h]) => el('a', { href: h }, t)));
}

/* ---------- Runs ---------- */

function runsQuery(f) {
  const q = new URLSearchParams();
  for (const k of ['status', 'workflow', 'q']) if (f[k]) q.set(k, f[k]);
  q.set('limit', '200');
  return q.toString();
}

function runsTable(data) {
  const rows = data.runs.map(r => el('tr', { 'data-run': r.id },
    el('td', {}, el('a', { href: '#/run/' + r.id }, r.id)),
    el('td', {}, status(r.status)),
    el('td', {}, r.workflow),
    el('td', {}, fmtTime(r.started)),
    el('td', { class: 'num' }, fmtDur((r.ended || Date.now() / 1000) -
      r.started)),
    el('td', { class: 'num' }, r.steps),
    el('td', { class: 'num' }, r.tokens),
    el('td', { class: 'num' }, fmtUsd(r.cost_usd))));
  return el('table', { id: 'runs' },
    el('thead', {}, el('tr', {}, ['run', 'status', 'workflow', 'started',
      'duration', 'steps', 'tokens', 'cost'].map(h => el('th',
      { class: ['duration', 'steps', 'tokens', 'cost'].includes(h) ?
        'num' : null }, h)))),
    el('tbody', {}, rows),
    data.total > data.runs.length ?
      el('caption', { class: 'muted' }, `${data.runs.length} of ` +
        `${data.total} runs`) : null);
}

function showRuns() {
  document.title = 'weft: runs';
  crumbs(['runs', '#/']);
  const f = JSON.parse(sessionStorage.getItem('weft.filters') || '{}');
  const box = el('div', {});
  const sel = el('select', { id: 'f-status' }, ['', 'running',
    'succeeded', 'failed', 'cancelled', 'budget_exceeded', 'waiting',
    'paused'].map(s => el('option', { value: s }, s || 'any status')));
  sel.value = f.status || '';
  const wf = el('input', { id: 'f-workflow', placeholder: 'workflow',
    value: f.workflow || '' });
  const q = el('input', { id: 'f-q', placeholder: 'search', type: 'search',
    value: f.q || '' });
  const go = () => {
    const nf = { status: sel.value, workflow: wf.value, q: q.value };
    sessionStorage.setItem('weft.filters', JSON.stringify(nf));
    listen(nf);
  };
  sel.addEventListener('change', go);
  wf.addEventListener('change', go);
  q.addEventListener('input', go);
  $main.replaceChildren(el('div', { class: 'filters' }, sel, wf, q), box);
  function listen(nf) {
    const es = new EventSource('/api/live?' + runsQuery(nf));
    es.addEventListener('runs', m => {
      box.replaceChildren(runsTable(JSON.parse(m.data)));
    });
    setStream(es);
  }
  listen(f);
}

/* ---------- One run: events into spans ---------- */

function newModel(run) {
  return { run, events: [], spans: new Map(), roots: [], errors: [],
           last: 0, byTask: new Map(),
           /* the sandbox report in force by worker/server, by worker */
           sandbox: new Map(), workerSandbox: new Map(),
           minted: [], refused: [], envelopes: [], budgetEvents: [],
           approvals: [] };
}

/* The sandbox report a tool result or list carries (docs/security.md). */
function sandboxOf(res) {
  return res && res._meta && res._meta['weft/sandbox'] || null;
}

function spanOf(m, ev) {
  return m.spans.get(ev.span) || null;
}

/* Fold one event into the model of the run. */
function addEvent(m, ev) {
  m.events.push(ev);
  m.last = ev.seq;
  const p = ev.payload || {};
  if (ev.kind === 'node.start') {
    const sp = { id: ev.span, parent: ev.parent_span, path: ev.path,
      name: p.name + (p.iteration > 0 ? ' #' + p.iteration : ''),
      kind: p.kind, status: 'running', start: ev.time, end: 0,
      kids: [], items: [], tokens: 0, cost: 0, open: true, seq: ev.seq };
    m.spans.set(ev.span, sp);
    const up = m.spans.get(ev.parent_span);
    (up ? up.kids : m.roots).push(sp);
    return;
  }
  const sp = spanOf(m, ev);
  if (ev.kind === 'worker.sandbox')
    m.workerSandbox.set(p.worker, { report: p.sandbox, seq: ev.seq });
  else if (ev.kind === 'token.mint') m.minted.push(ev);
  else if (ev.kind === 'token.reject') {
    m.refused.push(ev);
    const c = m.byTask.get(p.task);
    if (c && c.kind === 'tool') c.refused = ev;
  } else if (ev.kind === 'budget.envelope') m.envelopes.push(ev);
  else if (/^budget\.(reserve|settle|exceeded)$/.test(ev.kind))
    m.budgetEvents.push(ev);
  else if (/^approval\./.test(ev.kind)) m.approvals.push(ev);
  if (ev.kind === 'tool.list') m.byTask.set(p.task, { kind: 'list',
    call: ev });
  else if (ev.kind === 'tool.list.result') {
    const c = m.byTask.get(p.task);
    const rep = sandboxOf(p.result);
    if (c && rep) m.sandbox.set(p.worker + '/' + c.call.payload.server,
      { report: rep, seq: ev.seq });
  }
  if (ev.kind === 'node.end' && sp) {
    sp.status = p.status || '?';
    sp.end = ev.time;
    sp.stop = p.stop;
    sp.error = p.error;
  } else if (sp) {
    if (ev.kind === 'tool.call') {
      const c = { kind: 'tool', call: ev, result: null, retries: [] };
      m.byTask.set(p.task, c);
      sp.items.push(c);
    } else if (/^tool\.(result|error)$/.test(ev.kind) ||
               ev.kind === 'task.retry' || ev.kind === 'tool.progress') {
      const c = m.byTask.get(p.task);
      if (c && ev.kind === 'task.retry') c.retries.push(ev);
      else if (c && ev.kind === 'tool.progress')
        (c.progress = c.progress || []).push(ev);
      else if (c) {
        c.result = ev;
        /* The report comes with the first call after a server starts;
           later calls on that worker run under the same one. */
        const key = p.worker + '/' + (c.call.payload || {}).server;
        const rep = sandboxOf(p.result);
        if (rep) m.sandbox.set(key, { report: rep, seq: ev.seq });
        c.sandbox = m.sandbox.get(key) || null;
        c.workerSandbox = m.workerSandbox.get(p.worker) || null;
      } else sp.items.push({ kind: 'event', ev });
    } else if (ev.kind === 'model.call') {
      sp.tokens += ev.tokens;
      sp.cost += ev.cost;
      sp.items.push({ kind: 'model', ev });
    } else if (ev.kind === 'model.request') {
      /* A turn on a real provider: its request, each retry, fallback
         and open circuit, then its answer or its error. */
      sp.turn = { kind: 'turn', req: ev, attempts: [], end: null };
      sp.items.push(sp.turn);
    } else if (sp.turn && /^model\.(retry|fallback|circuit_open)$/.test(
      ev.kind)) {
      sp.turn.attempts.push(ev);
    } else if (ev.kind === 'model.response' || ev.kind === 'model.error') {
      sp.tokens += ev.tokens;
      sp.cost += ev.cost;
      if (sp.turn) { sp.turn.end = ev; sp.turn = null; }
      else sp.items.push({ kind: 'turn', req: null, attempts: [], end: ev });
    } else if (ev.kind !== 'tool.list' && ev.kind !== 'tool.list.result') {
      sp.items.push({ kind: 'event', ev });
    }
  }
  if (/error|reject|exceeded/.test(ev.kind) ||
      (ev.kind === 'node.end' && p.status === 'failed'))
    m.errors.push(ev);
}

/* The figures of a span and its descendants. */
function total(sp) {
  let t = sp.tokens, c = sp.cost;
  for (const k of sp.kids) { const s = total(k); t += s[0]; c += s[1]; }
  return [t, c];
}

/* Fetch a run's events in pages into m; onPage(m, done) after each. */
async function loadRun(id, m0, onPage) {
  const m = m0 || newModel(null);
  let after = m.last;
  for (let n = 0; ; n++) {
    const r = await api(`/api/events?id=${encodeURIComponent(id)}` +
      `&after=${after}&limit=${n ? 20000 : 2000}`);
    for (const ev of r.events) addEvent(m, ev);
    if (onPage) onPage(m, r.next_after === undefined);
    if (r.next_after === undefined) break;
    after = r.next_after;
  }
  return m;
}

/* ---------- One run: rendering ---------- */

function summary(run) {
  const kv = [['status', status(run.status)], ['workflow', run.workflow],
    ['started', fmtTime(run.started)],
    ['duration', fmtDur((run.ended || Date.now() / 1000) - run.started)],
    ['steps', run.steps], ['tokens', run.tokens],
    ['cost', fmtUsd(run.cost_usd)]];
  if (run.budget) kv.push(['budget', brief(run.budget, 120)]);
  if (run.spend) kv.push(['spent', brief(run.spend, 120)]);
  return el('div', { class: 'summary', id: 'summary' },
    kv.map(([k, v]) => el('div', {}, el('b', {}, k), v)));
}

function messageView(msg) {
  if (typeof msg === 'string' && /^[0-9a-f]{64}$/.test(msg)) {
    const box = el('div', {}, el('span', { class: 'muted' }, 'loading…'));
    api('/api/blob?hash=' + msg).then(b => box.replaceChildren(
      messageView(b.value))).catch(e => box.replaceChildren(e.message));
    return box;
  }
  if (msg && typeof msg === 'object' && msg.role !== undefined)
    return el('div', { class: 'msg' }, el('b', {}, msg.role + ': '),
      el('pre', {}, pretty(msg.content !== undefined ? msg.content : msg)));
  return el('pre', {}, pretty(msg));
}

function modelCard(ev) {
  const p = ev.payload || {};
  const resp = p.response || {};
  const msgs = p.messages || (p.request && p.request.messages) || [];
  const head = `model ${p.provider || '?'}:${p.model || '?'} → ` +
    `${resp.stop_reason || p.stop_reason || '?'} · ${ev.tokens} tokens · ` +
    `${fmtUsd(ev.cost)}` + (p.duration ? ' · ' + fmtDur(p.duration) : '') +
    (p.attempts > 1 ? ` · ${p.attempts} attempts` : '');
  const text = resp.text !== undefined ? resp.text : resp.content;
  return el('details', { class: 'card model', 'data-seq': ev.seq },
    el('summary', {}, head),
    el('h4', {}, 'messages in'), msgs.map(messageView),
    el('h4', {}, 'answer'),
    text !== undefined ? el('pre', { class: 'answer' }, pretty(text)) : null,
    resp.tool_calls ? el('div', {}, el('h4', {}, 'tool calls asked'),
      el('pre', {}, pretty(resp.tool_calls))) : null,
    el('details', {}, el('summary', {}, 'recorded event #' + ev.seq),
      el('pre', {}, pretty(p))));
}

/* One attempt, fallback or open circuit of a model turn, as a line. */
function attemptLine(ev) {
  const p = ev.payload || {};
  if (ev.kind === 'model.fallback')
    return el('div', { class: 'attempt fallback' }, el('b', {}, 'fallback '),
      `${p.from} → ${p.to} (${p.kind}: ${p.reason || ''})`);
  if (ev.kind === 'model.circuit_open')
    return el('div', { class: 'attempt err' }, el('b', {}, 'circuit open '),
      `${p.provider} after ${p.failures} failures, for ${p.open_s} s`);
  return el('div', { class: 'attempt err' },
    el('b', {}, `attempt ${p.attempt} `), `${p.provider}:${p.model} ` +
    `failed: ${p.kind}${p.status ? ' ' + p.status : ''} ${p.message || ''}` +
    (p.delay_ms !== undefined ? ` · retried after ${p.delay_ms} ms` +
      (p.retry_after ? ' (Retry-After)' : '') : ''));
}

/* A model turn on a real provider: request, attempts, answer or error. */
function turnCard(t) {
  const q = t.req ? t.req.payload || {} : {};
  const e = t.end ? t.end.payload || {} : null;
  const failed = t.end && t.end.kind === 'model.error';
  const resp = e && e.response || {};
  const text = resp.text !== undefined ? resp.text : resp.content;
  const tokens = t.end ? t.end.tokens : 0;
  const head = !t.end ? `model ${(q.chain || []).join(' → ')} · in flight` :
    failed ? `model failed: ${e.kind} after ${e.attempts} attempts` :
    `model ${e.provider}:${e.model} → ${resp.stop_reason || '?'} · ` +
    `${tokens} tokens · ${fmtUsd(t.end.cost)}` +
    (e.duration ? ' · ' + fmtDur(e.duration) : '') +
    ` · ${e.attempts || 1} attempt${e.attempts > 1 ? 's' : ''}` +
    (t.attempts.some(a => a.kind === 'model.fallback') ? ' · fallback' : '');
  return el('details', { class: 'card model turn' + (failed ? ' err' : ''),
    'data-seq': (t.req || t.end).seq },
    el('summary', {}, head),
    q.chain ? el('div', { class: 'muted' }, 'chain: ' +
      q.chain.join(', ')) : null,
    el('h4', {}, 'provider attempts'),
    el('div', { class: 'attempts' }, t.attempts.map(attemptLine),
      t.end ? (failed ? el('div', { class: 'attempt err' },
        el('b', {}, 'gave up '), `${e.kind}: ${e.message || ''}`) :
        el('div', { class: 'attempt ok' }, el('b', {}, 'answered '),
          `by ${e.provider}:${e.model}`)) : el('div', { class: 'muted' },
          'waiting for the answer')),
    el('h4', {}, 'messages in'), (q.messages || []).map(messageView),
    failed ? null : el('h4', {}, 'answer'),
    text !== undefined ? el('pre', { class: 'answer' }, pretty(text)) : null,
    resp.tool_calls ? el('div', {}, el('h4', {}, 'tool calls asked'),
      el('pre', {}, pretty(resp.tool_calls))) : null,
    el('details', {}, el('summary', {}, 'recorded events'),
      [t.req, ...t.attempts, t.end].filter(Boolean).map(ev =>
        el('pre', {}, `#${ev.seq} ${ev.kind} ` + pretty(ev.payload)))));
}

/* A sandbox report: the layers in force and those missing. */
function sandboxView(rep, where) {
  const r = rep.report || {};
  const missing = Object.entries(r.missing || {});
  return el('div', { class: 'sandbox' + (missing.length ? ' err' : '') },
    el('div', {}, el('b', {}, 'in force '), (r.enforced || []).join(', ') ||
      'none'),
    el('div', {}, el('b', {}, 'missing '), missing.length ? missing.map(
      ([k, v]) => `${k} (${v})`).join(', ') : 'none'),
    r.network !== undefined ? el('div', {}, el('b', {}, 'network '),
      r.network ? 'allowed' : 'denied') : null,
    r.limits ? el('div', {}, el('b', {}, 'limits '), Object.entries(
      r.limits).map(([k, v]) => `${k} ${v}`).join(', ')) : null,
    el('div', { class: 'muted' }, `${where}, event #${rep.seq}`));
}

function resultText(res) {
  if (res && Array.isArray(res.content))
    return res.content.map(b => b.text !== undefined ? b.text :
      JSON.stringify(b)).join('\n');
  return pretty(res);
}

function toolCard(c) {
  const p = c.call.payload || {};
  const r = c.result ? c.result.payload || {} : null;
  const failed = c.result && c.result.kind === 'tool.error';
  return el('details', { class: 'card tool' + (failed ? ' err' : ''),
    'data-seq': c.call.seq },
    el('summary', {}, `tool ${p.server ? p.server + '.' : ''}${p.name} ` +
      (r ? `· ${fmtDur(r.duration)} · worker ${r.worker} · attempt ` +
        `${r.attempt || c.call.attempt}` : '· in flight') +
      (c.retries.length ? ` · ${c.retries.length} retries` : '') +
      (failed ? ' · error' : '')),
    el('h4', {}, 'arguments'), el('pre', {}, pretty(p.arguments)),
    c.progress ? el('div', {}, el('h4', {}, 'progress'), c.progress.map(
      e => el('div', {}, brief(e.payload, 200)))) : null,
    c.refused ? el('div', { class: 'card err refused' },
      el('b', {}, 'token refused '), `${c.refused.payload.reason}: ` +
      `${c.refused.payload.message || ''} (by ${c.refused.payload.by})`) :
      null,
    el('h4', {}, failed ? 'error' : 'result'),
    r ? el('pre', { class: 'result' }, failed ? pretty(r.error) :
      resultText(r.result)) : el('span', { class: 'muted' }, 'waiting'),
    c.sandbox || c.workerSandbox ? el('h4', {}, 'sandbox') : null,
    c.sandbox ? sandboxView(c.sandbox, `server ${p.server} on worker ` +
      `${r.worker}, reported when it started`) : null,
    c.workerSandbox ? sandboxView(c.workerSandbox, `worker ${r.worker} ` +
      'itself') : null);
}

function eventCard(ev) {
  const bad = /error|reject|exceeded/.test(ev.kind);
  return el('div', { class: 'card' + (bad ? ' err' : ''),
    'data-seq': ev.seq }, el('b', {}, ev.kind + ' '),
    el('span', { class: 'muted' }, '#' + ev.seq + ' '),
    brief(ev.payload, 300));
}

function spanDetail(sp) {
  const [tok, cost] = total(sp);
  return el('div', { class: 'detail', id: 'detail' },
    el('h3', {}, sp.path), el('div', { class: 'kv' },
      el('span', { class: 'k' }, 'kind'), sp.kind,
      el('span', { class: 'k' }, 'status'), status(sp.status),
      el('span', { class: 'k' }, 'duration'),
      fmtDur((sp.end || Date.now() / 1000) - sp.start),
      el('span', { class: 'k' }, 'tokens'), `${tok} (own ${sp.tokens})`,
      el('span', { class: 'k' }, 'cost'), fmtUsd(cost),
      sp.stop ? [el('span', { class: 'k' }, 'stop'), sp.stop] : null,
      sp.error ? [el('span', { class: 'k' }, 'error'),
        el('span', { class: 'st-failed' }, sp.error)] : null),
    sp.items.map(it => it.kind === 'model' ? modelCard(it.ev) :
      it.kind === 'turn' ? turnCard(it) :
      it.kind === 'tool' ? toolCard(it) : eventCard(it.ev)));
}

/* A section that stays open or closed as the reader left it. */
const sectionOpen = new Map();
function section(name, title, open, ...kids) {
  const d = el('details', { class: 'section', id: name,
    open: sectionOpen.has(name) ? sectionOpen.get(name) : open },
    el('summary', {}, title), ...kids);
  d.addEventListener('toggle', () => sectionOpen.set(name, d.open));
  return d;
}

function within(path, env) {
  return env === '' || path === env || path.startsWith(env + '/');
}
function num(v, dim) {
  if (typeof v !== 'number') return '';
  return dim === 'usd' ? '$' + v.toFixed(4) : String(+v.toFixed(6));
}

/* Budgets: each envelope's limits, spent and reserved (in flight). */
function budgetsPanel(m) {
  const pending = [], spent = [], exceeded = [];
  for (const ev of m.budgetEvents) {
    if (ev.kind === 'budget.reserve') pending.push(ev);
    else if (ev.kind === 'budget.settle') {
      const i = pending.findIndex(r => r.path === ev.path);
      if (i >= 0) pending.splice(i, 1);
      spent.push(ev);
    } else exceeded.push(ev);
  }
  const envs = m.envelopes.map(ev => ({ path: ev.path,
    limits: (ev.payload || {}).limits || {}, seq: ev.seq }));
  if (m.run.budget && !envs.some(e => e.path === ''))
    envs.unshift({ path: '', limits: m.run.budget, seq: 0 });
  if (!envs.length) return null;
  const sum = (list, env, dim) => list.filter(ev => within(ev.path, env))
    .reduce((a, ev) => a + (+(ev.payload || {})[dim] || 0), 0);
  const rows = [];
  for (const env of envs)
    for (const [dim, limit] of Object.entries(env.limits)) {
      const sp = env.path === '' && m.run.spend && m.run.spend[dim] !==
        undefined && !m.budgetEvents.length ? m.run.spend[dim] :
        sum(spent, env.path, dim);
      const rs = sum(pending, env.path, dim);
      const over = exceeded.find(ev => (ev.payload || {}).dimension === dim &&
        within((ev.payload || {}).node || ev.path, env.path));
      rows.push(el('tr', { class: over ? 'err' : null, 'data-env':
        env.path || '(run)', 'data-dim': dim },
        el('td', {}, env.path || '(run)'), el('td', {}, dim),
        el('td', { class: 'num' }, num(limit, dim)),
        el('td', { class: 'num spent' }, num(sp, dim)),
        el('td', { class: 'num reserved' }, num(rs, dim)),
        el('td', { class: 'num' }, num(limit - sp - rs, dim)),
        el('td', {}, el('span', { class: 'gauge' }, el('span', {
          class: 'fill' + (over ? ' over' : ''), 'data-pct': Math.min(100,
            Math.round((sp + rs) / (limit || 1) * 100)) })),
          over ? ' exceeded' : '')));
    }
  const t = el('table', { id: 'budgets' }, el('thead', {}, el('tr', {},
    ['envelope', 'dimension', 'limit', 'spent', 'reserved', 'left', '']
      .map(h => el('th', {}, h)))), el('tbody', {}, rows));
  for (const f of t.querySelectorAll('.fill'))
    f.style.width = f.dataset.pct + '%';
  return section('budget-panel', `budgets (${envs.length} envelope` +
    `${envs.length > 1 ? 's' : ''})`, true, t,
    el('div', { class: 'muted' }, 'reserved: held by calls in flight; ' +
      'a settled call counts as spent'));
}

/* Capability tokens minted for nodes, and the calls they refused. */
function tokensPanel(m) {
  if (!m.minted.length && !m.refused.length) return null;
  return section('tokens-panel', `capability tokens: ${m.minted.length} ` +
    `minted, ${m.refused.length} refused`, m.refused.length > 0,
    m.refused.length ? el('table', { id: 'refused' }, el('thead', {},
      el('tr', {}, ['#', 'node', 'task', 'by', 'reason', 'message'].map(
        h => el('th', {}, h)))), el('tbody', {}, m.refused.map(ev => {
        const p = ev.payload || {};
        return el('tr', { class: 'err' }, el('td', {}, ev.seq),
          el('td', {}, ev.path), el('td', {}, p.task), el('td', {}, p.by),
          el('td', {}, p.reason), el('td', {}, brief(p.message, 160)));
      }))) : null,
    el('table', { id: 'minted' }, el('thead', {}, el('tr', {}, ['#', 'node',
      'grant', 'tools', 'max calls', 'expires', 'parent'].map(h =>
      el('th', {}, h)))), el('tbody', {}, m.minted.map(ev => {
      const p = ev.payload || {};
      return el('tr', {}, el('td', {}, ev.seq), el('td', {}, p.node),
        el('td', {}, p.grant), el('td', {}, (p.tools || []).join(' ')),
        el('td', {}, p.max_calls), el('td', {}, fmtTime(p.exp / 1000)),
        el('td', {}, p.parent ? p.parent.slice(0, 8) : ''));
    }))));
}

/* The approvals a run asked for, and how to answer one that waits. */
function approvalsPanel(run, list) {
  if (!list || !list.length) return null;
  const waiting = list.filter(a => a.status === 'waiting').length;
  return section('approvals', `approvals: ${list.length}` +
    (waiting ? `, ${waiting} waiting` : ''), true, list.map(a =>
    el('div', { class: 'card approval' + (a.status === 'waiting' ?
      ' waiting' : ''), 'data-path': a.path },
      el('div', {}, el('b', {}, a.path + ' '), status(a.status),
        a.deadline ? el('span', { class: 'muted' }, ' · deadline ' +
          fmtTime(a.deadline) + ' (then ' + a.on_timeout + ')') : null),
      el('pre', { class: 'prompt' }, a.prompt),
      a.schema ? el('details', {}, el('summary', {}, 'answer schema'),
        el('pre', {}, pretty(a.schema))) : null,
      a.answer ? el('div', {}, el('b', {}, 'answer '),
        el('pre', {}, pretty(a.answer)), el('span', { class: 'muted' },
          fmtTime(a.answered))) : null,
      a.status === 'waiting' ? el('div', { class: 'howto' },
        'The viewer is read-only. Answer from a terminal:',
        el('pre', {}, `weft approve ${run.id} --node ${a.path}` +
          (a.schema ? ` --answer '{...}'` : '') + '\n' +
          `weft reject ${run.id} --node ${a.path} --reason TEXT`),
        'A run of weft run that stopped then goes on with ',
        el('code', {}, `weft resume ${run.id}`),
        '; a run of weft serve goes on by itself.') : null)));
}

/* weft eval's scores of the run against the golden file of weft view. */
function evalPanel(r) {
  if (r.golden === null)
    return el('p', { class: 'muted', id: 'eval' }, 'weft eval: no golden ' +
      'file (start weft view with --golden FILE to score runs, ' +
      'docs/eval.md)');
  if (r.error)
    return section('eval', 'weft eval: could not score', true,
      el('pre', { class: 'st-failed' }, r.error));
  const e = r.eval, row = e.runs[0];
  const calls = (label, list) => list.length ? el('div', {},
    el('b', {}, label), list.map(c => el('div', { class: 'call' },
      `#${c.index + 1} ${c.tool} ${c.args ? JSON.stringify(c.args) : ''}` +
      (c.path ? ` (${c.path})` : '')))) : null;
  return section('eval', `weft eval: F1 ${row.f1.toFixed(3)}, ` +
    `${row.matched}/${row.expected} golden calls matched` +
    (row.pass ? '' : ', FAIL'), true, el('div', { class: 'kv' },
    el('span', { class: 'k' }, 'golden'), `${e.golden.file} ` +
      `(${e.golden.calls} calls, match ${e.golden.match}, ` +
      `args ${e.golden.args})`,
    el('span', { class: 'k' }, 'matched'), `${row.matched}/${row.expected}` +
      ` of the run's ${row.calls} calls`,
    el('span', { class: 'k' }, 'precision'), row.precision.toFixed(3),
    el('span', { class: 'k' }, 'recall'), row.recall.toFixed(3),
    el('span', { class: 'k' }, 'F1'), el('span', { id: 'eval-f1' },
      row.f1.toFixed(3)),
    el('span', { class: 'k' }, 'checks'), el('span', { class: row.pass ?
      'st-succeeded' : 'st-failed' }, row.pass ? 'pass' : 'FAIL' +
      (row.check ? ': ' + row.check : ''))),
    calls('missing (golden calls no call matched)', row.missing),
    calls('extra (calls the golden file does not have)', row.extra));
}

/* Other runs to compare this one with (weft diff), same workflow first. */
function comparePanel(run) {
  const sel = el('select', { id: 'compare-with' },
    el('option', { value: '' }, 'compare with…'));
  sel.addEventListener('change', () => {
    if (sel.value) location.hash = `#/diff/${run.id}/${sel.value}`;
  });
  api('/api/runs?limit=200&workflow=' + encodeURIComponent(run.workflow))
    .then(r => {
      for (const o of r.runs.filter(o => o.id !== run.id))
        sel.append(el('option', { value: o.id }, `${o.id} ${o.status} ` +
          fmtTime(o.started)));
    }).catch(() => {});
  return el('span', { class: 'compare' }, sel);
}

function showRun(id) {
  const my = ++page;
  crumbs(['runs', '#/'], [id, '#/run/' + id], ['replay', '#/replay/' + id]);
  document.title = 'weft: run ' + id;
  let m = null, selected = null;
  const closed = new Set();
  const head = el('div', {});
  const errs = el('div', {});
  const panels = el('div', { class: 'panels' });
  let approvals = null, evalAnswer = null, compare = null;
  const tree = el('div', { class: 'tree', id: 'tree' });
  const treeInner = el('div', { class: 'tree-inner' });
  tree.append(treeInner);
  const detail = el('div', {}, el('p', { class: 'muted' },
    'Select a node to see its model turns and tool calls.'));
  $main.replaceChildren(head, errs, panels,
    el('div', { class: 'split' }, tree, detail));
  /* What comes from elsewhere than the events: asked once the run is in
     (approvals again when the run ends). */
  function drawPanels() {
    panels.replaceChildren(...[approvalsPanel(m.run, approvals),
      evalAnswer ? evalPanel(evalAnswer) : null, budgetsPanel(m),
      tokensPanel(m)].filter(Boolean));
  }
  function ask() {
    if (m.approvals.length || m.run.status === 'waiting')
      api('/api/approvals?id=' + encodeURIComponent(m.run.id)).then(r => {
        approvals = r.approvals;
        if (my === page) drawPanels();
      }).catch(() => {});
    api('/api/eval?id=' + encodeURIComponent(m.run.id)).then(r => {
      evalAnswer = r;
      if (my === page) drawPanels();
    }).catch(e => {
      evalAnswer = { error: e.message };
      if (my === page) drawPanels();
    });
  }

  function select(sp) {
    selected = sp.id;
    detail.replaceChildren(spanDetail(sp));
    for (const r of tree.querySelectorAll('.row'))
      r.classList.toggle('sel', r.dataset.span === String(sp.id));
  }
  let flat = [], span0 = [0, 1];
  function treeRow(sp, depth) {
    const [t0, t1] = span0;
    const left = (sp.start - t0) / (t1 - t0) * 100;
    const w = ((sp.end || t1) - sp.start) / (t1 - t0) * 100;
    const row = el('div', { class: 'row' + (sp.id === selected ?
      ' sel' : ''), 'data-span': sp.id, 'data-path': sp.path,
      onclick: () => select(sp) },
      el('span', { class: 'name' },
        el('span', { class: 'tog', onclick: e => {
          e.stopPropagation();
          if (closed.has(sp.id)) closed.delete(sp.id);
          else closed.add(sp.id);
          render();
        } }, sp.kids.length ? (closed.has(sp.id) ? '▸' : '▾') : ''),
        '\u00a0'.repeat(depth * 2) + sp.name + ' ',
        el('span', { class: 'muted' }, sp.kind)),
      el('span', { class: 'bars', title: `${sp.status} ` +
        fmtDur((sp.end || t1) - sp.start) },
        el('span', { class: 'bar st-' + sp.status })));
    const bar = row.querySelector('.bar');
    bar.style.left = left + '%';
    bar.style.width = Math.max(w, 0.2) + '%';
    return row;
  }
  function drawTree() {
    const H = 24, top = tree.scrollTop, h = tree.clientHeight || 600;
    const a = Math.max(0, Math.floor(top / H) - 20);
    const b = Math.min(flat.length, Math.ceil((top + h) / H) + 20);
    treeInner.style.height = flat.length * H + 'px';
    const rows = [];
    for (let i = a; i < b; i++) {
      const r = treeRow(flat[i][0], flat[i][1]);
      r.style.top = i * H + 'px';
      rows.push(r);
    }
    treeInner.replaceChildren(...rows);
  }
  tree.addEventListener('scroll', drawTree);
  function render() {
    /* Nodes still open when the run ended ended with it, in its status. */
    if (m.run.ended > 0)
      for (const sp of m.spans.values())
        if (sp.status === 'running') {
          sp.status = m.run.status;
          sp.end = m.run.ended;
        }
    head.replaceChildren(el('h2', {}, 'run ' + m.run.id, ' ',
      el('a', { href: '#/replay/' + m.run.id, class: 'small' }, 'replay'),
      ' ', compare = compare || comparePanel(m.run)), summary(m.run),
      el('p', { class: 'st-failed', id: 'run-error' }, m.run.error || ''));
    drawPanels();
    errs.replaceChildren(m.errors.length ? el('div', { class: 'errors',
      id: 'errors' }, el('b', {}, 'errors'), m.errors.map(ev =>
      el('div', {}, el('a', { onclick: () => {
        const sp = m.spans.get(ev.span);
        if (sp) select(sp);
      } }, ev.path || '(run)'), ': ' + ev.kind + ' ' +
        brief((ev.payload || {}).error || (ev.payload || {}).message ||
          ev.payload, 200)))) : '');
    const t0 = m.run.started;
    const t1 = Math.max(m.run.ended || 0, ...[...m.spans.values()].map(
      s => s.end || Date.now() / 1000), t0 + 0.001);
    /* The visible rows as a flat list; only those in view become DOM
       (a run of thousands of nodes scrolls as a short one). */
    flat = [];
    const walk = (list, depth) => {
      for (const sp of list) {
        flat.push([sp, depth]);
        if (!closed.has(sp.id)) walk(sp.kids, depth + 1);
      }
    };
    walk(m.roots, 0);
    span0 = [t0, t1];
    drawTree();
    if (selected !== null && m.spans.has(selected) &&
        !detail.querySelector('details[open]'))
      detail.replaceChildren(spanDetail(m.spans.get(selected)));
  }
  api('/api/run?id=' + encodeURIComponent(id)).then(async r => {
    m = newModel(r.run);
    /* The first page at once, then the whole run once it is in. */
    let first = true;
    await loadRun(r.run.id, m, (mm, done) => {
      if (my === page && (first || done)) render();
      first = false;
    });
    if (my !== page) return;
    ask();
    if (r.run.status === 'running') follow();
    else setStream(null);
  }).catch(e => $main.replaceChildren(el('p', { class: 'st-failed' },
    e.message)));

  function follow() {
    const es = new EventSource(`/api/live?id=${encodeURIComponent(
      m.run.id)}&after=${m.last}`);
    let pending = false;
    es.addEventListener('event', msg => {
      addEvent(m, JSON.parse(msg.data));
      if (!pending) {
        pending = true;
        requestAnimationFrame(() => { pending = false; render(); });
      }
    });
    es.addEventListener('end', msg => {
      m.run = JSON.parse(msg.data);
      es.close();
      setStream(null);
      render();
      ask();
    });
    setStream(es);
  }
}

/* ---------- Replay ---------- */

const ROW = 22;

function showReplay(id) {
  const my = ++page;
  setStream(null);
  crumbs(['runs', '#/'], [id, '#/run/' + id], ['replay', '#/replay/' + id]);
  document.title = 'weft: replay ' + id;
  const range = el('input', { type: 'range', id: 'scrub', min: 1, max: 1,
    value: 1 });
  const label = el('span', { id: 'step' }, '');
  const play = el('button', { id: 'play' }, 'play');
  const prev = el('button', { id: 'prev' }, '◀');
  const next = el('button', { id: 'next' }, '▶');
  const evbox = el('div', { class: 'events', id: 'events' });
  const inner = el('div', {});
  evbox.append(inner);
  const cur = el('div', { class: 'detail', id: 'current' });
  const state = el('div', { class: 'detail' });
  const verdict = el('div', { class: 'verdict', id: 'verdict' });
  $main.replaceChildren(el('h2', {}, 'replay ' + id),
    verdict,
    el('div', { class: 'scrub' }, prev, range, next, play, label),
    el('div', { class: 'split' }, evbox, el('div', {}, cur, state)));
  let m = null, timer = null, want = 0, shown = null, div = null;

  /* weft replay's verdict (offline, run by the viewer on demand). */
  function check() {
    verdict.replaceChildren(el('span', { class: 'muted' },
      'weft replay: replaying offline…'));
    api('/api/replay?id=' + encodeURIComponent(m.run.id)).then(r => {
      if (my !== page) return;
      verdict.dataset.verdict = r.verdict;
      if (r.verdict === 'identical') {
        verdict.replaceChildren(el('b', { class: 'st-succeeded' },
          'weft replay: identical'), ` · ${r.replay.steps} recorded steps` +
          ` of ${r.replay.events} events replayed offline in ` +
          fmtDur(r.replay.seconds) + (r.replay.script_changed ?
            ' · the workflow changed since the run' : ''));
      } else if (r.verdict === 'diverged') {
        div = r;
        verdict.replaceChildren(el('b', { class: 'st-failed' },
          `weft replay: diverges at step ${r.seq}`), ' ',
          el('button', { id: 'goto-divergence', onclick: () =>
            go(r.seq, true) }, 'go to it'),
          r.replay.script_changed ? el('span', { class: 'muted' },
            ' · the workflow file changed since the run') : null,
          el('pre', {}, r.divergence));
        drawList();
        if (shown === r.seq) go(r.seq);
      } else {
        verdict.replaceChildren(el('b', { class: 'st-failed' },
          'weft replay could not run '), el('pre', {}, r.error));
      }
    }).catch(e => verdict.replaceChildren(el('span', { class: 'st-failed' },
      'weft replay: ' + e.message), ' ', el('button', { onclick: check },
      'try again')));
  }

  function drawList() {
    if (!m) return;
    const top = evbox.scrollTop, h = evbox.clientHeight || 420;
    const a = Math.max(0, Math.floor(top / ROW) - 10);
    const b = Math.min(m.events.length, Math.ceil((top + h) / ROW) + 10);
    inner.style.height = m.events.length * ROW + 'px';
    const rows = [];
    for (let i = a; i < b; i++) {
      const ev = m.events[i];
      const r = el('div', { class: 'ev' + (ev.seq === +range.value ?
        ' cur' : '') + (/error|reject|exceeded/.test(ev.kind) ? ' err' : '') +
        (div && div.seq === ev.seq ? ' div' : ''),
        'data-seq': ev.seq, onclick: () => go(ev.seq) },
        `#${ev.seq} ${ev.kind} ${ev.path} ${brief(ev.payload, 120)}`);
      r.style.top = i * ROW + 'px';
      rows.push(r);
    }
    inner.replaceChildren(...rows);
  }
  evbox.addEventListener('scroll', drawList);

  async function go(seq, scroll) {
    seq = Math.max(1, Math.min(seq, m.last));
    range.value = seq;
    label.textContent = `step ${seq} of ${m.last}`;
    want = seq;
    const r = await api(`/api/state?id=${encodeURIComponent(m.run.id)}` +
      `&seq=${seq}`);
    if (want !== seq || my !== page) return;
    const ev = r.event || {};
    cur.replaceChildren(el('h3', {}, `#${ev.seq} ${ev.kind}`),
      div && div.seq === ev.seq ? el('div', { class: 'errors',
        id: 'divergence-here' }, el('b', {}, 'weft replay diverges here'),
        el('pre', {}, div.divergence)) : null,
      el('div', { class: 'muted' }, ev.path || '(run)'),
      el('pre', {}, pretty(ev.payload)));
    const changed = new Set(r.writes.filter(w => w.seq === seq).map(
      w => w.key));
    const keys = Object.keys(r.state).sort();
    state.replaceChildren(el('h3', {}, `state after step ${seq}`),
      el('table', { id: 'state', 'data-seq': seq }, keys.map(k =>
        el('tr', { 'data-key': k, class: changed.has(k) ? 'changed' :
          null }, el('td', {}, k),
          el('td', {}, el('pre', {}, pretty(r.state[k])))))));
    shown = seq;
    const i = m.events.findIndex(e => e.seq === seq);
    if (scroll && i >= 0 && (i * ROW < evbox.scrollTop ||
        i * ROW > evbox.scrollTop + evbox.clientHeight - ROW))
      evbox.scrollTop = i * ROW - 100;
    drawList();
  }
  range.addEventListener('input', () => go(+range.value, true));
  prev.addEventListener('click', () => go(+range.value - 1, true));
  next.addEventListener('click', () => go(+range.value + 1, true));
  play.addEventListener('click', () => {
    if (timer) {
      clearInterval(timer);
      timer = null;
      play.textContent = 'play';
      return;
    }
    play.textContent = 'pause';
    timer = setInterval(() => {
      if (my !== page || +range.value >= m.last) {
        clearInterval(timer);
        timer = null;
        play.textContent = 'play';
        return;
      }
      if (shown === +range.value) go(+range.value + 1, true);
    }, 400);
  });
  api('/api/run?id=' + encodeURIComponent(id)).then(async r => {
    /* Shown from the first page on; the rest comes in behind. */
    const h = location.hash.match(/[?&]seq=(\d+)/);
    let started = false;
    m = newModel(r.run);
    /* A running run is checked on demand (each event would change the
       answer); a finished one once its events are in. */
    verdict.replaceChildren(r.run.status === 'running' ? el('button',
      { id: 'check', onclick: check }, 'check with weft replay') :
      el('span', { class: 'muted' }, 'weft replay: waiting for the events'));
    await loadRun(r.run.id, m, (mm, done) => {
      if (my === page && done && r.run.status !== 'running') check();
      if (my !== page) return;
      range.max = m.last;
      label.textContent = `step ${range.value} of ${m.last}` +
        (done ? '' : ' (loading)');
      if (!started && (done || !h || +h[1] <= m.last)) {
        started = true;
        go(h ? +h[1] : 1, true);
      } else drawList();
    });
  }).catch(e => $main.replaceChildren(el('p', { class: 'st-failed' },
    e.message)));
}

/* ---------- Two runs side by side (weft diff) ---------- */

function stepLabel(st) {
  if (!st) return '';
  const leaf = st.path.split('/').pop();
  const depth = st.kind === 'run' ? 0 : st.path.split('/').length - 1 +
    (st.kind === 'node' || st.kind === 'end' ? 0 : 1);
  const t = st.kind === 'node' ? `${leaf} ${st.name}` :
    st.kind === 'end' ? `end ${leaf}: ${st.detail}` :
    st.kind === 'run' ? `run: ${st.detail}` :
    st.kind === 'tool' ? `tool ${st.name} ${JSON.stringify(st.args || {})}` +
      ` → ${st.detail}` : `${st.kind} ${st.name} → ${st.detail || ''}`;
  return '\u00a0'.repeat(depth * 2) + t;
}

function showDiff(a, b) {
  const my = ++page;
  setStream(null);
  crumbs(['runs', '#/'], [a, '#/run/' + a], ['diff', `#/diff/${a}/${b}`],
    [b, '#/run/' + b]);
  document.title = `weft: diff ${a} ${b}`;
  const box = el('div', { class: 'diff', id: 'diff' });
  const inner = el('div', {});
  box.append(inner);
  const head = el('div', {}, el('p', { class: 'muted' }, 'Aligning…'));
  $main.replaceChildren(el('h2', {}, 'diff'), head, box);
  let d = null;
  const H = 22;
  const ops = { same: ' ', changed: '|', only_a: '<', only_b: '>' };
  function cell(run, st) {
    return el('span', { class: 'side' }, st ? el('a', { href:
      `#/replay/${run}?seq=${st.seq}`, title: '#' + st.seq },
      stepLabel(st)) : '');
  }
  function draw() {
    if (!d) return;
    const top = box.scrollTop, h = box.clientHeight || 500;
    const i0 = Math.max(0, Math.floor(top / H) - 10);
    const i1 = Math.min(d.rows.length, Math.ceil((top + h) / H) + 10);
    inner.style.height = d.rows.length * H + 'px';
    const rows = [];
    for (let i = i0; i < i1; i++) {
      const r = d.rows[i];
      const row = el('div', { class: 'drow ' + r.op + (i + 1 ===
        d.first_divergence ? ' first' : ''), 'data-row': i + 1,
        'data-op': r.op },
        el('span', { class: 'n' }, (i + 1 === d.first_divergence ? '⇒' :
          '') + (i + 1)), cell(d.a.run, r.a),
        el('span', { class: 'op' }, ops[r.op]), cell(d.b.run, r.b));
      row.style.top = i * H + 'px';
      rows.push(row);
    }
    inner.replaceChildren(...rows);
  }
  box.addEventListener('scroll', draw);
  api(`/api/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`)
    .then(r => {
      if (my !== page) return;
      d = r;
      const c = r.counts;
      head.replaceChildren(el('div', { class: 'summary', id: 'diff-summary' },
        el('div', {}, el('b', {}, 'a'), el('a', { href: '#/run/' + r.a.run },
          r.a.run), ' ', status(r.a.status)),
        el('div', {}, el('b', {}, 'b'), el('a', { href: '#/run/' + r.b.run },
          r.b.run), ' ', status(r.b.status)),
        el('div', {}, el('b', {}, 'verdict'), r.identical ? 'identical' :
          el('a', { id: 'goto-first', onclick: () => {
            box.scrollTop = (r.first_divergence - 1) * H - 60; } },
            `first divergence at row ${r.first_divergence}`)),
        el('div', {}, el('b', {}, 'rows'), `${c.same} same, ${c.changed} ` +
          `changed, ${c.only_a} only in a, ${c.only_b} only in b`)));
      draw();
      if (!r.identical) {
        box.scrollTop = Math.max(0, (r.first_divergence - 1) * H - 60);
        draw();
      }
    }).catch(e => head.replaceChildren(el('p', { class: 'st-failed' },
      e.message)));
}

/* ---------- Routing ---------- */

function route() {
  const h = location.hash;
  let mm;
  page++;
  if ((mm = h.match(/^#\/run\/([^/?]+)/))) showRun(decodeURIComponent(mm[1]));
  else if ((mm = h.match(/^#\/replay\/([^/?]+)/)))
    showReplay(decodeURIComponent(mm[1]));
  else if ((mm = h.match(/^#\/diff\/([^/?]+)\/([^/?]+)/)))
    showDiff(decodeURIComponent(mm[1]), decodeURIComponent(mm[2]));
  else showRuns();
}
window.addEventListener('hashchange', route);
route();
