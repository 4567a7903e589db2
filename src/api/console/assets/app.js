// velochat operator console. Plain DOM, no dependencies. Visitor text only ever goes through
// textContent (never innerHTML), and every state change sends the page's CSRF token.
'use strict';

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const page = document.getElementById('page');
const statusLine = document.getElementById('status');
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// The operator's site picker (a site's own admin sees that site only, and has no picker).
const sitePicker = document.getElementById('site-picker');
const SITE_KEY = 'velochat-console-site';

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = CSRF;
  if (sitePicker && sitePicker.value && sitePicker.value !== 'default') headers['X-Velochat-Site'] = sitePicker.value;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) {
    window.location.assign('/console');
    throw new Error('signed out');
  }
  const json = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const message = json && json.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${response.status}`;
    say(message, true);
    throw new Error(message);
  }
  return json;
}

function say(message, isError = false) {
  statusLine.textContent = message;
  statusLine.className = isError ? 'error' : '';
}

const percent = (rate) => (rate === null || rate === undefined ? '—' : `${Math.round(rate * 1000) / 10} %`);
const seconds = (s) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}`;

/** A line chart of `series` ([{name, values: [number|null]}]) over `dates`; each point carries its value. */
function lineChart(id, title, dates, series, unit) {
  const width = 640, height = 180, pad = 34;
  const all = series.flatMap((s) => s.values).filter((v) => v !== null);
  const max = Math.max(unit === '%' ? 100 : 1, ...all);
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, dates.length - 1);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title });
  chart.append(svg('line', { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: 'axis' }));
  chart.append(svg('text', { x: 2, y: pad, class: 'tick' }, `${Math.round(max)}${unit}`));
  chart.append(svg('text', { x: 2, y: height - pad, class: 'tick' }, `0${unit}`));
  chart.append(svg('text', { x: pad, y: height - 8, class: 'tick' }, dates[0] || ''));
  chart.append(svg('text', { x: width - pad - 70, y: height - 8, class: 'tick' }, dates[dates.length - 1] || ''));
  series.forEach((s, n) => {
    const points = s.values.map((v, i) => (v === null ? null : [x(i), y(v)])).filter(Boolean);
    if (points.length > 1) chart.append(svg('polyline', { points: points.map((p) => p.join(',')).join(' '), class: `line s${n}` }));
    s.values.forEach((v, i) => {
      if (v === null) return;
      const dot = svg('circle', { cx: x(i), cy: y(v), r: 3.5, class: `dot s${n}`, 'data-series': s.name, 'data-date': dates[i], 'data-value': v });
      dot.append(svg('title', {}, `${dates[i]} ${s.name}: ${v}${unit}`));
      chart.append(dot);
    });
  });
  const legend = el('p', { class: 'legend' }, series.map((s, n) => el('span', { class: `key s${n}` }, s.name)));
  return el('figure', { 'data-chart': id }, el('figcaption', {}, title), chart, legend);
}

function card(title, ...body) {
  return el('section', { class: 'card' }, el('h3', {}, title), ...body);
}

function counts(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return el('p', { class: 'muted' }, 'none');
  return el('ul', {}, entries.map(([k, v]) => el('li', {}, `${k}: ${v}`)));
}

async function overview() {
  const data = await api('GET', '/admin/overview?days=30');
  const dates = data.days.map((d) => d.date);
  const pct = (v) => (v === null ? null : Math.round(v * 1000) / 10);
  const killSwitch = el('button', {
    id: 'kill-switch', class: data.killSwitch ? 'danger' : '',
    onclick: async () => {
      const next = !data.killSwitch;
      const question = next ? 'Turn the kill switch ON? Every visitor gets a static reply and nothing reaches OpenAI.' : 'Turn the kill switch OFF? The bot answers with the model again.';
      if (!window.confirm(question)) return;
      await api('PUT', '/admin/kill-switch', { enabled: next });
      say(`Kill switch ${next ? 'on' : 'off'}.`);
      render();
    },
  }, data.killSwitch ? 'Kill switch is ON — turn off' : 'Kill switch is off — turn on');
  const budget = Object.entries(data.budgetUsedRatio).map(([k, v]) => el('li', {}, `${k}: ${percent(v)}`));
  page.replaceChildren(
    el('h2', {}, 'Overview — last 30 days'),
    el('div', { class: 'cards' },
      card('Requests', el('p', { class: 'big', id: 'total-replies' }, data.totals.replies), el('p', { class: 'muted' }, `${data.totals.sessions} sessions`)),
      card('Fallbacks by reason', counts(data.totals.fallbackReasons)),
      card('Tokens', el('p', { class: 'big' }, data.totals.promptTokens + data.totals.completionTokens), el('p', { class: 'muted' }, `$${data.totals.costUsd.toFixed(4)}`)),
      card('Budget use', el('ul', {}, budget)),
      card('Circuit', el('p', { class: 'big', id: 'circuit' }, data.circuit)),
      card('Kill switch', el('p', { id: 'kill-state' }, data.killSwitch ? 'ON: static replies only' : 'off'), killSwitch)),
    lineChart('first-response', 'First-response latency (ms)', dates, [
      { name: 'p50', values: data.days.map((d) => d.firstResponseMs.p50 ?? null) },
      { name: 'p95', values: data.days.map((d) => d.firstResponseMs.p95 ?? null) }], ' ms'),
    lineChart('solved-rate', 'Solved without handoff', dates, [{ name: 'solved', values: data.days.map((d) => pct(d.solvedWithoutHandoffRate)) }], '%'),
    lineChart('repeat-rate', 'Repeat-question rate', dates, [{ name: 'repeat', values: data.days.map((d) => pct(d.repeatQuestionRate)) }], '%'),
  );
}

async function handoffs() {
  const data = await api('GET', '/admin/handoffs');
  const detail = el('section', { id: 'transcript', class: 'card' }, el('p', { class: 'muted' }, 'Choose a session to read its transcript.'));
  const open = async (id) => {
    const t = await api('GET', `/admin/sessions/${encodeURIComponent(id)}/transcript`);
    const release = el('button', {
      id: 'release', onclick: async () => {
        await api('POST', `/admin/sessions/${encodeURIComponent(id)}/release`);
        say(`${id} is the bot's again.`);
        render();
      },
    }, 'Release to the bot');
    // A reply goes to the visitor through the same route as Wix Chat's (the widget polls it),
    // signed with this operator's name.
    const reply = el('form', { id: 'reply', onsubmit: async (e) => {
      e.preventDefault();
      const text = reply.elements.text.value.trim();
      if (!text) return;
      await api('POST', `/sessions/${encodeURIComponent(id)}/messages`, { role: 'agent', text });
      say('Sent to the visitor.');
      await open(id);
    } }, el('textarea', { name: 'text', rows: 3, placeholder: 'Reply to the visitor', 'aria-label': 'Reply', required: true }),
    el('button', { type: 'submit' }, 'Send'));
    detail.replaceChildren(el('h3', {}, `Session ${id}`),
      el('ol', { class: 'turns' }, t.messages.map((m) => el('li', { class: `turn ${m.role}` },
        el('span', { class: 'who' }, m.role === 'agent' && m.author ? `agent (${m.author})` : m.role), el('span', { class: 'text' }, m.text)))),
      reply, release);
  };
  const rows = data.handoffs.map((h) => el('tr', { 'data-session': h.sessionId },
    el('td', {}, el('button', { class: 'link', onclick: () => open(h.sessionId) }, h.sessionId)),
    el('td', {}, h.reason), el('td', {}, seconds(h.waitingSeconds)),
    el('td', {}, el('span', { class: `badge ${h.slaState}` }, h.slaState))));
  page.replaceChildren(el('h2', {}, 'Handoffs — sessions a person owns'),
    rows.length ? el('table', {}, el('thead', {}, el('tr', {}, ['Session', 'Reason', 'Waiting', 'SLA'].map((h) => el('th', {}, h)))), el('tbody', {}, rows))
      : el('p', { class: 'muted', id: 'no-handoffs' }, 'Nobody is waiting for a person.'),
    detail);
}

async function knowledge() {
  const results = el('ol', { id: 'search-results' });
  const search = el('form', { id: 'search', onsubmit: async (e) => {
    e.preventDefault();
    const q = search.elements.q.value.trim();
    if (!q) return;
    const found = await api('GET', `/admin/kb/search?q=${encodeURIComponent(q)}&k=5`);
    results.replaceChildren(...(found.results.length ? found.results.map((r) => el('li', { 'data-id': r.id },
      el('strong', {}, r.title), ` ${r.id} · score `, el('span', { class: 'score' }, r.score.toFixed(2)), el('p', { class: 'passage' }, r.passage)))
      : [el('li', { class: 'muted' }, 'No passage passes the threshold: the bot would say its help content does not cover this.')]));
  } }, el('input', { name: 'q', placeholder: 'Ask as a visitor would', 'aria-label': 'Search' }), el('button', { type: 'submit' }, 'Search'));

  const editor = el('form', { id: 'document-form', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    const f = editor.elements;
    await api('PUT', `/admin/kb/documents/${encodeURIComponent(f.id.value.trim())}`, { title: f.title.value, body: f.body.value, url: f.url.value || null });
    say(`Saved ${f.id.value}.`);
    render();
  } }, el('h3', {}, 'Add or edit a document'), el('input', { name: 'id', placeholder: 'id (a-z, 0-9, . _ : -)', required: true }),
  el('input', { name: 'title', placeholder: 'Title', required: true }), el('input', { name: 'url', placeholder: 'https://… (optional)' }),
  el('textarea', { name: 'body', placeholder: 'Markdown or plain text', rows: 6, required: true }), el('button', { type: 'submit' }, 'Save'));

  const [pending, report] = await Promise.all([api('GET', '/admin/kb/suggestions?status=pending'), api('GET', '/admin/report?since=7d')]);
  // Documents a page at a time (the API's cursor), filtered by id or title.
  const docList = el('ul', { id: 'documents' });
  const docCount = el('p', { id: 'document-count', class: 'muted' });
  const more = el('button', { type: 'button', id: 'more-documents', class: 'link', hidden: true }, 'More documents');
  const filter = el('form', { id: 'document-filter', onsubmit: (e) => { e.preventDefault(); loadDocuments(false); } },
    el('input', { name: 'q', placeholder: 'Filter by id or title', 'aria-label': 'Filter documents' }), el('button', { type: 'submit' }, 'Filter'));
  let cursor = null;
  const docItem = (d) => el('li', { 'data-id': d.id }, el('strong', {}, d.title), ` ${d.id} `,
    el('button', { class: 'link', onclick: async () => {
      const full = await api('GET', `/admin/kb/documents/${encodeURIComponent(d.id)}`);
      const f = editor.elements;
      [f.id.value, f.title.value, f.url.value, f.body.value] = [full.id, full.title, full.url || '', full.body];
    } }, 'edit'),
    el('button', { class: 'link danger', onclick: async () => {
      if (!window.confirm(`Delete ${d.id}?`)) return;
      await api('DELETE', `/admin/kb/documents/${encodeURIComponent(d.id)}`);
      render();
    } }, 'delete'));
  async function loadDocuments(append) {
    const q = filter.elements.q.value.trim();
    const params = new URLSearchParams({ limit: '50' });
    if (q) params.set('q', q);
    if (append && cursor) params.set('cursor', cursor);
    const docs = await api('GET', `/admin/kb/documents?${params}`);
    if (!append) docList.replaceChildren();
    docList.append(...docs.documents.map(docItem));
    cursor = docs.nextCursor;
    more.hidden = !cursor;
    docCount.textContent = `${docList.children.length} of ${docs.total} document${docs.total === 1 ? '' : 's'}${q ? ` matching “${q}”` : ''}`;
  }
  more.addEventListener('click', () => loadDocuments(true));
  await loadDocuments(false);
  const suggestions = el('div', { id: 'suggestions' }, pending.suggestions.length ? pending.suggestions.map((s) => {
    const form = el('form', { class: 'card suggestion', 'data-id': s.id, onsubmit: async (e) => {
      e.preventDefault();
      const title = form.elements.title.value.trim();
      await api('POST', `/admin/kb/suggestions/${s.id}/approve`, { ...(title ? { title } : {}), body: form.elements.body.value });
      say('Approved: it is in the knowledge base now.');
      render();
    } }, el('p', { class: 'question' }, s.question), el('input', { name: 'title', placeholder: 'Title (default: the answer\'s first sentence)', 'aria-label': 'Title' }),
    el('textarea', { name: 'body', rows: 3, 'aria-label': 'Answer' }, s.answer), el('button', { type: 'submit' }, 'Approve'),
    el('button', { type: 'button', class: 'danger', onclick: async () => { await api('POST', `/admin/kb/suggestions/${s.id}/reject`); render(); } }, 'Reject'));
    return form;
  }) : el('p', { class: 'muted' }, 'No pending suggestions.'));
  const unanswered = el('ul', { id: 'unanswered' }, report.unansweredQuestions.length
    ? report.unansweredQuestions.map((g) => el('li', {}, el('span', { class: 'count' }, `${g.count} ×`), ' ', g.question))
    : el('li', { class: 'muted' }, 'none this week'));
  page.replaceChildren(el('h2', {}, 'Knowledge'), el('h3', {}, 'Search as the bot searches'), search, results,
    el('h3', {}, 'Pending suggestions'), suggestions, el('h3', {}, 'Unanswered questions (7 days)'), unanswered,
    el('h3', {}, 'Documents'), filter, docCount, docList, more, editor);
}

async function review() {
  const today = new Date().toISOString().slice(0, 10);
  const weekAgo = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10);
  const out = el('div', { id: 'report' });
  // The page is ready once its first report is shown, not when it is asked for.
  let showReport;
  const form = el('form', { id: 'range', onsubmit: showReport = async (e) => {
    e?.preventDefault();
    const r = await api('GET', `/admin/report?from=${form.elements.from.value}&to=${form.elements.to.value}`);
    const h = r.handoffs, s = r.suggestions;
    out.replaceChildren(
      el('div', { class: 'cards' },
        card('Replies', el('p', { class: 'big', id: 'review-replies' }, r.replies), el('p', { class: 'muted' }, `${r.sessions} sessions`)),
        card('First response', el('p', {}, `p50 ${r.firstResponseMs.p50 ?? '—'} ms · p95 ${r.firstResponseMs.p95 ?? '—'} ms`)),
        card('Solved without handoff', el('p', { class: 'big' }, percent(r.solvedWithoutHandoffRate))),
        card('Repeat questions', el('p', { class: 'big' }, percent(r.repeatQuestionRate))),
        card('Handoffs', el('p', {}, `${h.handoffs} started, ${h.answered} answered, p50 wait ${h.firstAgentResponseSecondsP50 ?? '—'} s, p90 ${h.firstAgentResponseSecondsP90 ?? '—'} s, ${h.slaBreaches} SLA breaches`)),
        card('Suggestions', el('p', {}, `${s.created} created, ${s.approved} approved, ${s.rejected} rejected, ${s.pending} pending`)),
        card('Cost', el('p', {}, `${r.promptTokens + r.completionTokens} tokens, $${r.costUsd.toFixed(4)}`))),
      el('div', { class: 'cards' }, card('Replies by source', counts(r.bySource)), card('Fallback reasons', counts(r.fallbackReasons)),
        card('Handoff reasons', counts(r.handoffReasons)),
        card('Spend anomalies', r.spendAnomalies.length ? el('ul', {}, r.spendAnomalies.map((a) => el('li', {}, `${a.hour}: ${a.lastHourTokens} tokens (baseline ${a.baselineHourlyTokens})`))) : el('p', { class: 'muted' }, 'none'))),
      el('h3', {}, 'By intent'),
      el('table', {}, el('thead', {}, el('tr', {}, ['Intent', 'Replies', 'Low confidence', 'Fallbacks', 'Handoffs', 'Tokens', 'Cost'].map((t) => el('th', {}, t)))),
        el('tbody', {}, r.intents.map((i) => el('tr', {}, [i.intent, i.replies, i.lowConfidence, i.fallbacks, i.handoffs, i.promptTokens + i.completionTokens, `$${i.costUsd.toFixed(4)}`].map((c) => el('td', {}, c)))))),
      el('h3', {}, 'Unanswered questions'),
      el('ul', {}, r.unansweredQuestions.length ? r.unansweredQuestions.map((g) => el('li', {}, `${g.count} × `, g.question)) : el('li', { class: 'muted' }, 'none')));
  } }, el('label', {}, 'From ', el('input', { type: 'date', name: 'from', value: weekAgo })),
  el('label', {}, ' to ', el('input', { type: 'date', name: 'to', value: today })), el('button', { type: 'submit' }, 'Show'));
  page.replaceChildren(el('h2', {}, 'Weekly review'), form, out);
  await showReport();
}

const PAGES = { overview, handoffs, knowledge, review };

async function render() {
  const name = (window.location.hash || '#overview').slice(1);
  const show = PAGES[name] || overview;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.page === name);
  document.body.dataset.page = name;
  document.body.dataset.ready = 'false';
  try {
    await show();
  } catch (error) {
    if (!statusLine.textContent) say(String(error.message || error), true);
  } finally {
    document.body.dataset.ready = 'true';
  }
}

/** Fills the operator's picker from the registry; the choice lasts for the browser tab. */
async function loadSites() {
  if (!sitePicker) return;
  const { sites } = await api('GET', '/admin/sites');
  const chosen = sessionStorage.getItem(SITE_KEY);
  sitePicker.replaceChildren(...sites.map((s) => el('option', { value: s.id }, s.id === s.name ? s.id : `${s.name} (${s.id})`)));
  sitePicker.value = sites.some((s) => s.id === chosen) ? chosen : 'default';
  sitePicker.dataset.site = sitePicker.value;
  sitePicker.addEventListener('change', () => {
    sessionStorage.setItem(SITE_KEY, sitePicker.value);
    sitePicker.dataset.site = sitePicker.value;
    say('');
    render();
  });
}

window.addEventListener('hashchange', () => { say(''); render(); });
loadSites().catch((error) => say(String(error.message || error), true)).finally(render);
