// Cairn's dashboard. It reads and writes the cluster through the HTTP/JSON
// gateway (/v3/...) and /metrics, as any client does: the member list
// from any member that answers, each member's status from its own client
// URL (the gateway answers other origins: --cors defaults to *). No
// framework, no build step: this file is what the browser runs.
'use strict';

const CALL_TIMEOUT_MS = 1500;
const PAGE_SIZE = 50;
const HISTORY_MAX = 20;
const WATCH_EVENTS_MAX = 200;
const LOAD_POINTS = 60; // 2 minutes at one sample every 2 s

const state = {
  token: null,     // from /v3/auth/authenticate, once signed in
  known: [],       // client URLs seen in member lists: fallbacks when ours is down
  base: location.origin, // the member answering the member list
  page: 'cluster',
  keys: { prefix: '', starts: [], next: null },
  watch: null,     // the AbortController of the running watch
  load: { last: null, series: {} },
};

// ---- calls ----

// call POSTs body to base+path and returns the parsed answer; an error
// carries the gateway's gRPC code and message.
async function call(base, path, body, timeout = CALL_TIMEOUT_MS) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout);
  try {
    const resp = await fetch(base + path, { method: 'POST', headers: headers(), body: JSON.stringify(body || {}), signal: ctl.signal });
    const json = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = new Error(json.message || resp.statusText);
      err.code = json.code;
      throw err;
    }
    return json;
  } finally {
    clearTimeout(timer);
  }
}

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (state.token) h.Authorization = state.token;
  return h;
}

// kv calls the member that last answered the member list.
function kv(path, body) { return call(state.base, path, body); }

// needsLogin says whether an error means "sign in first".
function needsLogin(err) {
  return /user name is empty|invalid auth token/.test(err.message || '');
}

// ---- bytes: keys and values travel as base64 ----

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

function toB64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
function fromB64(b64) {
  const s = atob(b64 || '');
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
function hex(bytes) { return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' '); }

// text is the bytes as UTF-8 if they are printable text, else null.
function text(bytes) {
  try {
    const s = strictDecoder.decode(bytes);
    return /[\u0000-\u0008\u000e-\u001f]/.test(s) ? null : s;
  } catch (e) {
    return null;
  }
}
function show(bytes) { const t = text(bytes); return t === null ? '0x ' + hex(bytes) : t; }

// rangeEnd is the end of the range of keys starting with prefix (etcd's
// GetPrefixRangeEnd): every key for an empty prefix.
function rangeEnd(prefix) {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) return end.slice(0, i + 1).map((b, j) => (j === i ? b + 1 : b));
  }
  return new Uint8Array([0]);
}

// ---- formatting ----

function hexID(id) {
  try { return BigInt(id || 0).toString(16); } catch (e) { return String(id); }
}
function bytesText(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function $(id) { return document.getElementById(id); }
function pageError(err) {
  const box = $('page-error');
  if (!err) { box.hidden = true; return; }
  if (needsLogin(err)) { showLogin(); return; }
  box.textContent = err.message;
  box.hidden = false;
}

// ---- Cluster ----

// memberList asks the member that answered last, then the others known.
async function memberList() {
  let last;
  const bases = [state.base, location.origin, ...state.known];
  for (const base of bases.filter((b, i) => bases.indexOf(b) === i)) {
    try {
      const resp = await call(base, '/v3/cluster/member/list', {});
      state.base = base;
      return resp.members || [];
    } catch (err) {
      if (needsLogin(err)) throw err;
      last = err;
    }
  }
  throw new Error('no member answers: ' + (last && last.message));
}

async function refreshCluster() {
  const members = await memberList();
  state.known = members.flatMap((m) => m.clientURLs || []);
  const statuses = await Promise.all(members.map(async (m) => {
    const url = (m.clientURLs || [])[0];
    if (!url) return { err: 'not started' };
    try { return { st: await call(url, '/v3/maintenance/status', {}) }; } catch (err) { return { err: err.message }; }
  }));
  let alarms = null;
  try { alarms = (await kv('/v3/maintenance/alarm', { action: 'GET' })).alarms || []; } catch (err) { /* shown as unknown */ }
  renderCluster(members, statuses, alarms);
}

function renderCluster(members, statuses, alarms) {
  const leaders = new Set(statuses.filter((s) => s.st).map((s) => s.st.leader));
  const maxIndex = Math.max(0, ...statuses.filter((s) => s.st).map((s) => Number(s.st.raftIndex || 0)));
  const order = members.map((m, i) => i).sort((a, b) => (members[a].name || '').localeCompare(members[b].name || ''));
  const rows = order.map((i) => {
    const m = members[i];
    const { st, err } = statuses[i];
    const isLeader = st && st.leader && st.leader === m.ID;
    const roleName = m.isLearner ? 'learner' : isLeader ? 'leader' : st ? 'follower' : 'unknown';
    const role = m.isLearner ? el('span', { class: 'badge learner' }, 'learner')
      : isLeader ? el('span', { class: 'badge leader' }, 'leader') : st ? 'follower' : '?';
    let health;
    if (!st) health = el('span', { class: 'down', title: err }, 'unreachable');
    else if (st.errors && st.errors.length) health = el('span', { class: 'down', title: st.errors.join('; ') }, st.errors[0]);
    else if (!st.leader || st.leader === '0') health = el('span', { class: 'down' }, 'no leader');
    else if (maxIndex - Number(st.raftAppliedIndex || 0) > 1000) health = el('span', { class: 'behind' }, 'behind');
    else health = el('span', { class: 'ok' }, 'healthy');
    const num = (v) => el('td', { class: 'num' }, v === undefined ? '' : v);
    return el('tr', { 'data-member': m.name || hexID(m.ID), 'data-role': roleName, 'data-health': health.textContent },
      el('td', {}, m.name || '(unstarted)'), el('td', {}, hexID(m.ID)), el('td', {}, role), el('td', {}, health),
      num(st && st.raftTerm), num(st && st.raftIndex), num(st && st.raftAppliedIndex),
      num(st && bytesText(st.dbSize)), num(st && bytesText(st.dbSizeInUse)), el('td', {}, st ? st.version : ''),
      el('td', { class: 'urls' }, (m.peerURLs || []).join(' ')), el('td', { class: 'urls' }, (m.clientURLs || []).join(' ')));
  });
  document.querySelector('#members tbody').replaceChildren(...rows);
  const up = statuses.filter((s) => s.st).length;
  $('summary').textContent = `${members.length} members, ${up} answering, ` +
    (leaders.size === 1 && !leaders.has('0') && !leaders.has(undefined) ? 'one leader' : 'no agreed leader');
  $('alarms').textContent = alarms === null ? 'unknown (the alarm list did not answer)'
    : alarms.length === 0 ? 'none' : alarms.map((a) => `${a.alarm || 'NONE'} on ${hexID(a.memberID)}`).join(', ');
}

// ---- Keys ----

async function browse(start) {
  const prefix = encoder.encode(state.keys.prefix);
  const end = rangeEnd(prefix);
  // Every key from "\0" for no prefix: etcd refuses an empty key.
  const first = prefix.length ? toB64(prefix) : toB64([0]);
  const [page, count] = await Promise.all([
    kv('/v3/kv/range', { key: start || first, range_end: toB64(end), limit: PAGE_SIZE, keys_only: true }),
    kv('/v3/kv/range', { key: first, range_end: toB64(end), count_only: true }),
  ]);
  const kvs = page.kvs || [];
  state.keys.next = page.more && kvs.length ? toB64([...fromB64(kvs[kvs.length - 1].key), 0]) : null;
  $('keys-next').disabled = !state.keys.next;
  $('keys-prev').disabled = state.keys.starts.length <= 1;
  $('key-count').textContent = `${count.count || 0} keys at revision ${page.header.revision}`;
  const rows = kvs.map((k) => el('tr', { 'data-key': show(fromB64(k.key)) },
    el('td', {}, el('a', { href: '#keys', onclick: (e) => { e.preventDefault(); showKey(k.key); } }, show(fromB64(k.key)))),
    el('td', { class: 'num' }, k.version || 0), el('td', { class: 'num' }, k.mod_revision || 0)));
  document.querySelector('#key-list tbody').replaceChildren(...rows);
}

// showKey shows a key's value (as text, JSON or hex) and its history in
// its current life, back to its creation or to the compacted revision.
async function showKey(keyB64) {
  const box = $('key-detail');
  const resp = await kv('/v3/kv/range', { key: keyB64 });
  const cur = (resp.kvs || [])[0];
  const name = show(fromB64(keyB64));
  if (!cur) { box.replaceChildren(el('p', {}, `${name}: no such key (deleted?)`)); return; }
  const value = fromB64(cur.value);
  const pre = el('pre', { id: 'value-view' });
  const view = (how) => {
    const t = text(value);
    if (how === 'json') {
      try { pre.textContent = JSON.stringify(JSON.parse(t), null, 2); } catch (e) { pre.textContent = '(not JSON) ' + (t === null ? '' : t); }
    } else if (how === 'hex' || t === null) pre.textContent = hex(value);
    else pre.textContent = t;
  };
  view(text(value) === null ? 'hex' : 'text');
  const history = el('tbody');
  box.replaceChildren(
    el('h3', {}, name),
    el('p', { class: 'muted' }, `version ${cur.version}, created at revision ${cur.create_revision}, modified at ${cur.mod_revision}` +
      (cur.lease && cur.lease !== '0' ? `, lease ${hexID(cur.lease)}` : '') + `, ${value.length} bytes`),
    el('div', { class: 'bar' },
      el('button', { type: 'button', onclick: () => view('text') }, 'Text'),
      el('button', { type: 'button', onclick: () => view('json') }, 'JSON'),
      el('button', { type: 'button', onclick: () => view('hex') }, 'Hex'),
      el('button', { type: 'button', class: 'danger', onclick: () => deleteKey(keyB64, name) }, 'Delete')),
    pre,
    el('h3', {}, 'History'),
    el('table', { id: 'key-history' }, el('thead', {}, el('tr', {}, el('th', {}, 'Revision'), el('th', {}, 'Version'), el('th', {}, 'Value'))), history),
  );
  const line = (k) => el('tr', {}, el('td', { class: 'num' }, k.mod_revision), el('td', { class: 'num' }, k.version),
    el('td', { class: 'value' }, show(fromB64(k.value)).slice(0, 200)));
  history.append(line(cur));
  let at = cur;
  for (let n = 1; n < HISTORY_MAX; n++) {
    if (Number(at.mod_revision) <= Number(cur.create_revision)) {
      history.append(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, `created at revision ${cur.create_revision}`)));
      return;
    }
    let prev;
    try {
      prev = ((await kv('/v3/kv/range', { key: keyB64, revision: String(Number(at.mod_revision) - 1) })).kvs || [])[0];
    } catch (err) {
      history.append(el('tr', {}, el('td', { colspan: 3, class: 'muted' },
        err.code === 11 ? 'older revisions are compacted' : 'history: ' + err.message)));
      return;
    }
    if (!prev) return;
    history.append(line(prev));
    at = prev;
  }
  history.append(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, `the last ${HISTORY_MAX} versions`)));
}

async function deleteKey(keyB64, name) {
  if (!confirm(`Delete ${name}?`)) return;
  const resp = await kv('/v3/kv/deleterange', { key: keyB64 });
  $('key-detail').replaceChildren(el('p', {}, `${name} deleted at revision ${resp.header.revision}`));
  browse(state.keys.starts[state.keys.starts.length - 1]);
}

async function putKey(event) {
  event.preventDefault();
  const form = event.target;
  const key = form.key.value;
  if (!confirm(`Put ${key}?`)) return;
  try {
    const resp = await kv('/v3/kv/put', { key: toB64(encoder.encode(key)), value: toB64(encoder.encode(form.value.value)) });
    $('put-result').textContent = `put ${key} at revision ${resp.header.revision}`;
    browse(state.keys.starts[state.keys.starts.length - 1]);
  } catch (err) {
    $('put-result').textContent = 'failed: ' + err.message;
  }
}

// watch streams the events under a prefix (the gateway answers one JSON
// object a line) until stopped.
async function watch(event) {
  event.preventDefault();
  stopWatch();
  const prefix = encoder.encode(event.target.prefix.value);
  const ctl = new AbortController();
  state.watch = ctl;
  $('watch-stop').disabled = false;
  $('watch-state').textContent = 'watching…';
  const body = document.querySelector('#watch-events tbody');
  body.replaceChildren();
  try {
    const resp = await fetch(state.base + '/v3/watch', {
      method: 'POST', headers: headers(), signal: ctl.signal,
      body: JSON.stringify({ create_request: { key: prefix.length ? toB64(prefix) : toB64([0]), range_end: toB64(rangeEnd(prefix)) } }),
    });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.error) throw new Error(msg.error.message);
        const res = msg.result || {};
        if (res.created) $('watch-state').textContent = `watching from revision ${Number(res.header.revision) + 1}`;
        for (const ev of res.events || []) {
          const isDelete = ev.type === 'DELETE';
          body.prepend(el('tr', { 'data-event': isDelete ? 'DELETE' : 'PUT' },
            el('td', { class: 'num' }, ev.kv.mod_revision), el('td', {}, isDelete ? 'DELETE' : 'PUT'),
            el('td', {}, show(fromB64(ev.kv.key))), el('td', { class: 'value' }, isDelete ? '' : show(fromB64(ev.kv.value)).slice(0, 200))));
        }
        while (body.children.length > WATCH_EVENTS_MAX) body.lastChild.remove();
      }
    }
    $('watch-state').textContent = 'the watch ended';
  } catch (err) {
    if (err.name !== 'AbortError') $('watch-state').textContent = 'the watch failed: ' + err.message;
  }
}

function stopWatch() {
  if (state.watch) { state.watch.abort(); state.watch = null; }
  $('watch-stop').disabled = true;
  $('watch-state').textContent = 'stopped';
}

// ---- Leases ----

async function refreshLeases() {
  const leases = ((await kv('/v3/lease/leases', {})).leases || []).slice(0, 200);
  const ttls = await Promise.all(leases.map((l) => kv('/v3/lease/timetolive', { ID: l.ID, keys: true }).catch(() => null)));
  $('lease-count').textContent = `${leases.length} leases`;
  const rows = leases.map((l, i) => {
    const t = ttls[i];
    return el('tr', { 'data-lease': hexID(l.ID) },
      el('td', {}, hexID(l.ID)), el('td', { class: 'num' }, t ? (t.TTL || 0) : '?'),
      el('td', { class: 'num' }, t ? (t.grantedTTL || 0) : '?'), el('td', { class: 'num' }, t ? (t.keys || []).length : '?'),
      el('td', {}, el('button', { type: 'button', class: 'danger', onclick: () => revoke(l.ID) }, 'Revoke')));
  });
  document.querySelector('#lease-list tbody').replaceChildren(...rows);
}

async function revoke(id) {
  if (!confirm(`Revoke lease ${hexID(id)} and delete its keys?`)) return;
  await kv('/v3/lease/revoke', { ID: id }).catch(pageError);
  refreshLeases();
}

// ---- Load ----

// parseMetrics reads Prometheus' text format into name -> [{labels, value}].
function parseMetrics(textBody) {
  const out = {};
  for (const line of textBody.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[3] || '').matchAll(/(\w+)="([^"]*)"/g)) labels[k] = v;
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}
const sum = (samples) => (samples || []).reduce((s, x) => s + x.value, 0);

// quantile estimates the q quantile of a histogram's increase between two
// scrapes (bucket upper bounds -> cumulative counts), in seconds.
function quantile(q, before, after) {
  const les = Object.keys(after).map(Number).sort((a, b) => a - b);
  const total = (after[Infinity] || 0) - (before[Infinity] || 0);
  if (total <= 0) return null;
  for (const le of les) {
    if ((after[le] || 0) - (before[le] || 0) >= q * total) return le;
  }
  return null;
}
function buckets(samples) {
  const b = {};
  for (const s of samples || []) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    b[le] = (b[le] || 0) + s.value;
  }
  return b;
}

async function refreshLoad() {
  const resp = await fetch('/metrics');
  const m = parseMetrics(await resp.text());
  let leases = null;
  try { leases = ((await kv('/v3/lease/leases', {})).leases || []).length; } catch (e) { /* left out */ }
  const now = { t: Date.now() / 1000, requests: sum(m.grpc_server_handled_total), hist: buckets(m.etcd_server_request_duration_seconds_bucket) };
  const last = state.load.last;
  state.load.last = now;
  const point = (name, v) => {
    const s = (state.load.series[name] = state.load.series[name] || []);
    s.push(v);
    if (s.length > LOAD_POINTS) s.shift();
  };
  if (last) {
    const p50 = quantile(0.5, last.hist, now.hist);
    const p99 = quantile(0.99, last.hist, now.hist);
    point('requests/s', (now.requests - last.requests) / (now.t - last.t));
    point('p50 latency, ms (bucket bound)', p50 === null ? null : p50 * 1000);
    point('p99 latency, ms (bucket bound)', p99 === null ? null : p99 * 1000);
  }
  point('watchers', sum(m.etcd_debugging_mvcc_watcher_total));
  point('leases', leases);
  renderCharts();
}

function renderCharts() {
  const charts = Object.entries(state.load.series).map(([name, points]) => {
    const vals = points.filter((v) => v !== null && isFinite(v));
    const max = Math.max(1, ...vals);
    const w = 300, h = 60;
    const xy = points.map((v, i) => (v === null || !isFinite(v) ? null : [i * w / (LOAD_POINTS - 1), h - 2 - (v / max) * (h - 4)]));
    const path = xy.filter(Boolean).map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    const lastVal = points.length ? points[points.length - 1] : null;
    const shown = lastVal === null || !isFinite(lastVal) ? '–' : lastVal >= 100 ? lastVal.toFixed(0) : lastVal.toFixed(lastVal % 1 ? 2 : 0);
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    p.setAttribute('d', path);
    svg.append(p);
    const lastXY = xy.filter(Boolean).pop();
    if (lastXY) {
      const dot = document.createElementNS('http://www.w3.org/2000/svg', 'circle');
      dot.setAttribute('cx', lastXY[0]);
      dot.setAttribute('cy', lastXY[1]);
      dot.setAttribute('r', 2.5);
      svg.append(dot);
    }
    return el('figure', { 'data-chart': name, 'data-points': points.length }, el('figcaption', {}, name, ' ', el('b', { class: 'current' }, shown), el('span', { class: 'muted' }, ` (max ${max.toFixed(max >= 100 ? 0 : 2)})`)), svg);
  });
  $('charts').replaceChildren(...charts);
}

// ---- pages, sign-in, the refresh loop ----

const refreshers = { cluster: [refreshCluster, 1000], leases: [refreshLeases, 2000], load: [refreshLoad, 2000] };

function showPage() {
  state.page = (location.hash || '#cluster').slice(1);
  if (!['cluster', 'keys', 'leases', 'load'].includes(state.page)) state.page = 'cluster';
  for (const s of document.querySelectorAll('section.page')) s.hidden = s.id !== state.page || !$('login').hidden;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.page === state.page);
  if (state.page === 'keys' && state.keys.starts.length === 0) {
    state.keys.starts = [null];
    browse(null).catch(pageError);
  }
}

function showLogin() {
  $('login').hidden = false;
  for (const s of document.querySelectorAll('section.page')) s.hidden = true;
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const resp = await call(location.origin, '/v3/auth/authenticate', { name: form.name.value, password: form.password.value });
    state.token = resp.token;
    $('login').hidden = true;
    $('login-error').textContent = '';
    state.keys.starts = [];
    showPage();
  } catch (err) {
    $('login-error').textContent = err.message;
  }
}

async function loop(page) {
  const [fn, every] = refreshers[page];
  if (state.page === page && $('login').hidden) {
    try {
      await fn();
      pageError(null);
      $('endpoint').textContent = 'via ' + state.base;
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (err) {
      pageError(err);
    }
  }
  setTimeout(() => loop(page), every);
}

$('login-form').addEventListener('submit', login);
$('browse-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.keys.prefix = e.target.prefix.value;
  state.keys.starts = [null];
  browse(null).catch(pageError);
});
$('keys-next').addEventListener('click', () => {
  state.keys.starts.push(state.keys.next);
  browse(state.keys.next).catch(pageError);
});
$('keys-prev').addEventListener('click', () => {
  state.keys.starts.pop();
  browse(state.keys.starts[state.keys.starts.length - 1]).catch(pageError);
});
$('put-form').addEventListener('submit', putKey);
$('watch-form').addEventListener('submit', watch);
$('watch-stop').addEventListener('click', stopWatch);
window.addEventListener('hashchange', showPage);
showPage();
for (const page of Object.keys(refreshers)) loop(page);
document.body.dataset.ready = 'true'; // every handler is in place (tests wait for it)
