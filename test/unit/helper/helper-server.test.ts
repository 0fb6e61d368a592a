// The helper's HTTP answers to bad input, from a real server on loopback. The TokenReview side is
// covered against the real API server in the integration tests; here `review` is a plain function.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobStore } from '../../../src/helper/blob-store.js';
import { helperMetrics } from '../../../src/helper/metrics.js';
import { pullState } from '../../../src/helper/pull-state.js';
import { buildHelperServer, targetProblem } from '../../../src/helper/server.js';
import type { ProbeOutcome } from '../../../src/runtime/http-probe.js';
import { createLogger } from '../../../src/runtime/logger.js';

const uid = '0f4c2a1e-1111-2222-3333-444455556666';
const auth = { authorization: 'Bearer good' };
let dir: string;
let app: ReturnType<typeof buildHelperServer>;
let base: string;
/** What the helper's peer probes were asked to probe, and what they meet. */
let peerProbes: string[];
let peerOutcome: ProbeOutcome;

interface Answer {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  json: () => { error: string };
}

/** A request with fastify-inject-like options, sent over HTTP to the listening server. */
async function call(o: {
  method: string;
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
}): Promise<Answer> {
  const json = o.payload !== undefined && typeof o.payload !== 'string';
  const res = await fetch(`${base}${o.url}`, {
    method: o.method,
    headers: { ...(json ? { 'content-type': 'application/json' } : {}), ...o.headers },
    ...(o.payload !== undefined ? { body: json ? JSON.stringify(o.payload) : (o.payload as string) } : {}),
  });
  const body = await res.text();
  return {
    statusCode: res.status,
    headers: Object.fromEntries(res.headers),
    body,
    json: () => JSON.parse(body),
  };
}

/** The helper's clock in these tests. */
const NOW = 1_800_000_000_000;

beforeEach(async () => {
  peerProbes = [];
  peerOutcome = 'unreachable';
  dir = await mkdtemp(join(tmpdir(), 'helper-'));
  const store = await BlobStore.open(dir, { maxBlobBytes: 100, quotaBytes: 1000 });
  app = buildHelperServer({
    store,
    // The apps here listen on this machine's loopback.
    allowLoopbackTargets: true,
    nodeName: 'n1',
    nodeIP: '10.0.0.254',
    now: () => NOW,
    log: createLogger('test', 'error'),
    peerUser: 'peer',
    peerProbe: {
      healthPort: 9501,
      podIP: '10.0.0.1',
      probe: async (ip, port, path, timeoutMs) => {
        peerProbes.push(`${ip}:${port}${path} ${timeoutMs}`);
        return peerOutcome;
      },
    },
    review: async (a) =>
      a === 'Bearer good'
        ? { ok: true, user: 'controller' }
        : a === 'Bearer peer'
          ? { ok: true, user: 'peer', node: 'n1' }
          : a
            ? { ok: false, status: 403, message: 'other may not use the helper' }
            : { ok: false, status: 401, message: 'missing "Authorization: Bearer <token>" header' },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterEach(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

const put = (query: string, payload: string, headers: Record<string, string> = auth) =>
  call({
    method: 'PUT',
    url: `/v1/blobs/apps/${uid}?${query}`,
    payload,
    headers: { 'content-type': 'application/json', ...headers },
  });

describe('helper API', () => {
  it('refuses calls without a token (401) and with a foreign one (403)', async () => {
    const none = await call({ method: 'GET', url: '/v1/blobs' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    const foreign = await call({
      method: 'GET',
      url: '/v1/blobs',
      headers: { authorization: 'Bearer x' },
    });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().error).toContain('may not use the helper');
    expect((await call({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('stores a JSON body as bytes (not parsed) and serves it back with its metadata', async () => {
    const stored = await put('policy=p&policyUID=u&pod=c-0&sequence=5', '{"count":7}');
    expect(stored.statusCode).toBe(201);
    const got = await call({ method: 'GET', url: `/v1/blobs/apps/${uid}`, headers: auth });
    expect(got.body).toBe('{"count":7}');
    expect(got.headers['x-checkpoint-sequence']).toBe('5');
  });

  it('leaves no listener behind on a kept-alive connection after each upload', async () => {
    const sockets: import('node:net').Socket[] = [];
    app.server.on('connection', (s: import('node:net').Socket) => sockets.push(s));
    for (let n = 1; n <= 15; n++)
      expect((await put(`policy=p&policyUID=u&pod=c-0&sequence=${n}`, `{"n":${n}}`)).statusCode).toBe(201);
    expect(sockets.length).toBeGreaterThan(0);
    // Fifteen uploads over few connections: each one's idle timer was removed after it.
    expect(sockets.length).toBeLessThan(15);
    for (const s of sockets) expect(s.listenerCount('timeout')).toBeLessThanOrEqual(2);
  });

  it("keeps the Pod's restart count with the copy and lists it in the inventory", async () => {
    expect((await put('policy=p&policyUID=u&pod=c-0&sequence=5&restartCount=2', '{}')).statusCode).toBe(201);
    const inv = JSON.parse((await call({ method: 'GET', url: '/v1/blobs', headers: auth })).body) as {
      blobs: { restartCount?: number; sequence: number }[];
    };
    expect(inv.blobs).toEqual([expect.objectContaining({ sequence: 5, restartCount: 2 })]);
    const bad = await put('policy=p&policyUID=u&pod=c-0&sequence=6&restartCount=-1', '{}');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toContain('restartCount must be >= 0');
  });

  it("keeps the Pod's workload with the copy, and refuses one that is no workload name", async () => {
    const q = 'policy=p&policyUID=u&pod=c-0&workload=Deployment%2Fweb';
    expect((await put(`${q}&sequence=5`, '{}')).statusCode).toBe(201);
    const inv = JSON.parse((await call({ method: 'GET', url: '/v1/blobs', headers: auth })).body) as {
      blobs: { workload?: string }[];
    };
    expect(inv.blobs).toEqual([expect.objectContaining({ workload: 'Deployment/web' })]);
    const bad = await put('policy=p&policyUID=u&pod=c-0&sequence=6&workload=..%2F..%2Fetc', '{}');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toContain('workload must match pattern');
  });

  it.each([
    ['a missing sequence', 'policy=p&policyUID=u&pod=c-0', 400, "must have required property 'sequence'"],
    ['a non-numeric sequence', 'policy=p&policyUID=u&pod=c-0&sequence=soon', 400, 'sequence must be integer'],
    [
      'an oversized body',
      'policy=p&policyUID=u&pod=c-0&sequence=1',
      413,
      "larger than the helper's limit of 100 bytes",
    ],
  ])('answers %s (%s) with %i naming the problem', async (what, query, status, text) => {
    const res = await put(query, what === 'an oversized body' ? 'x'.repeat(101) : '{}');
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toContain(text);
  });

  it('never lets an older sequence replace a newer copy (409)', async () => {
    expect((await put('policy=p&policyUID=u&pod=c-0&sequence=9', '"new"')).statusCode).toBe(201);
    const late = await put('policy=p&policyUID=u&pod=c-0&sequence=3', '"old"');
    expect(late.statusCode).toBe(409);
    expect(late.json().error).toBe('sequence 3 is not newer than the stored 9');
    const got = await call({ method: 'GET', url: `/v1/blobs/apps/${uid}`, headers: auth });
    expect(got.body).toBe('"new"');
  });

  it('refuses a copy whose sequence is far ahead of its clock, so a planted 2^53-1 cannot block later copies', async () => {
    const peer = { authorization: 'Bearer peer' };
    const planted = await put(
      `policy=p&policyUID=u&pod=c-0&sequence=${Number.MAX_SAFE_INTEGER}`,
      '"x"',
      peer,
    );
    expect(planted.statusCode).toBe(400);
    expect(planted.json().error).toContain(`allowed: at most ${NOW + 24 * 3600 * 1000}`);
    const aDayAhead = await put(
      `policy=p&policyUID=u&pod=c-0&sequence=${NOW + 24 * 3600 * 1000 + 1}`,
      '"x"',
      peer,
    );
    expect(aDayAhead.statusCode).toBe(400);
    // Clock skew between nodes stays well inside the bound, and the next real copy is stored.
    expect((await put(`policy=p&policyUID=u&pod=c-0&sequence=${NOW + 60_000}`, '"a"', peer)).statusCode).toBe(
      201,
    );
    expect((await put(`policy=p&policyUID=u&pod=c-0&sequence=${NOW + 61_000}`, '"b"', peer)).statusCode).toBe(
      201,
    );
  });

  it('rejects a bad restore request naming the field, and 404s a restore of nothing', async () => {
    const bad = await call({
      method: 'POST',
      url: `/v1/blobs/apps/${uid}/restore`,
      headers: auth,
      payload: { podIP: 'not-an-ip', port: 8080, path: '/state' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toContain('podIP');
    const missing = await call({
      method: 'POST',
      url: `/v1/blobs/apps/${uid}/restore`,
      headers: auth,
      payload: { podIP: '127.0.0.1', port: 8080, path: '/state' },
    });
    expect(missing.statusCode).toBe(404);
    const badId = await call({ method: 'GET', url: '/v1/blobs/Bad_NS/xyz', headers: auth });
    expect(badId.statusCode).toBe(400);
    expect(badId.json().error).toContain('namespace must be a DNS label');
  });

  it("never restores into a non-Pod address, nor into its own node's address unless marked hostNetwork", async () => {
    expect((await put('policy=p&policyUID=u&pod=c-0&sequence=1', '"s"')).statusCode).toBe(201);
    const restore = (payload: object) =>
      call({ method: 'POST', url: `/v1/blobs/apps/${uid}/restore`, headers: auth, payload });
    for (const ip of ['169.254.169.254', '0.0.0.0', '224.0.0.1', '10.0.0.254']) {
      const answer = await restore({ podIP: ip, port: 10250, path: '/state' });
      expect(answer.statusCode).toBe(400);
      expect(answer.json().error).toContain(`podIP ${ip}`);
    }
    // Marked hostNetwork (its policy allowed it), the node's address is a target: nothing answers there, so
    // the push fails (502), but it is attempted rather than refused.
    const host = await restore({
      podIP: '10.0.0.254',
      port: 1,
      path: '/state',
      hostNetwork: true,
      timeoutMs: 200,
    });
    expect(host.statusCode).not.toBe(400);
    expect(host.body).not.toContain('podIP');
    expect(targetProblem('127.0.0.1', false)).toContain('not a Pod address');
    expect(targetProblem('127.0.0.1', false, { allowLoopbackTargets: true })).toBeUndefined();
    expect(targetProblem('10.244.1.7', false, { nodeIP: '10.0.0.254' })).toBeUndefined();
    // IPv6: the same rules, and the node's address recognised however it is spelled.
    for (const ip of ['fe80::1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', 'fd00:ec2::254', 'ff02::1']) {
      const answer = await restore({ podIP: ip, port: 8080, path: '/state' });
      expect({ ip, status: answer.statusCode }).toEqual({ ip, status: 400 });
      expect(answer.json().error).toContain(`podIP ${ip} is not a Pod address`);
    }
    const zoned = await restore({ podIP: 'fe80::1%eth0', port: 8080, path: '/state' });
    expect(zoned.statusCode).toBe(400);
    expect(zoned.json().error).toContain('podIP');
    expect(targetProblem('fd00:10:244::7', false, { nodeIP: 'fd00::fe' })).toBeUndefined();
    expect(targetProblem('FD00:0::FE', false, { nodeIP: 'fd00::fe' })).toContain("this helper's node");
    expect(targetProblem('::1', false)).toContain('not a Pod address');
    expect(targetProblem('::1', false, { allowLoopbackTargets: true })).toBeUndefined();
  });

  it('restores a chosen generation once per process: a repeated or concurrent request for it is not pushed again', async () => {
    for (const n of [1, 2, 3])
      expect(
        (await put(`policy=p&policyUID=u&pod=c-0&sequence=${n}&pulledAt=${n}000`, `{"n":${n}}`)).statusCode,
      ).toBe(201);
    // A real app: slow to answer, so the second request arrives while the first push is running.
    const received: string[] = [];
    const target = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(body);
        setTimeout(() => res.writeHead(200, { 'pull-state-instance': 'proc-7' }).end('{}'), 300);
      });
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const port = (target.address() as AddressInfo).port;
    const restore = (restartCount: number) =>
      call({
        method: 'POST',
        url: `/v1/blobs/apps/${uid}/restore`,
        headers: auth,
        payload: {
          podIP: '127.0.0.1',
          port,
          path: '/state',
          sequence: 2,
          target: { podUID: uid, restartCount },
        },
      });
    try {
      const [first, second] = await Promise.all([restore(4), restore(4)]);
      const third = await restore(4);
      expect([first, second, third].map((a) => a.statusCode)).toEqual([200, 200, 200]);
      expect(received).toEqual(['{"n":2}']);
      expect(first.json()).toMatchObject({ result: 'Succeeded', sequence: 2, instance: 'proc-7' });
      expect([second, third].map((a) => (a.json() as { alreadyRestored?: boolean }).alreadyRestored)).toEqual(
        [true, true],
      );
      // The next start of the process is a new target.
      expect((await restore(5)).statusCode).toBe(200);
      expect(received).toEqual(['{"n":2}', '{"n":2}']);
      const gone = await call({
        method: 'POST',
        url: `/v1/blobs/apps/${uid}/restore`,
        headers: auth,
        payload: { podIP: '127.0.0.1', port, path: '/state', sequence: 9 },
      });
      expect(gone.statusCode).toBe(404);
      expect(gone.json().error).toBe('no generation with sequence 9 stored for this Pod on this node');
      // Dropping the generations after a restart's cutoff leaves the older ones.
      const dropped = await call({
        method: 'DELETE',
        url: `/v1/blobs/apps/${uid}?newerThan=1`,
        headers: auth,
      });
      expect(dropped.json()).toEqual({ dropped: 2 });
      const inv = JSON.parse((await call({ method: 'GET', url: '/v1/blobs', headers: auth })).body) as {
        blobs: { sequence: number; pulledAt: number }[];
      };
      expect(inv.blobs).toEqual([expect.objectContaining({ sequence: 1, pulledAt: 1000 })]);
    } finally {
      target.closeAllConnections();
      await new Promise((r) => target.close(r));
    }
  });

  it('names the field of a bad generation, process id or restore target, with 400', async () => {
    const cases: [Promise<Answer>, string][] = [
      [
        put('policy=p&policyUID=u&pod=c-0&sequence=1&instance=has%20space', '{}'),
        'instance must match pattern',
      ],
      [put('policy=p&policyUID=u&pod=c-0&sequence=1&pulledAt=-5', '{}'), 'pulledAt must be >= 0'],
      [
        call({ method: 'GET', url: `/v1/blobs/apps/${uid}?sequence=soon`, headers: auth }),
        'sequence must be integer',
      ],
      [
        call({ method: 'DELETE', url: `/v1/blobs/apps/${uid}?newerThan=later`, headers: auth }),
        'newerThan must be integer',
      ],
      [
        call({
          method: 'POST',
          url: `/v1/blobs/apps/${uid}/restore`,
          headers: auth,
          payload: {
            podIP: '127.0.0.1',
            port: 8080,
            path: '/state',
            target: { podUID: uid, restartCount: -1 },
          },
        }),
        'restartCount must be >= 0',
      ],
      [
        call({
          method: 'POST',
          url: `/v1/blobs/apps/${uid}/restore`,
          headers: auth,
          payload: {
            podIP: '127.0.0.1',
            port: 8080,
            path: '/state',
            target: { podUID: 'not a uid', restartCount: 0 },
          },
        }),
        'podUID must match pattern',
      ],
    ];
    for (const [answer, text] of cases) {
      const res = await answer;
      expect({ status: res.statusCode, error: res.json().error }).toEqual({
        status: 400,
        error: expect.stringContaining(text),
      });
    }
    // Nothing was stored by the refused writes.
    const inv = JSON.parse((await call({ method: 'GET', url: '/v1/blobs', headers: auth })).body) as {
      blobs: unknown[];
    };
    expect(inv.blobs).toEqual([]);
  });

  it('refuses to store a pull whose Pull-State-Instance header is not a short printable id, saying what is allowed', async () => {
    const app = createServer((_req, res) =>
      res.writeHead(200, { 'pull-state-instance': 'two words' }).end('{}'),
    );
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    try {
      const outcome = await pullState({
        source: `http://127.0.0.1:${(app.address() as AddressInfo).port}/state`,
        timeoutMs: 2000,
        maxBytes: 100,
        targets: [{ node: 'n1', url: base }],
        blob: { namespace: 'apps', policy: 'p', policyUID: 'u', pod: 'c-0', podUID: uid, sequence: 1 },
        authorization: { n1: auth.authorization },
      });
      expect(outcome).toMatchObject({
        ok: false,
        reason: 'PullFailed',
        message: expect.stringContaining(
          'pull-state-instance header that is not 1-128 printable ASCII characters without spaces',
        ),
      });
      const inv = JSON.parse((await call({ method: 'GET', url: '/v1/blobs', headers: auth })).body) as {
        blobs: unknown[];
      };
      expect(inv.blobs).toEqual([]);
    } finally {
      app.closeAllConnections();
      await new Promise((r) => app.close(r));
    }
  });
});

// The leader's indirect probe of another node's helper (SWIM): a second vantage point before a fence.
describe('peer probe (POST /v1/probe)', () => {
  const probe = (payload: unknown, headers: Record<string, string> = auth) =>
    call({ method: 'POST', url: '/v1/probe', payload, headers });

  it("probes the other helper's /readyz on the health port and answers the outcome alone", async () => {
    for (const outcome of ['unreachable', 'failed', 'ok'] as const) {
      peerOutcome = outcome;
      const r = await probe({ node: 'n2', ip: '10.0.2.7', timeoutMs: 300 });
      expect(r.statusCode).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ outcome });
    }
    await probe({ node: 'n2', ip: '10.0.2.7' });
    expect((await probe({ node: 'n3', ip: 'fd00:10:244:2::7' })).statusCode).toBe(200);
    expect(peerProbes).toEqual([
      '10.0.2.7:9501/readyz 300',
      '10.0.2.7:9501/readyz 300',
      '10.0.2.7:9501/readyz 300',
      '10.0.2.7:9501/readyz 400',
      'fd00:10:244:2::7:9501/readyz 400',
    ]);
  });

  it('is for the controller alone: the peer identity and strangers are refused', async () => {
    expect((await probe({ node: 'n2', ip: '10.0.2.7' }, {})).statusCode).toBe(401);
    expect((await probe({ node: 'n2', ip: '10.0.2.7' }, { authorization: 'Bearer x' })).statusCode).toBe(403);
    expect((await probe({ node: 'n2', ip: '10.0.2.7' }, { authorization: 'Bearer peer' })).statusCode).toBe(
      403,
    );
    expect(peerProbes).toEqual([]);
  });

  it('probes no address but a Pod IP, and neither another port or path nor itself (SSRF)', async () => {
    // The caller names the address only: a port or path of its own (an app's state port admits helpers) is
    // refused, and so are names, loopback, the metadata service, multicast and broadcast.
    const refused: [unknown, number][] = [
      [{ node: 'n2', ip: '10.0.2.7', port: 8080 }, 400],
      [{ node: 'n2', ip: '10.0.2.7', path: '/state' }, 400],
      [{ node: 'n2', ip: '10.0.2.7:8080' }, 400],
      [{ node: 'n2', ip: 'metadata.google.internal' }, 400],
      [{ node: 'n2', ip: '10.0.2.7', timeoutMs: 60_000 }, 400],
      [{ node: 'n2', ip: '127.0.0.1' }, 403],
      [{ node: 'n2', ip: '169.254.169.254' }, 403],
      [{ node: 'n2', ip: '0.0.0.0' }, 403],
      [{ node: 'n2', ip: '224.0.0.1' }, 403],
      [{ node: 'n2', ip: '255.255.255.255' }, 403],
      [{ node: 'n2', ip: '::1' }, 403],
      [{ node: 'n2', ip: 'fe80::a9fe' }, 403],
      [{ node: 'n2', ip: '64:ff9b::a9fe:a9fe' }, 403],
      [{ node: 'n2', ip: 'fe80::1%eth0' }, 400],
      [{ node: 'n2', ip: '[fd00::7]' }, 400],
      // Probing itself would be no second vantage point.
      [{ node: 'n1', ip: '10.0.2.7' }, 400],
      [{ node: 'n2', ip: '10.0.0.1' }, 400],
    ];
    for (const [payload, status] of refused) {
      const r = await probe(payload);
      expect({ payload, status: r.statusCode }).toEqual({ payload, status });
    }
    expect(peerProbes).toEqual([]);
  });
});

describe('helper API refusing copies for space and load', () => {
  let shared: ReturnType<typeof buildHelperServer>;
  let sharedBase: string;
  let metrics: ReturnType<typeof helperMetrics>;
  beforeEach(async () => {
    const store = await BlobStore.open(join(dir, 'shared'), {
      maxBlobBytes: 100,
      quotaBytes: 1000,
      namespaceQuotaBytes: 50,
      maxUploads: 1,
    });
    metrics = helperMetrics(store);
    shared = buildHelperServer({
      store,
      nodeName: 'n1',
      now: () => NOW,
      log: createLogger('test', 'error'),
      peerUser: 'peer',
      metrics,
      review: async (a) =>
        a === 'Bearer good' ? { ok: true, user: 'controller' } : { ok: false, status: 401, message: 'no' },
    });
    sharedBase = await shared.listen({ host: '127.0.0.1', port: 0 });
  });
  afterEach(() => shared.close());

  const query = (ns: string, n: number) =>
    `/v1/blobs/${ns}/${uid.replace(/6$/, String(n))}?policy=p&policyUID=u&pod=p-${n}&sequence=${NOW}`;
  const putTo = (url: string, body: string) =>
    fetch(`${sharedBase}${url}`, { method: 'PUT', headers: { ...auth, 'content-type': 'text/plain' }, body });

  it("answers 507 naming the namespace's share and counts the refusal for that namespace", async () => {
    expect((await putTo(query('hog', 1), 'x'.repeat(40))).status).toBe(201);
    const refused = await putTo(query('hog', 2), 'x'.repeat(40));
    expect(refused.status).toBe(507);
    expect(await refused.json()).toEqual({
      error: expect.stringContaining(
        "namespace hog has used its share of this helper's storage (50 bytes of 1000)",
      ),
      reason: 'NamespaceShareExceeded',
    });
    expect((await putTo(query('victim', 1), 'x'.repeat(40))).status).toBe(201);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /pullstate_helper_uploads_refused_total\{namespace="hog",reason="NamespaceShareExceeded"\} 1/,
    );
    expect(text).toMatch(/pullstate_helper_namespace_stored_bytes\{namespace="hog"\} 40/);
    expect(text).toMatch(/pullstate_helper_namespace_stored_bytes\{namespace="victim"\} 40/);
  });

  it('answers 503 with Retry-After while its uploads in flight are at the limit', async () => {
    // One upload that sends part of its body and waits.
    const url = new URL(`${sharedBase}${query('apps', 1)}`);
    const slow = httpRequest(url, { method: 'PUT', headers: { ...auth, 'content-type': 'text/plain' } });
    slow.on('error', () => undefined);
    slow.write('x');
    await new Promise((r) => setTimeout(r, 200));
    const busy = await putTo(query('apps', 2), 'y');
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(await busy.json()).toEqual({
      error: 'helper busy: 1 uploads in flight (limit 1); retry',
      reason: 'Busy',
    });
    const done = new Promise<number>((r) => slow.on('response', (res) => r(res.statusCode ?? 0)));
    slow.end('x');
    expect(await done).toBe(201);
    expect((await putTo(query('apps', 2), 'y')).status).toBe(201);
  });
});

describe('helper API taking copies only of the Pods it holds', () => {
  let holding: ReturnType<typeof buildHelperServer>;
  let holdingBase: string;
  beforeEach(async () => {
    const store = await BlobStore.open(join(dir, 'holding'), { maxBlobBytes: 100, quotaBytes: 1000 });
    holding = buildHelperServer({
      store,
      nodeName: 'n3',
      now: () => NOW,
      log: createLogger('test', 'error'),
      peerUser: 'peer',
      review: async (a) =>
        a === 'Bearer good'
          ? { ok: true, user: 'controller' }
          : a === 'Bearer peer-n1'
            ? { ok: true, user: 'peer', node: 'n1' }
            : a === 'Bearer peer-n2'
              ? { ok: true, user: 'peer', node: 'n2' }
              : a === 'Bearer peer-nowhere'
                ? { ok: true, user: 'peer' }
                : { ok: false, status: 401, message: 'no' },
    });
    holdingBase = await holding.listen({ host: '127.0.0.1', port: 0 });
  });
  afterEach(() => holding.close());

  const copy = (podUID: string, token: string) =>
    fetch(`${holdingBase}/v1/blobs/apps/${podUID}?policy=p&policyUID=u&pod=p&sequence=${NOW}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
      body: 'state',
    });
  const setHolds = (holds: unknown) =>
    fetch(`${holdingBase}/v1/holds`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ holds }),
    });

  it("refuses a peer's copy of a Pod it was not told to keep, or sent from another node's helper", async () => {
    const other = uid.replace(/6$/, '7');
    expect((await setHolds([{ namespace: 'apps', podUID: uid, node: 'n1' }])).status).toBe(200);
    const wrongNode = await copy(uid, 'peer-n2');
    expect(wrongNode.status).toBe(403);
    expect(await wrongNode.json()).toEqual({
      error: `copies of Pod apps/${uid} come from the helper of node n1, not n2`,
      reason: 'NotHeld',
    });
    const notHeld = await copy(other, 'peer-n1');
    expect(notHeld.status).toBe(403);
    expect((await notHeld.json()) as { error: string }).toMatchObject({
      error: `this helper was not told to keep copies of Pod apps/${other}`,
    });
    expect((await copy(uid, 'peer-n1')).status).toBe(201);
    // A helper token that names no node (not bound to a helper Pod) could come from anywhere: nothing stored.
    const nowhere = await copy(uid, 'peer-nowhere');
    expect(nowhere.status).toBe(403);
    expect(await nowhere.json()).toEqual({
      error: expect.stringContaining("the sender's token names no node; allowed: a helper token bound to"),
      reason: 'NoNode',
    });
    const list = await fetch(`${holdingBase}/v1/holds`, { headers: auth });
    expect(await list.json()).toEqual({ holds: [{ namespace: 'apps', podUID: uid, node: 'n1' }] });
    // Only the controller sets them.
    const byPeer = await fetch(`${holdingBase}/v1/holds`, {
      method: 'PUT',
      headers: { authorization: 'Bearer peer-n1', 'content-type': 'application/json' },
      body: JSON.stringify({ holds: [] }),
    });
    expect(byPeer.status).toBe(403);
    expect((await setHolds([{ namespace: 'apps', podUID: uid }])).status).toBe(400);
  });
});
