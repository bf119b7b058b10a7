// modelgrid console. Models and live figures: GET /v1/console, polled. Playground: a streamed
// POST /v1/chat/completions read with fetch + ReadableStream. No framework and no build step.
// The DOM is built with textContent only (model names and condition messages come from users'
// resources), so the gateway's strict Content-Security-Policy needs no exception.

const POLL_MS = 1500;
const KEY_STORE = 'modelgrid.key'; // sessionStorage: gone when the tab closes
const PHASES = ['pending', 'scheduling', 'loading'];
const root = new URL('../', location.href); // the gateway, also behind a path prefix
const api = (path) => new URL(path, root).href;
const $ = (id) => document.getElementById(id);

const state = {
  auth: false,
  key: sessionStorage.getItem(KEY_STORE),
  models: [],
  timer: 0,
  controller: null,
  history: [],
  lastBody: null,
  version: '',
};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    el.setAttribute(k === 'cls' ? 'class' : k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const headers = (extra = {}) => (state.key ? { ...extra, authorization: `Bearer ${state.key}` } : extra);
const locked = () => state.auth && !state.key;

// ---- layout ---------------------------------------------------------------------------------

function show() {
  const view = location.hash === '#playground' ? 'playground' : 'models';
  $('login').hidden = !locked();
  $('forget').hidden = !(state.auth && state.key);
  for (const name of ['models', 'playground']) {
    $(name).hidden = locked() || view !== name;
    const link = $(`nav-${name}`);
    if (name === view && !locked()) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

// ---- key ------------------------------------------------------------------------------------

function useKey(event) {
  event.preventDefault();
  const key = $('key').value.trim();
  if (!key) return;
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  $('key').value = '';
  $('key-error').textContent = '';
  show();
  renderSnippets();
  poll();
}

function forget(message) {
  state.key = null;
  sessionStorage.removeItem(KEY_STORE);
  state.models = [];
  renderModels();
  $('key-error').textContent = message;
  show();
}

// ---- models ---------------------------------------------------------------------------------

async function poll() {
  clearTimeout(state.timer);
  if (!locked() && !document.hidden) {
    try {
      const resp = await fetch(api('v1/console'), { headers: headers(), cache: 'no-store' });
      if (resp.status === 401) {
        state.auth = true;
        forget(state.key ? 'The gateway did not accept this key.' : '');
      } else if (!resp.ok) {
        throw new Error(await errorMessage(resp));
      } else {
        state.models = (await resp.json()).models;
        renderModels();
        $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
        $('conn').textContent = state.version ? `gateway ${state.version}` : '';
      }
    } catch (err) {
      $('conn').textContent = `gateway unreachable: ${err.message}`;
    }
  }
  state.timer = setTimeout(poll, POLL_MS);
}

function renderModels() {
  $('no-models').hidden = state.models.length > 0;
  $('model-list').replaceChildren(...state.models.map(modelCard));
  renderModelChoice();
}

function modelCard(m) {
  const live = m.live;
  return h('article', { cls: 'card model', 'data-model': m.id, 'data-state': m.state },
    h('header', null, h('h3', null, m.id), h('span', { cls: `state state-${m.state}` }, m.state)),
    h('p', { cls: 'meta' }, m.aliases.length ? `also ${m.aliases.join(', ')} · ` : '', sourceLabel(m.source),
      live.gateways > 1 ? ` · figures of ${live.gateways} gateway replicas` : ''),
    poolTable(m.pools, m.backends),
    m.resources.map(resourceView),
    h('dl', { cls: 'figures' },
      figure('requests', 'requests/s (total)', `${num(live.requests_per_s)} (${live.requests_total})`),
      figure('errors', 'errors/s (total)', `${num(live.errors_per_s)} (${live.errors_total})`),
      figure('tokens', 'tokens/s', num(live.tokens_per_s)),
      figure('ttft', 'TTFT p50 / p95', percentiles(live.ttft_ms)),
      figure('latency', 'latency p50 / p95', percentiles(live.latency_ms)),
      figure('in-flight', 'in flight', m.in_flight)));
}

function sourceLabel(source) {
  return source.split(',').map((s) => (s === 'static' ? 'static backends'
    : `InferenceModel ${s.replace(/^kubernetes:/, '')}`)).join(' + ');
}

function poolTable(pools, backends) {
  const down = backends.filter((b) => !b.ready).length;
  return [
    h('table', null,
      h('thead', null, h('tr', null, h('th', null, 'pool'), h('th', null, 'accelerator'),
        h('th', null, 'engine'), h('th', null, 'ready'))),
      h('tbody', null, pools.map((p) => h('tr', null, h('td', null, p.name),
        h('td', null, p.accelerator || '—'), h('td', null, p.engine || '—'),
        h('td', null, `${p.ready}/${p.desired}`))))),
    down ? h('p', { cls: 'meta' }, `${down} of ${backends.length} backends not answering`) : null,
  ];
}

function resourceView(r) {
  const since = r.phase_since ? ` since ${new Date(r.phase_since).toLocaleString()}` : '';
  const t = r.time_to_ready;
  const bar = h('div', { cls: 'timeline', role: 'img', 'aria-label': 'time to ready by phase' },
    PHASES.map((p) => {
      const seg = h('span', { cls: `seg-${p}`, title: `${p}: ${seconds(t[p])}` });
      seg.style.flexGrow = String(t[p] || 0);
      return seg;
    }));
  return h('div', { cls: 'resource' },
    h('p', { cls: 'meta' }, `${r.resource}: ${r.phase}${since}`),
    t.total === null ? h('p', { cls: 'legend' }, 'not Ready yet')
      : [bar, h('div', { cls: 'legend' }, `ready after ${seconds(t.total)}: `,
        PHASES.map((p, i) => [i ? ' · ' : '', h('i', { cls: `swatch seg-${p}` }), `${p} ${seconds(t[p])}`]))],
    r.problems.length ? h('ul', { cls: 'problems' },
      r.problems.map((c) => h('li', null, `${c.type} (${c.reason}): ${c.message}`))) : null);
}

const figure = (key, label, value) => h('div', { 'data-figure': key }, h('dt', null, label), h('dd', null, value));
const num = (n) => (n === null || n === undefined ? '—'
  : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const ms = (v) => (v === null || v === undefined ? '—' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);
const percentiles = (p) => `${ms(p.p50)} / ${ms(p.p95)}`;
const seconds = (s) => (s === null || s === undefined ? '—' : `${s.toFixed(1)} s`);

// ---- playground -----------------------------------------------------------------------------

function renderModelChoice() {
  const select = $('model');
  const signature = state.models.map((m) => `${m.id}:${m.ready}`).join('|');
  if (select.dataset.signature === signature) return;
  select.dataset.signature = signature;
  const current = select.value;
  select.replaceChildren(...state.models.map((m) => h('option', { value: m.id, disabled: !m.ready },
    m.ready ? m.id : `${m.id} (unavailable)`)));
  const pick = state.models.find((m) => m.id === current && m.ready) || state.models.find((m) => m.ready);
  if (pick) select.value = pick.id;
  renderSnippets();
}

function chatBody(prompt) {
  return {
    model: $('model').value || 'MODEL',
    messages: [...state.history, { role: 'user', content: prompt }],
    temperature: Number($('temperature').value),
    max_tokens: Number($('max-tokens').value),
    stream: true,
    stream_options: { include_usage: true },
  };
}

async function send(event) {
  event.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || state.controller) return;
  const body = chatBody(text);
  state.lastBody = body;
  const reply = h('div', { cls: 'msg msg-assistant', 'aria-busy': 'true' });
  $('transcript').append(h('div', { cls: 'msg msg-user' }, text), reply);
  $('prompt').value = '';
  $('chat-error').textContent = '';
  $('usage').textContent = '';
  renderSnippets();
  const controller = (state.controller = new AbortController());
  setBusy(true);
  const started = performance.now();
  let ttft = null;
  let usage = null;
  let answer = '';
  try {
    const resp = await fetch(api('v1/chat/completions'), {
      method: 'POST',
      headers: headers({ 'content-type': 'application/json' }),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (resp.status === 401) forget('The gateway did not accept this key.');
    if (!resp.ok) throw new Error(await errorMessage(resp));
    for await (const data of sseData(resp.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        if (ttft === null) ttft = performance.now() - started;
        answer += delta.content;
        reply.textContent = answer;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    state.history.push(body.messages.at(-1), { role: 'assistant', content: answer });
  } catch (err) {
    $('chat-error').textContent = err.name === 'AbortError' ? 'Stopped.' : err.message;
  } finally {
    reply.removeAttribute('aria-busy');
    state.controller = null;
    setBusy(false);
    $('usage').textContent = usageLine(usage, ttft, performance.now() - started);
  }
}

async function* sseData(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        if (line.startsWith('data:')) yield line.slice(5).trim(); // ': keepalive' lines skip
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

async function errorMessage(resp) {
  try {
    return (await resp.json()).error.message;
  } catch {
    return `HTTP ${resp.status}`;
  }
}

function usageLine(usage, ttft, total) {
  const parts = [];
  if (usage) parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  if (ttft !== null) parts.push(`first token ${ms(ttft)}`);
  parts.push(`total ${ms(total)}`);
  if (usage && total > 0) parts.push(`${num(usage.completion_tokens / (total / 1000))} tokens/s`);
  return parts.join(' · ');
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').disabled = !busy;
}

function clearChat() {
  state.controller?.abort();
  state.history = [];
  state.lastBody = null;
  $('transcript').replaceChildren();
  $('usage').textContent = '';
  $('chat-error').textContent = '';
  renderSnippets();
}

// The request that Send would make (or the last one sent), never with the key itself.
function renderSnippets() {
  const typed = $('prompt').value.trim();
  const body = typed || !state.lastBody ? chatBody(typed || 'Hello!') : state.lastBody;
  const base = api('v1');
  const json = JSON.stringify(body, null, 2);
  $('curl').textContent = [
    `curl -N ${base}/chat/completions \\`,
    ...(state.auth ? ['  -H "Authorization: Bearer $MODELGRID_API_KEY" \\'] : []),
    '  -H "Content-Type: application/json" \\',
    `  -d '${json.replaceAll("'", "'\\''")}'`,
  ].join('\n');
  const py = (v) => JSON.stringify(v); // JSON strings and numbers are Python literals too
  $('python').textContent = [
    'import os',
    '',
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url=${py(base)}, api_key=${state.auth ? 'os.environ["MODELGRID_API_KEY"]' : 'os.environ.get("MODELGRID_API_KEY", "unused")'})`,
    'stream = client.chat.completions.create(',
    `    model=${py(body.model)},`,
    '    messages=[',
    ...body.messages.map((m) => `        {"role": ${py(m.role)}, "content": ${py(m.content)}},`),
    '    ],',
    `    temperature=${py(body.temperature)},`,
    `    max_tokens=${py(body.max_tokens)},`,
    '    stream=True,',
    '    stream_options={"include_usage": True},',
    ')',
    'for chunk in stream:',
    '    if chunk.choices and chunk.choices[0].delta.content:',
    '        print(chunk.choices[0].delta.content, end="", flush=True)',
    '    if chunk.usage:',
    '        print("\\n", chunk.usage)',
  ].join('\n');
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  window.addEventListener('hashchange', show);
  document.addEventListener('visibilitychange', poll);
  $('key-form').addEventListener('submit', useKey);
  $('forget').addEventListener('click', () => forget(''));
  $('chat-form').addEventListener('submit', send);
  $('stop').addEventListener('click', () => state.controller?.abort());
  $('clear').addEventListener('click', clearChat);
  for (const id of ['model', 'temperature', 'max-tokens', 'prompt']) $(id).addEventListener('input', renderSnippets);
  try {
    const info = await (await fetch(root, { cache: 'no-store' })).json(); // public: says if keys are on
    state.auth = Boolean(info.auth);
    state.version = info.version;
  } catch (err) {
    $('conn').textContent = `gateway unreachable: ${err.message}`;
  }
  show();
  renderSnippets();
  poll();
}

start();
