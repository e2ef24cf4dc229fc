// Cairn's dashboard. It reads the cluster through the HTTP/JSON gateway
// (/v3/...), as any client does: the member list from any member that
// answers, then each member's status from its own client URL (the gateway
// answers other origins: --cors defaults to *). No framework, no build
// step: this file is what the browser runs.
'use strict';

const REFRESH_MS = 1000;
const CALL_TIMEOUT_MS = 1500;

const state = {
  token: null,          // from /v3/auth/authenticate, once signed in
  known: [],            // client URLs seen in member lists: fallbacks when ours is down
};

// call POSTs body to base+path and returns the parsed answer; an error
// carries the gateway's gRPC code and message.
async function call(base, path, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (state.token) headers.Authorization = state.token;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
  try {
    const resp = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body || {}), signal: ctl.signal });
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

// needsLogin says whether an error means "sign in first".
function needsLogin(err) {
  return /user name is empty|invalid auth token|authentication failed/.test(err.message || '');
}

// hexID prints a uint64 ID (a decimal string in JSON) as etcdctl does.
function hexID(id) {
  try { return BigInt(id || 0).toString(16); } catch (e) { return String(id); }
}

function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// memberList asks our own member, then the others known, for the list.
async function memberList() {
  let last;
  for (const base of [location.origin, ...state.known.filter((u) => u !== location.origin)]) {
    try {
      const resp = await call(base, '/v3/cluster/member/list', {});
      return { base, members: resp.members || [] };
    } catch (err) {
      if (needsLogin(err)) throw err;
      last = err;
    }
  }
  throw last;
}

async function refresh() {
  const errBox = document.getElementById('cluster-error');
  let list;
  try {
    list = await memberList();
  } catch (err) {
    if (needsLogin(err)) { showLogin(); return; }
    errBox.textContent = 'No member answers: ' + err.message;
    errBox.hidden = false;
    return;
  }
  errBox.hidden = true;
  document.getElementById('endpoint').textContent = 'via ' + list.base;
  state.known = list.members.flatMap((m) => m.clientURLs || []);

  const statuses = await Promise.all(list.members.map(async (m) => {
    const url = (m.clientURLs || [])[0];
    if (!url) return { err: 'not started' };
    try { return { st: await call(url, '/v3/maintenance/status', {}) }; } catch (err) { return { err: err.message }; }
  }));
  let alarms = [];
  try { alarms = (await call(list.base, '/v3/maintenance/alarm', { action: 'GET' })).alarms || []; } catch (err) { /* shown as unknown below */ alarms = null; }
  render(list.members, statuses, alarms);
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

function render(members, statuses, alarms) {
  const leaders = new Set(statuses.filter((s) => s.st).map((s) => s.st.leader));
  const maxIndex = Math.max(0, ...statuses.filter((s) => s.st).map((s) => Number(s.st.raftIndex || 0)));
  const body = document.querySelector('#members tbody');
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
      num(st && bytes(st.dbSize)), num(st && bytes(st.dbSizeInUse)), el('td', {}, st ? st.version : ''),
      el('td', { class: 'urls' }, (m.peerURLs || []).join(' ')), el('td', { class: 'urls' }, (m.clientURLs || []).join(' ')));
  });
  body.replaceChildren(...rows);
  const up = statuses.filter((s) => s.st).length;
  document.getElementById('summary').textContent =
    `${members.length} members, ${up} answering, ` + (leaders.size === 1 && !leaders.has('0') ? 'one leader' : 'no agreed leader');
  document.getElementById('alarms').textContent = alarms === null ? 'unknown (the alarm list did not answer)'
    : alarms.length === 0 ? 'none' : alarms.map((a) => `${a.alarm} on ${hexID(a.memberID)}`).join(', ');
}

function showLogin() {
  document.getElementById('login').hidden = false;
  document.getElementById('cluster').hidden = true;
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const resp = await call(location.origin, '/v3/auth/authenticate', { name: form.name.value, password: form.password.value });
    state.token = resp.token;
    document.getElementById('login').hidden = true;
    document.getElementById('cluster').hidden = false;
    document.getElementById('login-error').textContent = '';
    refresh();
  } catch (err) {
    document.getElementById('login-error').textContent = err.message;
  }
}

async function loop() {
  if (document.getElementById('login').hidden) await refresh().catch(() => {});
  setTimeout(loop, REFRESH_MS);
}

document.getElementById('login-form').addEventListener('submit', login);
loop();
