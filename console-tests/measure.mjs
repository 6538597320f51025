// Measures the console's targets (not a test: figures go to docs/PERFORMANCE.md with this command).
//   node measure.mjs            page weight, first paint with a cold cache (median of RUNS), refresh CPU
//   RUNS=20 CPU_SECS=60 CONSOLE_BIN=... CHROMIUM=...
// Page weight: every file the page loads, as sent with `Accept-Encoding: br` and with gzip.
// First paint: a fresh browser context per run (no HTTP cache), `first-paint` and `first-contentful-paint` from
// Chromium's performance timeline, on loopback.
// Refresh CPU: the server's CPU time (utime + stime from /proc/<pid>/stat) over CPU_SECS with no page open, then
// over CPU_SECS with an administrator's system view open (it polls every 2 s); the difference, as a percentage
// of one core.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { chromium } from 'playwright-core';
import { Server } from './server.mjs';

const RUNS = Number(process.env.RUNS || 20);
const CPU_SECS = Number(process.env.CPU_SECS || 60);
const FILES = ['/console', '/console/console.js', '/console/console.css', '/console/vendor/uplot/uPlot.iife.min.js', '/console/vendor/uplot/uPlot.min.css'];

const server = await new Server().start();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true });
try {
  for (const encoding of ['br', 'gzip', 'identity']) {
    let total = 0;
    const parts = [];
    for (const f of FILES) {
      // The size on the wire: read through node:http, which does not decode.
      const raw = await new Promise((ok, fail) => {
        const req = request(`${server.base}${f}`, { headers: { 'Accept-Encoding': encoding } }, (r) => {
          let n = 0;
          r.on('data', (d) => { n += d.length; });
          r.on('end', () => ok({ n, enc: r.headers['content-encoding'] || 'identity' }));
        });
        req.on('error', fail);
        req.end();
      });
      total += raw.n;
      parts.push(`${f.split('/').pop() || 'console'} ${raw.n} (${raw.enc})`);
    }
    console.log(`page weight ${encoding}: ${total} bytes = ${(total / 1024).toFixed(1)} KiB: ${parts.join(', ')}`);
  }

  const paints = [];
  const fcps = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.base}/console`, { waitUntil: 'load' });
    await page.waitForFunction(() => performance.getEntriesByType('paint').length >= 2);
    const entries = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('paint').map((e) => [e.name, e.startTime])));
    paints.push(entries['first-paint']);
    fcps.push(entries['first-contentful-paint']);
    await context.close();
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const max = (a) => Math.max(...a);
  console.log(`first paint, cold cache, ${RUNS} runs: median ${median(paints).toFixed(1)} ms, max ${max(paints).toFixed(1)} ms; first contentful paint median ${median(fcps).toFixed(1)} ms, max ${max(fcps).toFixed(1)} ms`);

  const ticks = () => {
    const f = readFileSync(`/proc/${server.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime in clock ticks (USER_HZ = 100)
  };
  const over = async (secs) => { const a = ticks(); await new Promise((r) => setTimeout(r, secs * 1000)); return (ticks() - a) / secs; };
  const idle = await over(CPU_SECS);
  const page = await browser.newPage();
  await page.goto(`${server.base}/console`);
  await page.fill('#login-email', 'admin@example.com');
  await page.fill('#login-password', 'admin-password-123');
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#system-charts figure[data-samples]');
  const watched = await over(CPU_SECS);
  const samples = await page.locator('figure[data-metric=rps]').getAttribute('data-samples');
  console.log(`server CPU, % of one core over ${CPU_SECS} s: idle ${idle.toFixed(2)} %, with the system view open ${watched.toFixed(2)} % (${samples} refreshes): the view adds ${(watched - idle).toFixed(2)} %`);
} finally {
  await browser.close();
  await server.cleanup();
}
