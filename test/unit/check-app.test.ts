// The conformance checker against real HTTP servers on loopback: an app that follows the contract and one that
// breaks it in the ways users do (an id per request, a POST that fails, a state over the limit).
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { judgeInstance } from '../../tools/check-app/checks.js';

const run = promisify(execFile);

async function checkApp(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run('npx', ['tsx', 'tools/check-app/main.ts', ...args]);
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

function app(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/state` }),
    ),
  );
}

let good: { server: Server; url: string };
let bad: { server: Server; url: string };

beforeAll(async () => {
  let state = Buffer.from('{"count":1}');
  good = await app((req, res) => {
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        state = Buffer.concat(chunks);
        res.writeHead(204).end();
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'pull-state-instance': 'a1b2' }).end(state);
  });
  let n = 0;
  bad = await app((req, res) => {
    if (req.method === 'POST') return void res.writeHead(500).end('read-only');
    res.writeHead(200, { 'pull-state-instance': `p${++n}` }).end(Buffer.alloc(2048));
  });
});

afterAll(() => {
  good.server.close();
  bad.server.close();
});

describe('npm run check-app', () => {
  it('passes an app that follows the contract, POST included', async () => {
    // The URL after a flag with a value, as users type it.
    const { code, out } = await checkApp('--interval-seconds', '5', good.url, '--write');
    expect(out).toContain('PASS  Pull-State-Instance header: a1b2, the same in 5 answers');
    expect(out).toContain('PASS  POST replaces the state');
    expect(out).toContain('0 failed, 0 warnings');
    expect(code).toBe(0);
  });

  it('fails an app whose id changes per answer, whose state is too large and whose POST fails, saying why', async () => {
    const { code, out } = await checkApp(bad.url, '--write', '--max-bytes', '1024');
    expect(out).toContain('FAIL  state within maxStateBytes: 2048 bytes; the policy allows 1024');
    expect(out).toMatch(/FAIL {2}Pull-State-Instance header: changed between GETs of one process \(p1, p2/);
    expect(out).toContain('FAIL  POST replaces the state: POST answered 500 read-only');
    expect(code).toBe(1);
  });

  it('says why when nothing answers, and refuses a bad command line with exit code 2', async () => {
    const port = (bad.server.address() as AddressInfo).port;
    await new Promise((r) => bad.server.close(r));
    const down = await checkApp(`http://127.0.0.1:${port}/state`);
    expect(down.out).toContain('ECONNREFUSED');
    expect(down.code).toBe(1);
    for (const args of [[], ['not a url'], ['https://x/state'], [good.url, '--gets', '0']]) {
      const r = await checkApp(...args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.out).toMatch(/check-app: .*(needed|allowed)/);
    }
  });

  it('judges the instance header: absent is a warning, a malformed one a failure', () => {
    const a = (instance?: string) => ({
      status: 200,
      bytes: Buffer.alloc(1),
      ms: 1,
      ...(instance ? { instance } : {}),
    });
    expect(judgeInstance([a(), a()])[0]!.verdict).toBe('warn');
    expect(judgeInstance([a('has space')])[0]).toMatchObject({
      verdict: 'fail',
      detail: expect.stringContaining('allowed'),
    });
    expect(judgeInstance([a('x'.repeat(129))])[0]!.verdict).toBe('fail');
  });
});
