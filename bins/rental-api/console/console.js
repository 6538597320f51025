// The rental console: one page, no framework, no build step. Every figure shown is a value of an API answer
// (formatted, never recomputed); every error shown is the message of the API's error envelope. Tokens live in
// this closure only (never in storage any script could read): a reload asks for the login again.
'use strict';
(function () {
  const PAGE_SIZE = 10;
  const SYSTEM_REFRESH_MS = 2000;
  const SYSTEM_POINTS = 150;
  const DEAD_JOBS_REFRESH_MS = 10000;

  const session = { access: null, refresh: null, user: null };
  const timers = new Set();
  let currentView = null;
  let down = null; // the back-off loop while the API cannot be reached

  const $ = (id) => document.getElementById(id);

  // Builds an element. Text always goes in as text nodes: nothing the API returns is ever parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // ---- formatting (display only) ----------------------------------------------------------------------------
  const dateTime = (s) => (s ? new Date(s).toLocaleString() : '—');
  const num = (v, digits) => (v === null || v === undefined ? '—' : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits ?? 2 }));
  const pct = (v) => (v === null || v === undefined ? '—' : (Number(v) * 100).toLocaleString(undefined, { maximumFractionDigits: 2 }) + ' %');
  function fractionDigits(currency) {
    try { return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits; } catch { return 2; }
  }
  function money(minor, currency) {
    if (minor === null || minor === undefined) return '—';
    const digits = fractionDigits(currency);
    const major = Number(minor) / 10 ** digits;
    try { return major.toLocaleString(undefined, { style: 'currency', currency }); } catch { return `${major} ${currency}`; }
  }
  const isoDate = (d) => d.toISOString().slice(0, 10);
  function localMidnight(offsetDays) {
    const d = new Date();
    d.setHours(0, 0, 0, 0);
    d.setDate(d.getDate() + offsetDays);
    return d;
  }

  // ---- the API ----------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message, code) { super(message); this.status = status; this.code = code; }
  }

  async function envelope(res) {
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) return { message: body.error.message, code: body.error.code };
    } catch { /* not JSON */ }
    return { message: `The server answered ${res.status} ${res.statusText}.`, code: null };
  }

  async function send(path, method, body) {
    const headers = { Accept: 'application/json' };
    if (session.access) headers.Authorization = `Bearer ${session.access}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  }

  let refreshing = null;
  async function refreshTokens() {
    if (!session.refresh) return false;
    refreshing = refreshing || (async () => {
      try {
        const res = await send('/api/v1/auth/refresh', 'POST', { refresh_token: session.refresh });
        if (!res.ok) return false;
        const t = await res.json();
        session.access = t.access_token;
        session.refresh = t.refresh_token;
        return true;
      } catch { return false; } finally { setTimeout(() => { refreshing = null; }, 0); }
    })();
    return refreshing;
  }

  // One call. A 401 is retried once after spending the refresh token; when that fails too the session is over
  // and the login comes back (once: no loop). A network failure raises the "cannot be reached" banner.
  async function api(path, { method = 'GET', body, raw = false } = {}) {
    let res;
    try {
      res = await send(path, method, body);
      if (res.status === 401 && session.access && (await refreshTokens())) res = await send(path, method, body);
    } catch {
      apiDown();
      throw new ApiError(0, 'The server cannot be reached.', 'unreachable');
    }
    apiUp();
    if (res.status === 401 && session.access) {
      const { message } = await envelope(res);
      expire(message);
      throw new ApiError(401, message, 'unauthorized');
    }
    if (!res.ok) {
      const { message, code } = await envelope(res);
      throw new ApiError(res.status, message, code);
    }
    if (raw) return res;
    return res.status === 204 ? null : res.json();
  }

  function banner(text) {
    const b = $('banner');
    b.textContent = text || '';
    b.hidden = !text;
  }

  function apiDown() {
    if (down) return;
    down = { delay: 1000, timer: null };
    const attempt = async () => {
      let ok = false;
      try { ok = (await fetch('/health/live', { cache: 'no-store' })).ok; } catch { ok = false; }
      if (!down) return;
      if (ok) { apiUp(); if (currentView) show(currentView); return; }
      down.delay = Math.min(down.delay * 2, 30000);
      schedule();
    };
    const schedule = () => {
      banner(`The server cannot be reached. Retrying in ${Math.round(down.delay / 1000)} s…`);
      down.timer = setTimeout(attempt, down.delay);
    };
    schedule();
  }

  function apiUp() {
    if (!down) return;
    clearTimeout(down.timer);
    down = null;
    banner('');
  }

  // ---- session and views ------------------------------------------------------------------------------------
  function stopTimers() {
    for (const t of timers) clearInterval(t);
    timers.clear();
  }

  function every(ms, fn) {
    const t = setInterval(fn, ms);
    timers.add(t);
    return t;
  }

  function hideAll() {
    for (const id of ['login', 'customer', 'desk', 'business', 'system']) $(`view-${id}`).hidden = true;
  }

  function expire(message) {
    session.access = session.refresh = session.user = null;
    details.clear();
    stopTimers();
    currentView = null;
    hideAll();
    $('nav').hidden = true;
    $('who').hidden = true;
    $('view-login').hidden = false;
    $('login-error').textContent = `Your session has ended (${message}). Log in again.`;
    $('login-email').focus();
  }

  const isAdmin = (u) => u.is_superuser || u.roles.includes('admin');
  const isStaff = (u) => isAdmin(u) || u.roles.includes('staff');

  function views(u) {
    if (isAdmin(u)) return ['desk', 'business', 'system'];
    if (isStaff(u)) return ['desk', 'business'];
    return [];
  }

  function show(view) {
    stopTimers();
    hideAll();
    currentView = view;
    for (const b of document.querySelectorAll('#nav button')) {
      if (b.dataset.view === view) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
    }
    $(`view-${view}`).hidden = false;
    ({ customer: showCustomer, desk: showDesk, business: showBusiness, system: showSystem })[view]();
  }

  async function login(event) {
    event.preventDefault();
    const error = $('login-error');
    error.textContent = '';
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    if (!email || !password) { error.textContent = 'Give the e-mail and the password.'; return; }
    try {
      const t = await api('/api/v1/auth/login', { method: 'POST', body: { email, password } });
      session.access = t.access_token;
      session.refresh = t.refresh_token;
      session.user = await api('/api/v1/users/me');
    } catch (e) {
      session.access = session.refresh = null;
      error.textContent = e.message;
      return;
    }
    $('login-password').value = '';
    $('who-name').textContent = `${session.user.full_name} (${session.user.email})`;
    $('who').hidden = false;
    const allowed = views(session.user);
    for (const b of document.querySelectorAll('#nav button')) b.hidden = !allowed.includes(b.dataset.view);
    $('nav').hidden = allowed.length === 0;
    show(allowed.length ? (isAdmin(session.user) ? 'system' : 'desk') : 'customer');
    $('main').focus();
  }

  async function logout() {
    const refresh = session.refresh;
    if (refresh) { try { await send('/api/v1/auth/logout', 'POST', { refresh_token: refresh }); } catch { /* gone anyway */ } }
    expire('logged out');
    $('login-error').textContent = '';
  }

  // ---- lists with pages -------------------------------------------------------------------------------------
  // A paged list: at most PAGE_SIZE rows in the DOM, the API's own `total` and `pages`.
  function pagedList(container, { load, columns, empty, rowActions }) {
    let page = 1;
    async function render() {
      let listing;
      try {
        listing = await load(page);
      } catch (e) {
        container.replaceChildren(el('p', { class: 'error', role: 'alert', text: `Error: ${e.message}` }));
        return;
      }
      if (listing.items.length === 0 && page > 1) { page = Math.max(1, listing.pages || 1); return render(); }
      if (listing.items.length === 0) { container.replaceChildren(el('p', { class: 'empty', text: empty })); return; }
      const rows = await Promise.all(listing.items.map((item) => columns.row(item)));
      const table = el('table', {},
        el('thead', {}, el('tr', {}, columns.head.map((h) => el('th', { scope: 'col', class: h.num ? 'num' : null, text: h.label })),
          rowActions ? el('th', { scope: 'col', text: 'Actions' }) : null)),
        el('tbody', {}, listing.items.map((item, i) => el('tr', { 'data-id': item.id },
          rows[i].map((c, j) => el('td', { class: columns.head[j].num ? 'num' : null }, c)),
          rowActions ? el('td', {}, rowActions(item, render)) : null))));
      const pager = el('div', { class: 'pager' },
        el('button', { type: 'button', disabled: page <= 1, onclick: () => { page -= 1; render(); } }, 'Previous page'),
        el('span', { text: `Page ${listing.page} of ${Math.max(1, listing.pages)} (${listing.total} in all)` }),
        el('button', { type: 'button', disabled: page >= listing.pages, onclick: () => { page += 1; render(); } }, 'Next page'));
      container.replaceChildren(table, pager);
    }
    render();
    return render;
  }

  // The order's detail (customer, products), for the columns an order list does not carry. An order's customer
  // and lines do not change with its status, so each order's detail is asked for once per session: a desk that
  // reloads its three lists after every action then costs three calls, not thirty.
  const details = new Map();
  function orderDetail(id) {
    if (!details.has(id)) details.set(id, api(`/api/v1/rentals/${id}`).catch((e) => { details.delete(id); throw e; }));
    return details.get(id);
  }

  async function orderRow(order) {
    let customer = '(customer unavailable)';
    let products = '';
    try {
      const d = await orderDetail(order.id);
      if (d.customer) customer = `${d.customer.full_name} <${d.customer.email}>`;
      products = d.lines.map((l) => {
        const p = d.products.find((x) => x.id === l.product_id);
        return `${l.quantity} × ${p ? p.name : l.product_id}`;
      }).join(', ');
    } catch (e) { customer = `Error: ${e.message}`; }
    return [customer, products, dateTime(order.starts_at), dateTime(order.ends_at), order.status.replace('_', ' '),
      money(order.total_minor, order.currency), order.notes || ''];
  }
  const ORDER_HEAD = [{ label: 'Customer' }, { label: 'Items' }, { label: 'Starts' }, { label: 'Ends' }, { label: 'Status' },
    { label: 'Total', num: true }, { label: 'Notes' }];

  // ---- desk -------------------------------------------------------------------------------------------------
  const deskLists = [];

  function transitionButton(order, label, action, done) {
    return el('button', {
      type: 'button', 'data-action': action, 'aria-label': `${label} order ${order.id}`,
      onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        const status = $('desk-status');
        try {
          await api(`/api/v1/rentals/${order.id}/${action}`, { method: 'POST', body: {} });
          status.className = 'status';
          status.textContent = `${label}: done for order ${order.id}.`;
          for (const refresh of deskLists) refresh();
        } catch (e) {
          status.className = 'error';
          status.textContent = `Error: ${e.message}`;
          button.disabled = false;
          if (done) done();
        }
      },
    }, label);
  }

  function showDesk() {
    $('desk-status').textContent = '';
    const tomorrow = localMidnight(1).toISOString();
    const q = (params, page) => `/api/v1/rentals?${new URLSearchParams({ ...params, sort: 'starts_at', page, per_page: PAGE_SIZE })}`;
    deskLists.length = 0;
    deskLists.push(pagedList($('pickups'), {
      load: (page) => api(q({ status: 'reserved', to: tomorrow }, page)),
      columns: { head: ORDER_HEAD, row: orderRow },
      empty: 'No pickups due.',
      rowActions: (o) => [transitionButton(o, 'Pick up', 'pickup'), ' ', transitionButton(o, 'Cancel', 'cancel')],
    }));
    deskLists.push(pagedList($('returns'), {
      load: (page) => api(q({ status: 'picked_up', ends_before: tomorrow, overdue: 'false' }, page)),
      columns: { head: ORDER_HEAD, row: orderRow },
      empty: 'No returns due today.',
      rowActions: (o) => [transitionButton(o, 'Return', 'return')],
    }));
    deskLists.push(pagedList($('overdue'), {
      load: (page) => api(q({ overdue: 'true' }, page)),
      columns: { head: ORDER_HEAD, row: orderRow },
      empty: 'No overdue rentals.',
      rowActions: (o) => [transitionButton(o, 'Return', 'return')],
    }));
    loadProducts();
  }

  async function loadProducts() {
    const select = $('avail-product');
    try {
      const listing = await api('/api/v1/products?per_page=100&sort=name');
      select.replaceChildren(...listing.items.map((p) => el('option', { value: p.id, text: `${p.name} (${p.sku})` })));
      if (listing.items.length) showAvailability();
      else $('avail-strip').replaceChildren(el('p', { class: 'empty', text: 'No products.' }));
    } catch (e) {
      $('avail-strip').replaceChildren(el('p', { class: 'error', text: `Error: ${e.message}` }));
    }
  }

  async function showAvailability(event) {
    if (event) event.preventDefault();
    const strip = $('avail-strip');
    const id = $('avail-product').value;
    if (!id) return;
    const from = new Date(`${isoDate(new Date())}T00:00:00Z`);
    const to = new Date(from.getTime() + Number($('avail-weeks').value) * 7 * 86400000);
    try {
      const a = await api(`/api/v1/products/${id}/availability?${new URLSearchParams({ from: from.toISOString(), to: to.toISOString() })}`);
      strip.replaceChildren(
        el('p', { text: `Capacity ${a.capacity}; least free over the period: ${a.available}. Each day shows the least free quantity that day (UTC).` }),
        el('ol', { class: 'strip', 'aria-label': 'Free quantity per day' }, a.days.map((d) => {
          const kind = d.available <= 0 ? 'none' : d.available < a.capacity ? 'some' : 'all';
          const word = { none: 'none free', some: 'some free', all: 'all free' }[kind];
          return el('li', { class: `day ${kind}`, title: `${d.date}: ${d.available} free (${word})` },
            d.date.slice(5), el('b', { text: String(d.available) }));
        })));
    } catch (e) {
      strip.replaceChildren(el('p', { class: 'error', role: 'alert', text: `Error: ${e.message}` }));
    }
  }

  // ---- customer ---------------------------------------------------------------------------------------------
  function showCustomer() {
    pagedList($('customer-rentals'), {
      load: (page) => api(`/api/v1/rentals?${new URLSearchParams({ page, per_page: PAGE_SIZE })}`),
      columns: { head: ORDER_HEAD, row: orderRow },
      empty: 'You have no rentals.',
    });
  }

  // ---- charts -----------------------------------------------------------------------------------------------
  function chartBox(container, title, unit) {
    const now = el('span', { class: 'now', 'aria-live': 'off' });
    const plot = el('div', { class: 'plot', role: 'img', 'aria-label': title });
    const box = el('figure', { class: 'chart-box' }, el('h4', {}, title, ' ', now), plot);
    container.append(box);
    return { box, now, plot, unit };
  }

  function chartWidth(node, max) {
    return Math.max(300, Math.min(max || 560, (node.parentElement || node).clientWidth - 16 || 360));
  }

  // Bars start at zero, so that their lengths compare.
  const fromZero = { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };

  function lineChart(target, series, opts = {}) {
    if (!window.uPlot) return null;
    return new window.uPlot({
      width: chartWidth(target, opts.maxWidth), height: opts.height || 180,
      scales: { x: { time: opts.time !== false } },
      series: [{}, ...series.map((s, i) => ({ label: s, stroke: ['#0b5cad', '#a40e26', '#1a7f37', '#9a6700'][i % 4], width: 2, dash: i % 2 ? [6, 3] : undefined, spanGaps: false }))],
      axes: opts.axes || [{}, { size: 60 }],
      legend: { show: true },
      ...(opts.extra || {}),
    }, [[], ...series.map(() => [])], target);
  }

  // ---- business ---------------------------------------------------------------------------------------------
  let businessCharts = [];

  function showBusiness() {
    const from = $('range-from');
    const to = $('range-to');
    if (!from.value) from.value = isoDate(localMidnight(-29));
    if (!to.value) to.value = isoDate(localMidnight(1));
    loadStats();
    loadBusiness();
  }

  // The dashboard's figures, labelled. Each figure carries the API's raw value and its path in the answer
  // (`data-key`, `data-value`): the text is that value formatted, never a figure computed here.
  const STATUS_LABELS = { quote: 'Quotes', reserved: 'Reserved', picked_up: 'Picked up', returned: 'Returned', closed: 'Closed', cancelled: 'Cancelled' };
  function figure(key, label, value, text) {
    return el('div', { class: 'figure', 'data-key': key, 'data-value': value === null || value === undefined ? '' : String(value) },
      el('dt', { text: label }), el('dd', { text }));
  }
  function figureGroup(title, figures) {
    return el('section', { class: 'figure-group', 'aria-label': title }, el('h4', { text: title }), el('dl', { class: 'figures' }, figures));
  }
  function dashboardFigures(stats) {
    const u = stats.users || {};
    const r = stats.rentals || {};
    const t = stats.utilization || {};
    const count = (key, label, value) => figure(key, label, value, num(value, 0));
    const groups = [
      figureGroup('Users', [
        count('users.total', 'All users', u.total), count('users.active', 'Active', u.active),
        count('users.inactive', 'Deactivated', u.inactive), count('users.superusers', 'Superusers', u.superusers),
        count('users.new_today', 'New today (UTC)', u.new_today), count('users.new_this_week', 'New in the last 7 days', u.new_this_week),
      ]),
      figureGroup('Rentals', [
        ...(r.by_status || []).map((s) => count(`rentals.by_status.${s.status}`, STATUS_LABELS[s.status] || s.status, s.count)),
        count('rentals.active_now', 'Out with customers now', r.active_now), count('rentals.overdue', 'Overdue', r.overdue),
        count('rentals.due_back_today', 'Due back today (UTC)', r.due_back_today),
      ]),
      ...(stats.revenue || []).map((c) => figureGroup(`Revenue in ${c.currency} (open and paid invoices)`, [
        figure(`revenue.${c.currency}.today_minor`, 'Issued today (UTC)', c.today_minor, money(c.today_minor, c.currency)),
        figure(`revenue.${c.currency}.this_month_minor`, 'This month', c.this_month_minor, money(c.this_month_minor, c.currency)),
        figure(`revenue.${c.currency}.last_30_days_minor`, 'Last 30 days', c.last_30_days_minor, money(c.last_30_days_minor, c.currency)),
      ])),
      figureGroup('Utilisation now', [
        count('utilization.held_now', 'Units held now', t.held_now), count('utilization.capacity', 'Capacity (units)', t.capacity),
        figure('utilization.utilization_now', 'Share held', t.utilization_now, pct(t.utilization_now)),
      ]),
    ];
    if (!(stats.revenue || []).length) groups.splice(2, 0, el('p', { class: 'empty', text: 'No revenue recorded yet.' }));
    return [el('p', { class: 'status', 'data-generated-at': stats.generated_at, text: `Figures as of ${dateTime(stats.generated_at)} (cached by the server for up to a minute).` }), ...groups];
  }

  async function loadStats() {
    const target = $('stats');
    try {
      const stats = await api('/api/v1/dashboard/stats');
      target.replaceChildren(...dashboardFigures(stats));
    } catch (e) {
      target.replaceChildren(el('p', { class: e.status === 404 ? 'unavailable' : 'error', role: 'status',
        text: e.status === 404 ? 'Dashboard figures are not available on this server (GET /api/v1/dashboard/stats is not there).' : `Error: ${e.message}` }));
    }
  }

  async function loadBusiness(event) {
    if (event) event.preventDefault();
    const from = $('range-from').value;
    const to = $('range-to').value;
    const error = $('business-error');
    error.textContent = '';
    for (const c of businessCharts) c.destroy();
    businessCharts = [];
    const range = new URLSearchParams({ from, to });
    for (const a of document.querySelectorAll('[data-export]')) a.href = `/api/v1/exports/${a.dataset.export}.csv?${range}`;
    const [revenue, popular, util] = await Promise.allSettled([
      api(`/api/v1/analytics/revenue?${range}`),
      api(`/api/v1/analytics/popular-products?${new URLSearchParams({ from, to, limit: 10 })}`),
      api(`/api/v1/analytics/utilization?${new URLSearchParams({ from, to, limit: PAGE_SIZE * 2 })}`),
    ]);
    const failed = [revenue, popular, util].find((r) => r.status === 'rejected');
    if (failed) error.textContent = `Error: ${failed.reason.message}`;
    // A part the API refused shows nothing rather than the previous window's figures.
    const sections = [[revenue, drawRevenue, ['revenue-chart', 'revenue-table']], [popular, drawPopular, ['popular-chart', 'popular-table']], [util, drawUtilisation, ['util-table']]];
    for (const [result, draw, ids] of sections) {
      if (result.status === 'fulfilled') draw(result.value);
      else {
        for (const id of ids) {
          $(id).replaceChildren(...(id.endsWith('table') ? [el('p', { class: 'error', text: `Error: ${result.reason.message}` })] : []));
          delete $(id).dataset.points;
        }
      }
    }
  }

  function drawRevenue(report) {
    const chart = $('revenue-chart');
    chart.replaceChildren();
    const rows = [];
    for (const c of report.currencies) for (const d of c.days) rows.push([d.date, c.currency, d.total_minor, d.count]);
    $('revenue-table').replaceChildren(rows.length === 0 ? el('p', { class: 'empty', text: 'No revenue in this range.' }) :
      el('table', { 'aria-label': 'Revenue per day' }, el('thead', {}, el('tr', {}, ['Day', 'Currency', 'Revenue', 'Invoices'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, rows.map(([d, cur, minor, count]) => el('tr', { 'data-day': d, 'data-currency': cur, 'data-minor': minor },
          el('td', { text: d }), el('td', { text: cur }), el('td', { class: 'num', text: money(minor, cur) }), el('td', { class: 'num', text: num(count) }))))),
      el('p', {}, report.currencies.map((c) => `Total ${c.currency}: ${money(c.total_minor, c.currency)} over ${c.count} invoice(s). `)));
    if (rows.length === 0) return;
    // The x axis is every day of the API's window; a day the API does not list had no revenue and has no bar.
    const days = [];
    for (let t = Date.parse(`${report.from}T00:00:00Z`); t < Date.parse(`${report.to}T00:00:00Z`); t += 86400000) days.push(new Date(t).toISOString().slice(0, 10));
    const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const data = [xs, ...report.currencies.map((c) => days.map((d) => {
      const day = c.days.find((x) => x.date === d);
      return day ? day.total_minor / 10 ** fractionDigits(c.currency) : null;
    }))];
    const colours = ['#0b5cad', '#a40e26', '#1a7f37', '#9a6700'];
    const plot = lineChart(chart, report.currencies.map((c) => `Revenue (${c.currency})`), {
      maxWidth: 900,
      extra: {
        tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
        series: [{}, ...report.currencies.map((c, i) => ({ label: `Revenue (${c.currency})`, stroke: colours[i % 4], fill: `${colours[i % 4]}66`,
          paths: window.uPlot.paths.bars({ size: [0.8 / report.currencies.length, 40] }), points: { show: false } }))],
        scales: { x: { time: true, range: [xs[0] - 43200, xs[xs.length - 1] + 43200] }, y: fromZero },
      },
    });
    if (!plot) return;
    plot.setData(data);
    chart.dataset.points = JSON.stringify(report.currencies.map((c) => c.days.map((d) => [d.date, d.total_minor])));
    businessCharts.push(plot);
  }

  function drawPopular(report) {
    const chart = $('popular-chart');
    chart.replaceChildren();
    const items = report.items;
    $('popular-table').replaceChildren(items.length === 0 ? el('p', { class: 'empty', text: 'Nothing rented in this range.' }) :
      el('table', { 'aria-label': 'Popular products' }, el('thead', {}, el('tr', {}, ['Rank', 'Product', 'Quantity', 'Rentals', 'Revenue'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, items.map((p, i) => el('tr', { 'data-product': p.product_id, 'data-quantity': p.quantity },
          el('td', { text: String(i + 1) }), el('td', { text: p.name }), el('td', { class: 'num', text: num(p.quantity) }),
          el('td', { class: 'num', text: num(p.rental_count) }), el('td', { class: 'num', text: money(p.revenue_minor, p.currency) }))))));
    if (items.length === 0 || !window.uPlot) return;
    const names = items.map((p) => p.name);
    const plot = lineChart(chart, ['Quantity rented'], {
      time: false,
      maxWidth: 900,
      axes: [{ values: (u, splits) => splits.map((s) => (Number.isInteger(s) && names[s] !== undefined ? names[s].slice(0, 14) : '')), rotate: 0 }, { size: 50 }],
      extra: { series: [{}, { label: 'Quantity rented', fill: 'rgba(11,92,173,0.35)', stroke: '#0b5cad', paths: window.uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }],
        scales: { x: { time: false, range: [-0.5, items.length - 0.5] }, y: fromZero } },
    });
    plot.setData([items.map((_, i) => i), items.map((p) => p.quantity)]);
    chart.dataset.points = JSON.stringify(items.map((p) => [p.product_id, p.quantity]));
    businessCharts.push(plot);
  }

  function drawUtilisation(report) {
    $('util-table').replaceChildren(report.items.length === 0 ? el('p', { class: 'empty', text: 'No products.' }) :
      el('table', {}, el('thead', {}, el('tr', {}, [['Product'], ['Capacity', 1], ['Unit-hours rented', 1], ['Utilisation', 1]].map(([h, n]) => el('th', { scope: 'col', class: n ? 'num' : null, text: h })))),
        el('tbody', {}, report.items.map((p) => el('tr', { 'data-product': p.product_id },
          el('td', { text: p.name }), el('td', { class: 'num', text: num(p.capacity) }),
          el('td', { class: 'num', text: num(p.rented_unit_seconds / 3600, 1) }), el('td', { class: 'num', text: pct(p.utilization) }))))));
  }

  // The exports need the token, so a click fetches the file and hands it to the browser as a download.
  async function download(event) {
    event.preventDefault();
    const a = event.currentTarget;
    try {
      const res = await api(a.getAttribute('href'), { raw: true });
      const url = URL.createObjectURL(await res.blob());
      const link = el('a', { href: url, download: `${a.dataset.export}-${$('range-from').value}-${$('range-to').value}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      $('business-error').textContent = `Error: ${e.message}`;
    }
  }

  // ---- system -----------------------------------------------------------------------------------------------
  let systemCharts = [];

  const SYSTEM_SERIES = [
    { key: 'rps', title: 'Requests per second (last minute)', unit: 'req/s', pick: (m) => [m.requests.requests_per_sec_last_minute] },
    { key: 'p95', title: 'Latency p95', unit: 'ms', pick: (m) => [m.requests.latency.p95_ms] },
    { key: 'errors', title: 'Error rate (4xx and 5xx)', unit: '%', pick: (m) => [m.requests.error_rate * 100] },
    { key: 'pool', title: 'Database connections in use', unit: 'connections', pick: (m) => [m.database.pool.in_use] },
    { key: 'cache', title: 'Cache hit rate', unit: '%', series: (m) => m.caches.map((c) => c.name), pick: (m) => m.caches.map((c) => (c.hit_rate === null ? null : c.hit_rate * 100)) },
    { key: 'queue', title: 'Job queue depth (due now)', unit: 'jobs', pick: (m) => [m.jobs.queue ? m.jobs.queue.depth : null] },
  ];

  function showSystem() {
    for (const c of systemCharts) c.plot && c.plot.destroy();
    systemCharts = [];
    const container = $('system-charts');
    container.replaceChildren();
    let xs = [];
    let ys = null;
    const tick = async () => {
      let m;
      try {
        m = await api('/monitoring/metrics');
      } catch (e) {
        $('system-status').textContent = `Error: ${e.message}`;
        return;
      }
      $('system-status').textContent = `Up ${num(m.uptime_secs / 60, 1)} min; ${num(m.requests.total)} requests in all; ${num(m.requests.in_flight)} in flight. Updated ${new Date().toLocaleTimeString()}.`;
      if (systemCharts.length === 0) {
        systemCharts = SYSTEM_SERIES.map((s) => {
          const names = s.series ? s.series(m) : [s.title];
          const box = chartBox(container, s.title, s.unit);
          box.box.dataset.metric = s.key;
          return { ...box, spec: s, plot: lineChart(box.plot, names.length ? names : ['(none)']), width: names.length || 1 };
        });
        ys = systemCharts.map((c) => Array.from({ length: c.width }, () => []));
      }
      xs.push(Date.now() / 1000);
      systemCharts.forEach((c, i) => {
        const values = c.spec.pick(m);
        for (let j = 0; j < c.width; j++) ys[i][j].push(values[j] ?? null);
        c.now.textContent = `now: ${values.map((v) => (v === null || v === undefined ? 'n/a' : `${num(v)} ${c.unit}`)).join(', ') || 'n/a'}`;
        c.box.dataset.samples = String(xs.length);
        c.box.dataset.last = JSON.stringify(values);
      });
      if (xs.length > SYSTEM_POINTS) { xs = xs.slice(-SYSTEM_POINTS); ys = ys.map((s) => s.map((v) => v.slice(-SYSTEM_POINTS))); }
      systemCharts.forEach((c, i) => c.plot && c.plot.setData([xs, ...ys[i]]));
    };
    tick();
    every(SYSTEM_REFRESH_MS, () => { if (!down && !document.hidden) { tick(); loadAlerts(); } });
    loadAlerts();
    const deadJobs = pagedList($('dead-jobs'), {
      load: (page) => api(`/api/v1/admin/jobs?${new URLSearchParams({ state: 'dead', page, per_page: PAGE_SIZE })}`),
      columns: {
        head: [{ label: 'Kind' }, { label: 'Attempts', num: true }, { label: 'Last error' }, { label: 'Finished' }],
        row: (j) => [j.kind, `${j.attempts} of ${j.max_attempts}`, j.last_error || '', dateTime(j.finished_at)],
      },
      empty: 'No dead jobs.',
      rowActions: (j, refresh) => el('button', {
        type: 'button', 'data-action': 'retry', 'aria-label': `Retry job ${j.id}`,
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          try {
            await api(`/api/v1/admin/jobs/${j.id}/retry`, { method: 'POST' });
            $('system-status').textContent = `Job ${j.id} queued again.`;
          } catch (e) { $('system-status').textContent = `Error: ${e.message}`; }
          refresh();
        },
      }, 'Retry'),
    });
    every(DEAD_JOBS_REFRESH_MS, () => { if (!down && !document.hidden) deadJobs(); });
    $('cache-status').textContent = '';
  }

  async function loadAlerts() {
    const target = $('alerts');
    try {
      const a = await api('/monitoring/alerts');
      target.replaceChildren(a.alerts.length === 0 ? el('p', { class: 'empty', text: `No active alerts (evaluated ${dateTime(a.evaluated_at)}).` }) :
        el('ul', {}, a.alerts.map((x) => el('li', {}, el('span', { class: 'sev', text: x.severity }), ` ${x.name}${x.subject ? ` (${x.subject})` : ''}: ${x.message} — value ${num(x.value)}, threshold ${num(x.threshold)}, since ${dateTime(x.since)}`))));
    } catch (e) {
      target.replaceChildren(el('p', { class: 'error', text: `Error: ${e.message}` }));
    }
  }

  async function clearCache() {
    const status = $('cache-status');
    try {
      await api('/api/v1/admin/cache/clear', { method: 'POST' });
      status.className = '';
      status.textContent = 'The caches were cleared.';
    } catch (e) {
      status.className = e.status === 404 ? 'unavailable' : 'error';
      status.textContent = e.status === 404 ? 'Clearing the caches is not available on this server (POST /api/v1/admin/cache/clear is not there).' : `Error: ${e.message}`;
    }
  }

  // ---- wiring -----------------------------------------------------------------------------------------------
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));
  $('avail-form').addEventListener('submit', showAvailability);
  $('range-form').addEventListener('submit', loadBusiness);
  for (const a of document.querySelectorAll('[data-export]')) a.addEventListener('click', download);
  $('cache-clear').addEventListener('click', clearCache);
  $('login-email').focus();
}());
