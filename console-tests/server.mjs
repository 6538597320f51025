// Starts the real rental-api binary on a free loopback port over a fresh SQLite file, and talks to its API.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

/** The binary: CONSOLE_BIN, else the release build CI makes for the contract step, else target/release. */
export function binary() {
  const candidates = [process.env.CONSOLE_BIN && resolve(ROOT, process.env.CONSOLE_BIN), join(ROOT, 'target/contract/release/rental-api'), join(ROOT, 'target/release/rental-api')];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error(`no rental-api binary: build it with \`cargo build --release -p rental-api\` or set CONSOLE_BIN (looked at ${candidates.filter(Boolean).join(', ')})`);
  return found;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

export class Server {
  constructor(extraEnv = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'rental-console-'));
    this.extraEnv = extraEnv;
    this.bin = binary();
    this.log = [];
  }

  env() {
    return {
      ...process.env,
      RENTAL__SERVER__HOST: '127.0.0.1',
      RENTAL__SERVER__PORT: String(this.port),
      RENTAL__DATABASE__URL: `sqlite://${this.dir}/console.db?mode=rwc`,
      RENTAL__AUTH__JWT_SECRET: 'console-test-secret-console-test-secret',
      RENTAL__MAIL__OUTBOX_DIR: join(this.dir, 'outbox'),
      RENTAL__MONITOR__DISK_PATH: this.dir,
      // The tests log in many times from one address; the limits have tests of their own.
      RENTAL__HTTP__RATE_LIMIT__ENABLED: 'false',
      RUST_LOG: process.env.RUST_LOG || 'warn',
      ...this.extraEnv,
    };
  }

  get base() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    this.port = this.port || (await freePort());
    if (!this.migrated) {
      const run = (args, input) => {
        const r = spawnSync(this.bin, args, { env: this.env(), input, encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`rental-api ${args.join(' ')} failed: ${r.stderr}`);
      };
      run(['migrate']);
      run(['create-admin', '--email', 'admin@example.com', '--password-stdin'], 'admin-password-123');
      this.migrated = true;
    }
    this.proc = spawn(this.bin, ['serve'], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [this.proc.stdout, this.proc.stderr]) s.on('data', (d) => { this.log.push(String(d)); if (this.log.length > 200) this.log.shift(); });
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(`${this.base}/health/live`)).ok) return this; } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the server did not start:\n${this.log.join('')}`);
  }

  async stop() {
    if (!this.proc) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await exited;
    this.proc = null;
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A call to the API; throws with the envelope's message on an error status. */
  async api(path, { method = 'GET', body, token } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) { const e = new Error(`${method} ${path}: ${res.status} ${json?.error?.message}`); e.status = res.status; throw e; }
    return json;
  }

  async login(email, password) {
    return (await this.api('/api/v1/auth/login', { method: 'POST', body: { email, password } })).access_token;
  }
}
