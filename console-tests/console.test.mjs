// Browser tests of /console: Debian's chromium, driven by playwright-core, against the real rental-api binary
// (the release build in CI) with data seeded through its API. A screenshot of each view goes to
// target/console-artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { Server, freePort } from './server.mjs';

const ARTIFACTS = resolve(import.meta.dirname, '../target/console-artifacts');
const HOSTILE = '<img src=x onerror=alert(1)>';
const STAFF = { email: 'staff@example.com', password: 'staff-password-123' };
const CUSTOMER = { email: 'customer@example.com', password: 'customer-password-123' };
const ADMIN = { email: 'admin@example.com', password: 'admin-password-123' };

let server;
let browser;
let smtpPort;
const seeded = {};

// The pages run in a time zone where it is now between 01:00 and 02:00, so that "today" (the desk's lists end
// at the browser's next midnight) still has 22 hours to go whenever the tests run: an order ending in two hours
// is due back today, one ending in 24 hours is not.
function earlyMorningZone() {
  let offset = 1 - new Date().getUTCHours();
  if (offset < -12) offset += 24;
  // Etc/GMT zones count the other way round: Etc/GMT-5 is UTC+5.
  return offset === 0 ? 'Etc/GMT' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}
const TIMEZONE = earlyMorningZone();

// The page may never run a script it did not ship, nor break its own content security policy.
const openPages = new Set();
async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, timezoneId: TIMEZONE });
  openPages.add(page);
  page.on('close', () => openPages.delete(page));
  page.problems = [];
  page.on('dialog', (d) => { page.problems.push(`dialog: ${d.message()}`); d.dismiss(); });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push(`CSP: ${m.text()}`); });
  await page.goto(`${server.base}/console`);
  return page;
}

async function logIn(page, { email, password }) {
  await page.fill('#login-email', email);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
}

function at(offsetMs) { return new Date(Date.now() + offsetMs).toISOString(); }

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // Mail goes to an SMTP port where nothing listens, with one attempt per job: welcome e-mails die, so that the
  // system view has dead jobs to retry.
  smtpPort = await freePort();
  server = await new Server({
    RENTAL__MAIL__SMTP__HOST: '127.0.0.1', RENTAL__MAIL__SMTP__PORT: String(smtpPort), RENTAL__MAIL__SMTP__TLS: 'none',
    RENTAL__MAIL__SMTP__TIMEOUT_SECS: '2', RENTAL__JOBS__MAX_ATTEMPTS: '1',
  }).start();
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true });

  const admin = await server.login(ADMIN.email, ADMIN.password);
  seeded.admin = admin;
  await server.api('/api/v1/users', { method: 'POST', token: admin, body: { ...STAFF, full_name: 'Desk Staff', roles: ['staff'] } });
  const customer = await server.api('/api/v1/auth/register', { method: 'POST', body: { ...CUSTOMER, full_name: HOSTILE } });
  const other = await server.api('/api/v1/auth/register', { method: 'POST', body: { email: 'other@example.com', password: 'other-password-123', full_name: 'Other Customer' } });
  const category = await server.api('/api/v1/categories', { method: 'POST', token: admin, body: { name: 'Tools' } });
  const location = await server.api('/api/v1/locations', { method: 'POST', token: admin, body: { name: 'Depot' } });
  const drill = await server.api('/api/v1/products', { method: 'POST', token: admin, body: { category_id: category.id, sku: 'DRILL', name: 'Drill', currency: 'EUR', price_per_day_minor: 1500 } });
  const saw = await server.api('/api/v1/products', { method: 'POST', token: admin, body: { category_id: category.id, sku: 'SAW', name: 'Saw', currency: 'EUR', price_per_day_minor: 2500 } });
  for (const p of [drill, saw]) await server.api(`/api/v1/products/${p.id}/stock/${location.id}`, { method: 'PUT', token: admin, body: { quantity: 50 } });
  seeded.drill = drill;
  // Today's pickups: the hostile customer's order (with a hostile note) and, for paging, 11 more of another customer.
  // The hostile one ends in two hours (due back today once picked up), the others in 24 hours (not today).
  const rent = (customerId, product, quantity, notes, hours) => server.api('/api/v1/rentals', { method: 'POST', token: admin, body: {
    customer_id: customerId, status: 'reserved', notes, lines: [{ product_id: product.id, quantity, start: at(60_000), end: at(hours * 3_600_000) }] } });
  seeded.hostileOrder = await rent(customer.id, drill, 2, HOSTILE, 2);
  seeded.others = [];
  for (let i = 0; i < 11; i++) seeded.others.push(await rent(other.id, i % 2 ? saw : drill, 1, null, 24));
  // An order of next week, not due today.
  await server.api('/api/v1/rentals', { method: 'POST', token: admin, body: {
    customer_id: other.id, status: 'reserved', lines: [{ product_id: saw.id, quantity: 3, start: at(7 * 86_400_000), end: at(8 * 86_400_000) }] } });
  seeded.customerId = customer.id;
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.cleanup();
});

// A test that fails leaves its page open: keep a screenshot and the page's text for the report.
afterEach(async (t) => {
  for (const page of openPages) {
    const name = (t?.name || 'failed').replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    try {
      await page.screenshot({ path: join(ARTIFACTS, `failed-${name}.png`), fullPage: true });
      console.error(`--- page text of the failed test:\n${await page.locator('body').innerText()}\nproblems: ${page.problems.join('; ')}`);
    } catch { /* closed */ }
    await page.close();
  }
});

describe('the console', () => {
  test('is served from the binary with a strict policy, revalidation and compression', async () => {
    const res = await fetch(`${server.base}/console`, { headers: { 'Accept-Encoding': 'br' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe/);
    const etag = res.headers.get('etag');
    assert.ok(etag);
    assert.equal((await fetch(`${server.base}/console`, { headers: { 'If-None-Match': etag } })).status, 304);
    // HEAD answers the same headers without a body.
    const head = await fetch(`${server.base}/console`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), etag);
    assert.equal(head.headers.get('content-security-policy'), csp);
    assert.equal(await head.text(), '');
    const js = await fetch(`${server.base}/console/console.js`);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
    assert.equal((await fetch(`${server.base}/console/nothing.js`)).status, 404);
    // The page stays out of the API's document.
    const doc = await server.api('/api/v1/openapi.json');
    assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/console')));
  });

  test('staff see today\'s pickups, pick one up and it leaves the list; hostile text stays text', async () => {
    const page = await newPage();
    await logIn(page, STAFF);
    await page.waitForSelector('#view-desk:not([hidden])');
    const row = page.locator(`#pickups tr[data-id="${seeded.hostileOrder.id}"]`);
    await row.waitFor();
    // Ten rows a page, the API's total of twelve, and the rest on the next page.
    assert.equal(await page.locator('#pickups tbody tr').count(), 10);
    assert.match(await page.locator('#pickups .pager').innerText(), /Page 1 of 2 \(12 in all\)/);
    // The customer's name and the note are shown as the text they are.
    assert.ok((await row.innerText()).includes(HOSTILE));
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    // The availability strip shows the API's free quantity per day.
    await page.waitForSelector('#avail-strip li');
    const from = new Date(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
    const firstProduct = await page.locator('#avail-product').inputValue();
    const a = await server.api(`/api/v1/products/${firstProduct}/availability?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(new Date(from.getTime() + 28 * 86_400_000).toISOString())}`);
    const shown = await page.locator('#avail-strip li b').allInnerTexts();
    assert.deepEqual(shown, a.days.map((d) => String(d.available)));
    await page.screenshot({ path: join(ARTIFACTS, 'desk.png'), fullPage: true });

    // Picked up elsewhere, an order due back tomorrow: it leaves the pickups and is not among today's returns.
    const tomorrows = seeded.others[2];
    await server.api(`/api/v1/rentals/${tomorrows.id}/pickup`, { method: 'POST', token: seeded.admin, body: {} });
    await row.locator('button[data-action=pickup]').click();
    await page.waitForSelector(`#returns tr[data-id="${seeded.hostileOrder.id}"]`);
    await page.locator(`#pickups tr[data-id="${seeded.hostileOrder.id}"]`).waitFor({ state: 'detached' });
    assert.match(await page.locator('#pickups .pager').innerText(), /\(10 in all\)/);
    assert.equal(await page.locator(`#returns tr[data-id="${tomorrows.id}"], #pickups tr[data-id="${tomorrows.id}"]`).count(), 0);
    assert.deepEqual(await page.locator('#returns tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id)), [seeded.hostileOrder.id]);
    assert.equal((await server.api(`/api/v1/rentals/${seeded.hostileOrder.id}`, { token: seeded.admin })).status, 'picked_up');

    // The API's rules and errors: a second pickup of the same order (from a stale page) is refused with its message.
    const stale = seeded.others[0];
    await server.api(`/api/v1/rentals/${stale.id}/cancel`, { method: 'POST', token: seeded.admin, body: {} });
    await page.locator(`#pickups tr[data-id="${stale.id}"] button[data-action=pickup]`).click();
    let expected;
    try { await server.api(`/api/v1/rentals/${stale.id}/pickup`, { method: 'POST', token: seeded.admin, body: {} }); } catch (e) { expected = e.message.split(': ').slice(2).join(': '); }
    assert.ok(expected, 'the API refuses the pickup of a cancelled order');
    await page.waitForFunction((text) => document.getElementById('desk-status').textContent.includes(text), expected);
    // Cancel and return, the other two actions: each order leaves its list and the API has it in the new status.
    const toCancel = seeded.others[1];
    await page.locator(`#pickups tr[data-id="${toCancel.id}"] button[data-action=cancel]`).click();
    await page.locator(`#pickups tr[data-id="${toCancel.id}"]`).waitFor({ state: 'detached' });
    assert.equal((await server.api(`/api/v1/rentals/${toCancel.id}`, { token: seeded.admin })).status, 'cancelled');
    await page.locator(`#returns tr[data-id="${seeded.hostileOrder.id}"] button[data-action=return]`).click();
    await page.locator(`#returns tr[data-id="${seeded.hostileOrder.id}"]`).waitFor({ state: 'detached' });
    assert.equal((await server.api(`/api/v1/rentals/${seeded.hostileOrder.id}`, { token: seeded.admin })).status, 'returned');
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test('the business view draws the API\'s figures', async () => {
    const page = await newPage();
    await logIn(page, STAFF);
    await page.waitForSelector('#view-desk:not([hidden])');
    const statsAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/dashboard/stats');
    await page.click('#nav-business');
    await page.waitForSelector('#revenue-table tr[data-day]');
    await page.waitForSelector('#popular-table tr[data-product]');
    const from = await page.locator('#range-from').inputValue();
    const to = await page.locator('#range-to').inputValue();
    const staff = await server.login(STAFF.email, STAFF.password);
    const revenue = await server.api(`/api/v1/analytics/revenue?from=${from}&to=${to}`, { token: staff });
    const apiDays = revenue.currencies.flatMap((c) => c.days.map((d) => [d.date, c.currency, String(d.total_minor)]));
    assert.ok(apiDays.length > 0);
    const shownDays = await page.locator('#revenue-table tr[data-day]').evaluateAll((rows) => rows.map((r) => [r.dataset.day, r.dataset.currency, r.dataset.minor]));
    assert.deepEqual(shownDays, apiDays);
    assert.equal(await page.locator('#revenue-chart').getAttribute('data-points'), JSON.stringify(revenue.currencies.map((c) => c.days.map((d) => [d.date, d.total_minor]))));
    const popular = await server.api(`/api/v1/analytics/popular-products?from=${from}&to=${to}&limit=10`, { token: staff });
    assert.equal(await page.locator('#popular-chart').getAttribute('data-points'), JSON.stringify(popular.items.map((p) => [p.product_id, p.quantity])));
    // The charts drew something: a canvas with non-blank pixels each.
    for (const id of ['revenue-chart', 'popular-chart']) {
      const inked = await page.locator(`#${id} canvas`).evaluate((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
      });
      assert.ok(inked > 100, `${id} is blank`);
    }
    // Utilisation rows are the API's products.
    const util = await server.api(`/api/v1/analytics/utilization?from=${from}&to=${to}&limit=20`, { token: staff });
    assert.deepEqual(await page.locator('#util-table tr[data-product]').evaluateAll((rows) => rows.map((r) => r.dataset.product)), util.items.map((p) => p.product_id));
    // The dashboard figures: every figure shown is the number of the answer the page got, at the path it names,
    // under a label.
    const stats = await (await statsAnswer).json();
    await page.locator('#stats dl.figures').first().waitFor();
    const shown = await page.locator('#stats .figure').evaluateAll((fs) => fs.map((f) => [f.dataset.key, f.dataset.value, f.querySelector('dt').textContent]));
    const at = (key) => {
      const [head, ...rest] = key.split('.');
      if (head === 'revenue') return stats.revenue.find((c) => c.currency === rest[0])[rest[1]];
      if (head === 'rentals' && rest[0] === 'by_status') return stats.rentals.by_status.find((s) => s.status === rest[1]).count;
      return rest.reduce((v, k) => v[k], stats[head]);
    };
    assert.ok(shown.length >= 6 + 6 + 3 + 3, JSON.stringify(shown));
    for (const [key, value, label] of shown) {
      assert.equal(value, String(at(key)), key);
      assert.ok(label && !label.includes('_'), `${key} has a label: ${label}`);
    }
    assert.equal(shown.filter(([k]) => k.startsWith('rentals.by_status.')).length, 6);
    for (const c of stats.revenue) assert.ok(shown.some(([k]) => k === `revenue.${c.currency}.today_minor`), c.currency);
    // The CSV export links hand over the API's file.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-orders')]);
    const { readFile } = await import('node:fs/promises');
    const csv = await readFile(await download.path(), 'utf8');
    const apiCsv = await (await fetch(`${server.base}/api/v1/exports/orders.csv?from=${from}&to=${to}`, { headers: { Authorization: `Bearer ${staff}` } })).text();
    assert.ok(csv.split('\n').length > 2, csv);
    assert.equal(csv, apiCsv);
    await page.screenshot({ path: join(ARTIFACTS, 'business.png'), fullPage: true });
    // A window the API refuses shows the envelope's message, and no figures of the previous window.
    await page.evaluate(() => { document.getElementById('range-from').type = 'text'; document.getElementById('range-from').value = 'not-a-date'; });
    await page.click('#range-form button[type=submit]');
    let refusal;
    try { await server.api('/api/v1/analytics/revenue?from=not-a-date&to=2026-01-01', { token: staff }); } catch (e) { refusal = e.message.split(': ').slice(2).join(': '); }
    await page.locator('#business-error', { hasText: refusal }).waitFor();
    assert.equal(await page.locator('#revenue-table tr[data-day], #popular-table tr[data-product], #util-table tr[data-product]').count(), 0);
    await page.screenshot({ path: join(ARTIFACTS, 'business-refused.png'), fullPage: true });
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test('admins see the system charts move under load, alerts, dead jobs with a retry, and the cache button', async () => {
    const page = await newPage();
    await logIn(page, ADMIN);
    await page.waitForSelector('#view-system:not([hidden])');
    await page.waitForSelector('#system-charts figure[data-metric=rps][data-samples]');
    assert.equal(await page.locator('#system-charts canvas').count() >= 6, true);
    const rps = () => page.locator('figure[data-metric=rps]').evaluate((f) => ({ samples: Number(f.dataset.samples), last: JSON.parse(f.dataset.last)[0] }));
    const before = await rps();
    // A short load: 1,500 requests, 20 at a time.
    const urls = Array.from({ length: 1500 }, (_, i) => `${server.base}/api/v1/products?page=${(i % 5) + 1}`);
    for (let i = 0; i < urls.length; i += 20) await Promise.all(urls.slice(i, i + 20).map((u) => fetch(u).then((r) => r.arrayBuffer())));
    await page.waitForFunction((b) => {
      const f = document.querySelector('figure[data-metric=rps]');
      return Number(f.dataset.samples) > b.samples && JSON.parse(f.dataset.last)[0] > b.last;
    }, before);
    const metrics = await server.api('/monitoring/metrics', { token: seeded.admin });
    assert.ok(metrics.requests.requests_per_sec_last_minute > before.last);
    // The welcome e-mails could not be sent: their jobs are dead, listed, and one is queued again by its button.
    await page.waitForSelector('#dead-jobs tr[data-id]', { timeout: 30_000 });
    const jobId = await page.locator('#dead-jobs tr[data-id]').first().getAttribute('data-id');
    const dead = await server.api(`/api/v1/admin/jobs/${jobId}`, { token: seeded.admin });
    assert.equal(dead.state, 'dead');
    await page.locator(`#dead-jobs tr[data-id="${jobId}"] button[data-action=retry]`).click();
    await page.locator('#system-status', { hasText: `Job ${jobId} queued again.` }).waitFor();
    // The API took the retry: the job left the dead letters, or (one attempt allowed, SMTP still down) ran again
    // and died again later.
    let job = dead;
    for (let i = 0; i < 100 && job.state === 'dead' && job.finished_at === dead.finished_at; i++) {
      await new Promise((r) => setTimeout(r, 200));
      job = await server.api(`/api/v1/admin/jobs/${jobId}`, { token: seeded.admin });
    }
    assert.ok(job.state !== 'dead' || job.finished_at !== dead.finished_at, 'the retried job was queued again');
    // Alerts: the API's list (the dead jobs raise one).
    const alerts = await server.api('/monitoring/alerts', { token: seeded.admin });
    for (const a of alerts.alerts) await page.locator('#alerts li', { hasText: a.name }).waitFor();
    // Cache clear: done when the server has the endpoint, a clear "not available" while it answers 404.
    let clearStatus = 204;
    try { await server.api('/api/v1/admin/cache/clear', { method: 'POST', token: seeded.admin }); } catch (e) { clearStatus = e.status; }
    await page.click('#cache-clear');
    await page.locator('#cache-status', { hasText: clearStatus === 404 ? 'not available on this server' : 'The caches were cleared.' }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'system.png'), fullPage: true });
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test('a customer is told the console is for staff and sees only their own rentals', async () => {
    const page = await newPage();
    await logIn(page, CUSTOMER);
    await page.waitForSelector('#view-customer:not([hidden])');
    await page.waitForSelector('#customer-rentals tr[data-id]');
    const ids = await page.locator('#customer-rentals tr[data-id]').evaluateAll((rows) => rows.map((r) => r.dataset.id));
    assert.deepEqual(ids, [seeded.hostileOrder.id]);
    assert.equal(await page.locator('#nav').isHidden(), true);
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    await page.screenshot({ path: join(ARTIFACTS, 'customer.png'), fullPage: true });
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test('the login works from the keyboard, and a wrong password shows the API\'s message', async () => {
    const page = await newPage();
    // The e-mail field has the focus on arrival; Tab reaches the password, Enter submits.
    await page.keyboard.type(STAFF.email);
    await page.keyboard.press('Tab');
    await page.keyboard.type('wrong-password-123');
    await page.keyboard.press('Enter');
    let message;
    try { await server.login(STAFF.email, 'wrong-password-123'); } catch (e) { message = e.message.split(': ').slice(2).join(': '); }
    await page.locator('#login-error', { hasText: message }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'login-error.png') });
    await page.fill('#login-password', '');
    await page.focus('#login-password');
    await page.keyboard.type(STAFF.password);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-desk:not([hidden])');
    // The views are buttons reached with Tab and pressed with Enter.
    await page.focus('#nav-business');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-business:not([hidden])');
    assert.equal(await page.locator('#nav-business').getAttribute('aria-current'), 'page');
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test('when the API goes down a banner says so, and it goes when the API is back', async () => {
    const page = await newPage();
    await logIn(page, ADMIN);
    await page.waitForSelector('#system-charts figure[data-samples]');
    await server.stop();
    await page.locator('#banner', { hasText: 'cannot be reached' }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'api-down.png') });
    await server.start();
    await page.waitForSelector('#banner[hidden]', { state: 'attached', timeout: 40_000 });
    await page.close();
  });
});

describe('an expired session', () => {
  let short;
  before(async () => {
    short = await new Server({ RENTAL__AUTH__ACCESS_TOKEN_TTL_SECS: '1', RENTAL__AUTH__REFRESH_TOKEN_TTL_SECS: '1' }).start();
  });
  after(async () => { if (short) await short.cleanup(); });

  test('goes back to the login once, without a loop', async () => {
    const page = await browser.newPage();
    await page.goto(`${short.base}/console`);
    await logIn(page, ADMIN);
    await page.waitForSelector('#view-system:not([hidden])');
    // Both tokens expire (one second, plus the five seconds of leeway the API grants).
    await page.waitForSelector('#view-login:not([hidden])', { timeout: 20_000 });
    assert.match(await page.locator('#login-error').innerText(), /session has ended/);
    const calls = [];
    page.on('request', (r) => { if (r.url().includes('/api/') || r.url().includes('/monitoring/')) calls.push(r.url()); });
    await page.waitForTimeout(4000);
    assert.deepEqual(calls, [], 'no call after the session ended');
    await page.screenshot({ path: join(ARTIFACTS, 'expired.png') });
    await page.close();
  });
});
