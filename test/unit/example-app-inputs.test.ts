// The Go and Python example apps as real processes on loopback: bad restore bodies and bad settings are
// refused with what is allowed, a good restore is taken whole, and after SIGTERM GET is still served.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'example-apps-'));
const GO_APP = join(dir, 'go-app');

beforeAll(() => {
  execFileSync('go', ['build', '-o', GO_APP, '.'], {
    cwd: resolve('examples/go-app'),
    env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
  });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const apps = [
  { name: 'go-app', command: [GO_APP], quoted: '"70000"' },
  {
    name: 'python-app',
    command: ['/usr/bin/python3', resolve('examples/python-app/main.py')],
    quoted: "'70000'",
  },
];

function freePort(): Promise<number> {
  return new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => r(port));
    });
  });
}

async function start(
  command: string[],
  env: Record<string, string>,
): Promise<{ app: ChildProcess; url: string }> {
  const port = await freePort();
  const app = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, PORT: String(port), ...env },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { app, url };
    await new Promise((r) => setTimeout(r, 50));
  }
  app.kill('SIGKILL');
  throw new Error(`${command.join(' ')} did not start`);
}

describe.each(apps)('the $name example', ({ command, quoted }) => {
  it('refuses bad restore bodies naming the format, takes a good one whole, and serves GET after SIGTERM', async () => {
    const { app, url } = await start(command, { TICK_MS: '60000', DRAIN_SECONDS: '2' });
    try {
      const first = await fetch(`${url}/state`);
      expect(first.status).toBe(200);
      expect(first.headers.get('pull-state-instance')).toMatch(/^[0-9a-f]{32}$/);
      for (const body of [
        'null',
        '{}',
        '{"count":-1}',
        '{"count":1.5}',
        '{"count":"3"}',
        '{"count":1,"x":2}',
        '{"count":1} x',
        'nope',
      ]) {
        const res = await fetch(`${url}/state`, { method: 'POST', body });
        expect({ body, status: res.status }).toEqual({ body, status: 400 });
        const text = await res.text();
        expect(text).toContain('body must be JSON');
        expect(text).toContain('whole number >= 0');
      }
      expect((await fetch(`${url}/state`, { method: 'POST', body: '{"count":4242}' })).status).toBe(200);
      expect(await (await fetch(`${url}/state`)).json()).toEqual({ count: 4242 });
      app.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      expect((await fetch(`${url}/readyz`)).status).toBe(503);
      expect(await (await fetch(`${url}/state`)).json()).toEqual({ count: 4242 });
    } finally {
      app.kill('SIGKILL');
    }
  });

  it('refuses a bad setting with exit code 2, naming the variable and the allowed range', () => {
    const r = spawnSync(command[0]!, command.slice(1), {
      env: { ...process.env, PORT: '70000' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`PORT=${quoted} is not valid; allowed: a whole number from 1 to 65535`);
  });
});
