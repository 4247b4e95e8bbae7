// gslbd operator console: polls the admin API (/v1/status, /v1/rates, /v1/history), shows
// every zone, pool and member with its history and answer rate, sends overrides, and asks
// /v1/explain. Plain DOM, no framework, served under a CSP without 'unsafe-inline'.
//
// Every string from the server is untrusted: it only ever becomes a text node or the value
// of a harmless attribute (data-*, title, class after a whitelist), never markup, a URL or a
// handler.
'use strict';

const STATUS_MS = 1000;          // /v1/status
const SIDE_MS = 2000;            // /v1/rates
const GET_TIMEOUT_MS = 5000;     // a poll that hangs counts as failed
const POST_TIMEOUT_MS = 30000;   // an override waits for the writer (and etcd)
const HISTORY_LIMIT = 100;
const SPARK_N = 300;             // samples across a sparkline (five minutes of seconds)
const SPARK_H = 20;              // its height in viewBox units
const TOKEN_KEY = 'gslbd.token'; // sessionStorage only: never a cookie, never a URL
const BY_KEY = 'gslbd.by';
const SVG_NS = 'http://www.w3.org/2000/svg';

const ACTIONS = [['drain', 'drain'], ['undrain', 'undrain'], ['force-up', 'force up'],
  ['force-down', 'force down'], ['clear', 'clear']];
const CLEARING = new Set(['undrain', 'clear']); // these take no expiry
// [cell class, column heading] of a member row, in order.
const COLUMNS = [['address', 'member'], ['site', 'site'], ['state', 'state'],
  ['override', 'override'], ['reason', 'last change'], ['since', 'when'], ['checks', 'checks'],
  ['weight', 'weight'], ['priority', 'prio'], ['spare', 'spare'], ['rate', 'ans/s'],
  ['spark', '5 min'], ['actions', '']];
const POOL_STATES = ['healthy', 'degraded', 'all-down'];
const MEMBER_STATES = ['up', 'down', 'unknown', 'drained', 'forced-up', 'forced-down'];
const OVERRIDE_WORD = { 'drain': 'drained', 'force-up': 'forced-up', 'force-down': 'forced-down' };
const KNOWN = new Set([...POOL_STATES, ...MEMBER_STATES]);
const MARK = { up: '✓', down: '✗', unknown: '?' }; // a node's vote, after its name

// ---- small helpers -------------------------------------------------------------------------

const $ = (sel) => document.querySelector(sel);
const key = (...parts) => JSON.stringify(parts);
const human = (k) => String(k).replace(/_/g, ' ');

// The CSS class for a state word from the server: known words only, so that a class name
// is never whatever the server sent. Override words map to their state words. "s-" colours
// text; "is-" marks a container (a pool, a history row) that is styled by its state.
function cls(word, prefix = 's-') {
  const w = OVERRIDE_WORD[word] || word;
  return prefix + (KNOWN.has(w) ? w : 'other');
}

// el('td', {class: 'x', title: t}, child, 'text', ...): strings become text nodes; a null
// attribute or child is left out.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  e.append(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// Writes only what changed: an untouched node keeps its text selection and hover tooltip.
function setText(node, text) {
  if (node.textContent !== String(text)) node.textContent = String(text);
}

function setAttr(node, name, value) {
  if (value === null || value === undefined || value === '') node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}

// Replaces node's children with build() only when sig differs from the last call's.
const sigs = new WeakMap();
function fill(node, sig, build) {
  if (sigs.get(node) === sig) return;
  sigs.set(node, sig);
  node.replaceChildren(...build().filter((k) => k !== null && k !== undefined));
}

// [a, b, c] -> [a, sep, b, sep, c]
const joined = (nodes, sep = ' ') => nodes.flatMap((n, i) => (i ? [sep, n] : [n]));

const badge = (word, cssWord = word) => el('span', { class: `badge ${cls(cssWord)}` }, word);

const store = { // sessionStorage may be disabled; then the console just forgets
  get(k) { try { return sessionStorage.getItem(k) || ''; } catch { return ''; } },
  set(k, v) { try { if (v) sessionStorage.setItem(k, v); else sessionStorage.removeItem(k); } catch { /* none */ } },
};

// ---- time ----------------------------------------------------------------------------------

// The server's clock minus ours (ms), from the Date header, so that "N s ago" is right when
// the browser's clock is off. The header has whole seconds; a change under 1.5 s is taken
// as that rounding and ignored, so the ages do not flicker.
let skewMs = null;
function noteServerClock(res) {
  const d = Date.parse(res.headers.get('Date') || '');
  if (Number.isNaN(d)) return;
  const s = d + 500 - Date.now();
  if (skewMs === null || Math.abs(s - skewMs) > 1500) skewMs = s;
}
const serverNow = () => (Date.now() + (skewMs || 0)) / 1000;

function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}
const ago = (unix, now) => `${span(now - unix)} ago`;

const hms = (unix) => new Date(unix * 1000).toTimeString().slice(0, 8); // local HH:MM:SS

// ---- HTTP ----------------------------------------------------------------------------------

async function request(path, init, timeoutMs) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(path, { cache: 'no-store', credentials: 'same-origin', ...init, signal: ctl.signal });
    noteServerClock(res);
    const body = await res.json().catch(() => null);
    return { res, body };
  } catch (e) {
    throw new Error(e.name === 'AbortError' ? `no answer in ${timeoutMs / 1000} s` : e.message);
  } finally {
    clearTimeout(timer);
  }
}

const errorText = (res, body) =>
  (body && typeof body.error === 'string' ? body.error : `HTTP ${res.status} ${res.statusText}`.trim());

async function getJSON(path) {
  const { res, body } = await request(path, { headers: { Accept: 'application/json' } }, GET_TIMEOUT_MS);
  if (!res.ok || body === null) throw new Error(errorText(res, body));
  return body;
}

// Runs fn every ms, never two at once: the next run is scheduled when this one ends.
function every(ms, fn) {
  const tick = async () => {
    const started = Date.now();
    try { await fn(); } finally { setTimeout(tick, Math.max(0, ms - (Date.now() - started))); }
  };
  tick();
}

// ---- overview: zones > pools > member rows, kept across polls -------------------------------

// The DOM of what the last status had, by key; updated in place, so focus, hover and text
// selection survive a poll.
const zones = new Map();  // zone -> {section, pools}
const pools = new Map();  // key(zone, pool) -> {section, state, note, count, tbody}
const rows = new Map();   // key(zone, pool, address) -> {tr, c: {cell class -> td}, line, area, tip}
let rates = new Map();    // key(zone, pool, address) -> answers per second, oldest first
let rateInterval = 1;

// Puts kids under parent in this order, moving only nodes out of place (moving a node blurs
// it), and removes every other child.
function place(parent, kids) {
  kids.forEach((k, i) => {
    const at = parent.children[i];
    if (at !== k) parent.insertBefore(k, at || null);
  });
  while (parent.children.length > kids.length) parent.lastElementChild.remove();
}

// Forgets what the last place() calls took out of the page.
function prune(map, node) {
  for (const [k, v] of map) if (!node(v).isConnected) map.delete(k);
}

// The DOM of a zone, pool or member row: the one the last poll made, or a new one.
function cached(map, k, make) {
  if (!map.has(k)) map.set(k, make());
  return map.get(k);
}

function zoneFor(zone) {
  return cached(zones, zone, () => {
    const box = el('div', { class: 'pools' });
    return { pools: box, section: el('section', { class: 'zone', 'data-zone': zone }, el('h2', {}, zone), box) };
  });
}

function poolFor(zone, pool) {
  return cached(pools, key(zone, pool), () => {
    const p = {
      state: el('span', { class: 'pool-state badge' }),
      note: el('span', { class: 'pool-note' }),
      count: el('span', { class: 'pool-count muted' }),
      tbody: el('tbody'),
    };
    const head = el('tr', {}, COLUMNS.map(([c, h]) => el('th', { class: c }, h)));
    p.section = el('section', { class: 'pool', 'data-zone': zone, 'data-pool': pool },
      el('div', { class: 'pool-head' }, el('h3', { class: 'mono' }, pool), p.state, p.note, p.count),
      el('table', { class: 'members' }, el('thead', {}, head), p.tbody));
    return p;
  });
}

function rowFor(zone, pool, address) {
  const k = key(zone, pool, address);
  return cached(rows, k, () => {
    const c = {};
    const tr = el('tr', { class: 'member', 'data-zone': zone, 'data-pool': pool, 'data-member': address },
      COLUMNS.map(([name]) => (c[name] = el('td', { class: name }))));
    c.address.classList.add('mono');
    c.actions.append(...joined(ACTIONS.map(([a, label]) => el('button', { type: 'button', 'data-action': a }, label))));
    const chart = svg('svg', { class: 'spark', viewBox: `0 0 ${SPARK_N - 1} ${SPARK_H}`, preserveAspectRatio: 'none' });
    const r = { tr, c, tip: svg('title', {}), area: svg('polygon', { class: 'spark-area' }), line: svg('polyline', { class: 'spark-line' }) };
    chart.append(r.tip, r.area, r.line);
    c.spark.append(chart);
    drawRate(r, rates.get(k));
    return r;
  });
}

// The state a member is shown in: its own override wins over its site's; a drain shows as
// "drained" (the member may still be up or down: see the override cell), a force as
// "forced-up"/"forced-down", else the status.
function effective(m) {
  const o = m.override || m.site_override || null;
  const via = m.override ? 'own' : m.site_override ? `site ${m.site || '?'}` : null;
  return { o, via, word: o ? (OVERRIDE_WORD[o.kind] || o.kind) : m.status };
}

function describeOverride(m, o, via, now) {
  let t = `${o.kind} (${via})${o.reason ? `: ${o.reason}` : ''}${o.by ? `, by ${o.by}` : ''}`;
  t += `, set ${hms(o.set_unix)}${o.node ? ` on ${o.node}` : ''}`;
  t += o.expires_unix ? `, expires ${hms(o.expires_unix)} (in ${span(o.expires_unix - now)})` : ', no expiry';
  if (m.override && m.site_override) t += `; the site's ${m.site_override.kind} is shadowed by this one`;
  return t;
}

const describeEvent = (ev) => `${ev.kind}${ev.check ? ` ${ev.check}` : ''}: ${ev.from} → ${ev.to}`
  + `${ev.reason ? ` (${ev.reason})` : ''}${ev.by ? ` by ${ev.by}` : ''} at ${hms(ev.unix)}`;

function updateRow(r, m, now) {
  const { tr, c } = r;
  const { o, via, word } = effective(m);
  tr.classList.toggle('bad', word === 'down' || word === 'forced-down');
  tr.classList.toggle('amber', word === 'drained' || word === 'forced-up');
  setText(c.address, m.address);
  setAttr(c.address, 'title', m.address);
  setText(c.site, m.site || '');
  fill(c.state, word, () => [badge(word)]);
  setAttr(c.state, 'title', o ? describeOverride(m, o, via, now) : `health: ${m.status}`);
  // The override cell: where it comes from, the health underneath it, the time left.
  const left = o && o.expires_unix ? `${span(o.expires_unix - now)} left` : '';
  // Rebuilt when the override changes; the time left is only text, so a tooltip being read
  // is not replaced every second.
  fill(c.override, key(via, o && o.by, m.status, !!left), () => (o ? [
    el('span', { class: 'via' }, `${via}${o.by ? ` by ${o.by}` : ''}`), ' · health ',
    el('span', { class: cls(m.status), title: 'health under the override' }, m.status),
    left ? el('span', { class: 'muted left' }) : null] : []));
  const leftSpan = c.override.querySelector('.left');
  if (leftSpan) setText(leftSpan, ` · ${left}`);
  setAttr(c.override, 'title', o ? describeOverride(m, o, via, now) : null);
  const ev = m.last_change || null;
  setText(c.reason, ev ? ev.reason || '' : '');
  setAttr(c.reason, 'title', ev ? describeEvent(ev) : null);
  setText(c.since, ev ? ago(ev.unix, now) : '');
  setAttr(c.since, 'title', ev ? hms(ev.unix) : null);
  // Checks with their votes; the ages are left out of the signature so that the spans (and
  // a tooltip being read) are not replaced every second.
  const checks = (m.checks || []).map((ch) => [ch.check, ch.status, ch.last_result || '',
    (ch.votes || []).map((v) => [v.node, v.status, v.last_result || ''])]);
  fill(c.checks, JSON.stringify(checks), () => checks.map(([name, st, res, votes]) =>
    el('div', { class: 'check' },
      el('span', { class: cls(st), title: res || null }, `${name}:${st}`),
      votes.length ? el('span', { class: 'votes' }, ' ', joined(votes.map(([n, vs, vr]) =>
        el('span', { class: cls(vs), title: `${n}: ${vs}${vr ? ` (${vr})` : ''}` }, `${n}${MARK[vs] || '?'}`)))) : null)));
  setText(c.weight, m.weight);
  setText(c.priority, m.priority);
  const spare = m.spare_capacity;
  setText(c.spare, spare === null || spare === undefined ? '' : `${Math.round(spare * 100)}%`);
  setAttr(c.rate, 'title', typeof m.answers === 'number' ? `${m.answers} addresses handed out in all` : null);
}

const fmtRate = (v) => (v >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1));

// The current rate and the sparkline: the newest sample at the right edge, scaled to the
// largest in view (at least 1/s, so that a trickle does not look like a flood).
function drawRate(r, samples) {
  const s = (samples || []).slice(-SPARK_N);
  const max = Math.max(1, ...s);
  const x0 = SPARK_N - s.length;
  const pts = s.map((v, i) => `${x0 + i},${(SPARK_H - 1 - (v / max) * (SPARK_H - 2)).toFixed(1)}`).join(' ');
  setText(r.c.rate, s.length ? fmtRate(s[s.length - 1]) : '–');
  r.line.setAttribute('points', pts);
  r.area.setAttribute('points', s.length ? `${x0},${SPARK_H} ${pts} ${SPARK_N - 1},${SPARK_H}` : '');
  const avg = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  r.tip.textContent = s.length ? `answers/s over the last ${span(s.length * rateInterval)}: max ${fmtRate(max)}, mean ${fmtRate(avg)}` : 'no rate data';
}

function updatePool(ps, p, words) {
  const st = p.state || 'unknown';
  setText(ps.state, st);
  ps.state.className = `pool-state badge ${cls(st)}`;
  ps.section.className = `pool ${cls(st, 'is-')}`;
  const ttl = typeof p.ttl === 'number' ? p.ttl : null;
  let note = ttl === null ? '' : `TTL ${ttl} s`;
  if (st === 'degraded' && ttl !== null) note = `TTL halved: ${ttl} s`;
  if (st === 'all-down') note = `all down, answers ${p.all_down_answer || 'no addresses'}`;
  // A dual-stack pool whose families differ: each is answered on its own.
  const fams = p.families || [];
  if (fams.length > 1 && fams.some((f) => f.state !== fams[0].state)) {
    note += ` (${fams.map((f) => `${f.family}: ${f.state}, TTL ${f.ttl} s`).join('; ')})`;
  }
  setText(ps.note, note);
  // Unknown members (not probed yet) are answered too: fail open at a cold start.
  const serving = words.filter((w) => w === 'up' || w === 'unknown' || w === 'forced-up').length;
  setText(ps.count, `${serving} of ${words.length} serving`);
  return st;
}

function renderStatus(s) {
  const now = serverNow();
  document.body.dataset.generation = String(s.generation);
  setText($('#generation'), `generation ${s.generation}`);
  renderCluster(s.cluster);
  const count = { pools: {}, members: {} };
  const problems = [];  // [zone, pool, state] of pools not healthy
  const sites = new Set();
  const zoneKids = s.zones.map((z) => {
    const zs = zoneFor(z.zone);
    place(zs.pools, z.pools.map((p) => {
      const ps = poolFor(z.zone, p.pool);
      const words = [];
      place(ps.tbody, p.members.map((m) => {
        if (m.site) sites.add(m.site);
        const r = rowFor(z.zone, p.pool, m.address);
        updateRow(r, m, now);
        const w = effective(m).word;
        words.push(w);
        count.members[w] = (count.members[w] || 0) + 1;
        return r.tr;
      }));
      const st = updatePool(ps, p, words);
      count.pools[st] = (count.pools[st] || 0) + 1;
      if (st !== 'healthy') problems.push([z.zone, p.pool, st]);
      return ps.section;
    }));
    return zs.section;
  });
  place($('#zones'), zoneKids.length ? zoneKids : [el('p', { class: 'empty' }, 'no zones configured')]);
  prune(zones, (z) => z.section);
  prune(pools, (p) => p.section);
  prune(rows, (r) => r.tr);
  renderSummary(count, problems);
  updateSites(sites);
}

function renderCluster(c) {
  const box = $('#cluster');
  box.hidden = !c;
  if (!c) return;
  box.className = c.connected ? 'cluster' : 'cluster problem';
  const etcd = c.connected ? 'etcd connected' : `CUT OFF from etcd${c.problem ? `: ${c.problem}` : ''}`;
  setText(box, `node ${c.node} · ${etcd} · quorum ${c.quorum} · live nodes: ${(c.nodes || []).join(', ') || 'none'}`);
}

// One line: pools and members by state, and a button per pool that is not healthy.
function renderSummary(count, problems) {
  const counts = (order, map) => order.filter((w) => map[w]).map((w) => badge(`${map[w]} ${w}`, w));
  const np = Object.values(count.pools).reduce((a, b) => a + b, 0);
  const nm = Object.values(count.members).reduce((a, b) => a + b, 0);
  fill($('#summary'), key(count, problems), () => [
    el('span', { class: 'muted' }, `${np} pools`), ' ', ...joined(counts(POOL_STATES, count.pools)),
    el('span', { class: 'muted' }, ` · ${nm} members `), ...joined(counts(MEMBER_STATES, count.members)),
    problems.length ? el('span', { class: 'muted' }, ' · see: ') : null,
    ...joined(problems.map(([z, p, st]) =>
      el('button', { type: 'button', class: `jump ${cls(st)}`, 'data-zone': z, 'data-pool': p }, `${p} (${z}) ${st}`)))]);
  document.title = problems.length ? `gslbd: ${problems.length} pool${problems.length > 1 ? 's' : ''} not healthy` : 'gslbd';
}

function updateSites(sites) {
  const sel = $('#site-name');
  const list = [...sites].sort();
  const keep = sel.value;
  fill(sel, key(list), () => (list.length ? list.map((s) => el('option', { value: s }, s))
    : [el('option', { value: '' }, '(no sites)')]));
  if (list.includes(keep)) sel.value = keep;
}

// ---- rates and history ---------------------------------------------------------------------

// The first poll takes five minutes of samples; later ones only the samples taken since
// (`?after=`), appended here: a few numbers per member per poll, not 300.
let ratesTaken = null;
function renderRates(r) {
  rateInterval = r.interval_seconds || 1;
  const incremental = ratesTaken !== null;
  const next = new Map();
  for (const m of r.members || []) {
    const k = key(m.zone, m.pool, m.address);
    const had = incremental ? rates.get(k) || [] : [];
    next.set(k, had.concat(m.per_second || []).slice(-SPARK_N));
  }
  rates = next; // members gone from the server are gone here
  ratesTaken = typeof r.taken === 'number' ? r.taken : null;
  for (const [k, row] of rows) drawRate(row, rates.get(k));
}
const ratesPath = () => (ratesTaken === null ? '/v1/rates' : `/v1/rates?after=${ratesTaken}`);

let historySig = '';
function renderHistory(events, now) {
  const tbody = $('#history tbody');
  const sig = JSON.stringify(events);
  if (sig !== historySig) { // else only the ages move
    historySig = sig;
    tbody.replaceChildren(...(events.length ? events.map(eventRow)
      : [el('tr', { class: 'empty' }, el('td', { colspan: 8 }, 'no events yet'))]));
  }
  for (const td of tbody.querySelectorAll('td.ago')) setText(td, ago(Number(td.dataset.unix), now));
}

function eventRow(ev) {
  const target = ev.member ? el('span', { class: 'mono' }, ev.member) : ev.site ? `site ${ev.site}` : '';
  return el('tr', { class: `event ${cls(ev.to, 'is-')}`, 'data-member': ev.member || null, 'data-site': ev.member ? null : ev.site || null },
    el('td', { class: 'time', title: new Date(ev.unix * 1000).toString() }, hms(ev.unix)),
    el('td', { class: 'ago', 'data-unix': ev.unix }),
    el('td', { class: 'target' }, target),
    el('td', { class: 'kind' }, ev.kind || ''),
    el('td', { class: 'check' }, ev.check || ''),
    el('td', { class: 'change' }, el('span', { class: cls(ev.from) }, ev.from), ' → ', el('span', { class: cls(ev.to) }, ev.to)),
    el('td', { class: 'reason', title: ev.reason || null }, ev.reason || ''),
    el('td', { class: 'by' }, ev.by || ''));
}

// ---- polling -------------------------------------------------------------------------------

// Polls can overlap (one right after an action); a late answer older than the one shown is
// dropped.
let statusSeq = 0;
let statusShown = 0;
async function pollStatus() {
  const seq = ++statusSeq;
  let error = null;
  let s = null;
  try { s = await getJSON('/v1/status'); } catch (e) { error = e; }
  if (seq < statusShown) return;
  statusShown = seq;
  try { if (s) renderStatus(s); } catch (e) { error = e; } // a shape we do not understand
  document.body.classList.toggle('stale', !!error);
  $('#live').className = error ? 'live failed' : 'live ok';
  if (!error) setText($('#last-refresh'), `updated ${hms(Date.now() / 1000)}`);
  setText($('#live-error'), error ? `status poll failed: ${error.message}` : '');
}

// /v1/rates and /v1/history: on failure the rest of the page goes on, with a note.
// A poll that starts while another is on its way is skipped: answers never arrive out of order.
function sidePoll(what, path, render, note) {
  let busy = false;
  return async () => {
    if (busy) return;
    busy = true;
    try {
      render(await getJSON(typeof path === 'function' ? path() : path));
      setText($(note), '');
    } catch (e) {
      setText($(note), `${what} unavailable: ${e.message}`);
    } finally {
      busy = false;
    }
  };
}
const pollRates = sidePoll('rates', ratesPath, renderRates, '#side-error');
const pollHistory = sidePoll('history', `/v1/history?limit=${HISTORY_LIMIT}`,
  (h) => renderHistory((h.events || []).slice(0, HISTORY_LIMIT), serverNow()), '#history-error');

// ---- actions -------------------------------------------------------------------------------

function showResult(kind, text) { // kind: ok, error or pending
  Object.assign($('#action-result'), { className: kind, textContent: text, title: `at ${hms(Date.now() / 1000)}` });
}

// The body of an override request: only the fields given.
function overrideBody(reason, expires, by) {
  const given = Object.entries({ reason, expires, by }).map(([k, v]) => [k, v.trim()]).filter(([, v]) => v);
  return Object.fromEntries(given);
}

async function send(path, body, what) {
  showResult('pending', `${what}: sending…`);
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const token = store.get(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const { res, body: answer } = await request(path, { method: 'POST', headers, body: JSON.stringify(body) }, POST_TIMEOUT_MS);
    if (res.ok) showResult('ok', `${what}: done`);
    else if (res.status === 401 || res.status === 403) showResult('error', `refused: ${errorText(res, answer)}`);
    else showResult('error', `${what} failed (${res.status}): ${errorText(res, answer)}`);
  } catch (e) {
    showResult('error', `${what} failed: ${e.message}`);
  }
  pollStatus();
  pollHistory();
}

// The inline panel that asks for reason, expiry and name before a member action.
let pending = null; // {path, what, clearing, opener}

function openPanel(address, action, opener) {
  const label = ACTIONS.find(([a]) => a === action)?.[1] || action;
  pending = { path: `/v1/members/${encodeURIComponent(address)}/${encodeURIComponent(action)}`, what: `${label} ${address}`, clearing: CLEARING.has(action), opener };
  setText($('#action-title'), pending.what);
  setText($('#action-note'), `Applies to ${address} in every pool of every zone.`
    + (pending.clearing ? ' Removes its own override (a site override stays).' : ''));
  $('#action-reason').value = '';
  $('#action-expires').value = '';
  $('#action-expires').disabled = pending.clearing;
  $('#action-by').value = store.get(BY_KEY);
  $('#action-panel').hidden = false;
  $('#action-reason').focus();
}

function closePanel() {
  const opener = pending && pending.opener;
  pending = null;
  $('#action-panel').hidden = true;
  if (opener && opener.isConnected) opener.focus();
}

function rememberBy(by) {
  store.set(BY_KEY, by.trim());
  $('#action-by').value = by.trim();
  $('#site-by').value = by.trim();
}

function init() {
  $('#zones').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    const tr = b && b.closest('tr.member');
    if (tr) openPanel(tr.dataset.member, b.dataset.action, b);
  });
  $('#summary').addEventListener('click', (ev) => {
    const b = ev.target.closest('button.jump');
    const p = b && pools.get(key(b.dataset.zone, b.dataset.pool));
    if (p) p.section.scrollIntoView({ block: 'start' });
  });

  $('#action-panel').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!pending) return;
    const { path, what, clearing } = pending;
    const by = $('#action-by').value;
    rememberBy(by);
    const body = overrideBody($('#action-reason').value, clearing ? '' : $('#action-expires').value, by);
    closePanel();
    send(path, body, what);
  });
  $('#action-cancel').addEventListener('click', closePanel);
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && pending) closePanel();
  });

  $('#site-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const site = $('#site-name').value;
    const action = $('#site-action').value;
    if (!site) { showResult('error', 'no site to act on: no member is placed in a site'); return; }
    const by = $('#site-by').value;
    rememberBy(by);
    const expires = CLEARING.has(action) ? '' : $('#site-expires').value;
    send(`/v1/sites/${encodeURIComponent(site)}/${encodeURIComponent(action)}`,
      overrideBody($('#site-reason').value, expires, by), `${action} site ${site}`);
  });

  // The token is kept in sessionStorage only, and not left in the page.
  const setToken = (t) => {
    store.set(TOKEN_KEY, t);
    $('#token').value = '';
    setText($('#token-state'), t ? 'token set' : 'no token');
  };
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken($('#token').value.trim() || store.get(TOKEN_KEY));
  });
  $('#token-forget').addEventListener('click', () => setToken(''));
  setToken(store.get(TOKEN_KEY));
  rememberBy(store.get(BY_KEY));

  $('#explain-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ name: $('#explain-name').value.trim(),
      client: $('#explain-client').value.trim(), type: $('#explain-type').value });
    setText($('#explain-error'), '');
    $('#explain-submit').disabled = true;
    try {
      renderExplain(await getJSON(`/v1/explain?${q}`));
    } catch (e) {
      $('#explain-result').hidden = true;
      setText($('#explain-error'), e.message);
    } finally {
      $('#explain-submit').disabled = false;
    }
  });

  every(STATUS_MS, pollStatus);
  every(SIDE_MS, pollRates);
  every(STATUS_MS, pollHistory); // with the overview: a change shows in both at once
}

// ---- explain -------------------------------------------------------------------------------

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// A value of a step, as text: lists joined, a dropped member as "address (why)".
function fmt(v, k = '') {
  if (v === null || v === undefined) return 'none';
  if (Array.isArray(v)) {
    if (!v.length) return 'none';
    if (k === 'distances') return v.map(([site, km]) => `${site} ${Math.round(km)} km`).join(', ');
    return v.map((x) => fmt(x)).join(', ');
  }
  if (isObject(v)) {
    if ('address' in v && 'why' in v) return `${v.address} (${v.why})`;
    return Object.entries(v).map(([kk, x]) => `${kk}: ${fmt(x, kk)}`).join('; ');
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

// Every field, known or not, as a definition list; objects (weights, the client's
// geography) nest.
function fields(entries) {
  return el('dl', { class: 'fields' }, entries.flatMap(([k, v]) =>
    [el('dt', {}, human(k)), el('dd', {}, isObject(v) && !('why' in v) ? fields(Object.entries(v)) : fmt(v, k))]));
}

function policyText(p) {
  const parts = [p.order];
  for (const f of ['failover', 'topology', 'nearest']) if (p[f]) parts.push(f);
  parts.push(`at most ${p.max_answers} answer${p.max_answers === 1 ? '' : 's'}`, `TTL ${p.ttl} s`);
  return parts.join(' · ');
}

function renderExplain(x) {
  const a = x.answer || {};
  const q = x.question || {};
  setText($('#explain-question'), `${q.name} ${q.type} from ${q.client}`);
  setText($('#explain-rcode'), `${a.rcode}${a.authoritative ? ' (authoritative)' : ''}`);
  setText($('#explain-scope'), a.ecs_scope === null || a.ecs_scope === undefined ? 'none' : `/${a.ecs_scope}`);
  const records = (list) => (list || []).map((r) => el('li', { class: 'mono' }, r));
  $('#explain-answer').replaceChildren(...records(a.answer));
  $('#explain-noanswer').hidden = (a.answer || []).length > 0;
  $('#explain-authority').replaceChildren(...records(a.authority));
  $('#explain-authority-box').hidden = !(a.authority || []).length;
  const meta = [['zone', x.zone], ['CNAME chain', (x.cname_chain || []).join(' → ')], ['pool', x.pool],
    ['policy', x.policy && policyText(x.policy)], ['no steps because', x.why]];
  $('#explain-meta').replaceChildren(...meta.filter(([, v]) => v).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  // The members as the pipeline saw them, one line each.
  $('#explain-members').replaceChildren(...(x.members || []).map((m) => el('li', {},
    el('span', { class: 'mono' }, m.address), ' ', badge(m.status),
    ` prio ${m.priority} · weight ${m.weight}${m.site ? ` · site ${m.site}` : ''}`,
    m.override ? ` · ${m.override.kind}${m.override.reason ? ` (${m.override.reason})` : ''}` : '',
    (m.checks || []).map((ch) => [' · ', el('span', { class: cls(ch.status), title: ch.last_result || null },
      `${ch.check}:${ch.status}`, ch.votes && ch.votes.length ? ` [${ch.votes.map((v) => `${v.node}=${v.status}`).join(' ')}]` : '')]))));
  $('#explain-members-box').hidden = !(x.members || []).length;
  $('#explain-steps').replaceChildren(...(x.steps || []).map((s) => {
    const rest = Object.entries(s).filter(([k]) => k !== 'step' && k !== 'note');
    return el('li', { class: 'step', 'data-step': s.step },
      el('span', { class: 'step-name' }, human(s.step)), ' ', el('span', { class: 'step-note' }, s.note || ''),
      rest.length ? fields(rest) : null);
  }));
  $('#explain-result').hidden = false;
}

init();
