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
           last: 0, byTask: new Map() };
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
      else if (c) c.result = ev;
      else sp.items.push({ kind: 'event', ev });
    } else if (ev.kind === 'model.call' || ev.kind === 'model.response') {
      sp.tokens += ev.tokens;
      sp.cost += ev.cost;
      sp.items.push({ kind: 'model', ev });
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
    el('h4', {}, failed ? 'error' : 'result'),
    r ? el('pre', { class: 'result' }, failed ? pretty(r.error) :
      resultText(r.result)) : el('span', { class: 'muted' }, 'waiting'),
    r && r.sandbox ? el('pre', {}, pretty(r.sandbox)) : null);
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
      it.kind === 'tool' ? toolCard(it) : eventCard(it.ev)));
}

function showRun(id) {
  const my = ++page;
  crumbs(['runs', '#/'], [id, '#/run/' + id], ['replay', '#/replay/' + id]);
  document.title = 'weft: run ' + id;
  let m = null, selected = null;
  const closed = new Set();
  const head = el('div', {});
  const errs = el('div', {});
  const tree = el('div', { class: 'tree', id: 'tree' });
  const treeInner = el('div', { class: 'tree-inner' });
  tree.append(treeInner);
  const detail = el('div', {}, el('p', { class: 'muted' },
    'Select a node to see its model turns and tool calls.'));
  $main.replaceChildren(head, errs,
    el('div', { class: 'split' }, tree, detail));

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
    head.replaceChildren(el('h2', {}, 'run ' + m.run.id), summary(m.run),
      el('p', { class: 'st-failed', id: 'run-error' }, m.run.error || ''));
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
  $main.replaceChildren(el('h2', {}, 'replay ' + id),
    el('div', { class: 'scrub' }, prev, range, next, play, label),
    el('div', { class: 'split' }, evbox, el('div', {}, cur, state)));
  let m = null, timer = null, want = 0, shown = null;

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
        ' cur' : '') + (/error|reject|exceeded/.test(ev.kind) ? ' err' : ''),
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
    await loadRun(r.run.id, m, (mm, done) => {
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

/* ---------- Routing ---------- */

function route() {
  const h = location.hash;
  let mm;
  page++;
  if ((mm = h.match(/^#\/run\/([^/?]+)/))) showRun(decodeURIComponent(mm[1]));
  else if ((mm = h.match(/^#\/replay\/([^/?]+)/)))
    showReplay(decodeURIComponent(mm[1]));
  else showRuns();
}
window.addEventListener('hashchange', route);
route();
