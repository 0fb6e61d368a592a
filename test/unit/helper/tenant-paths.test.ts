// Tenant strings that reach an HTTP request (a liveness path, the state and restore paths, the content type
// an app answered with) against real HTTP servers on loopback: each ends in a clear outcome, none throws or
// leaves a rejection nobody handles, and a bad Pod never stops the probes of the others.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { PodFault, PullAssignment } from '../../../src/api/index.js';
import { BlobStore } from '../../../src/helper/blob-store.js';
import { NodePuller } from '../../../src/helper/node-puller.js';
import { PodProber } from '../../../src/helper/pod-prober.js';
import { pullState } from '../../../src/helper/pull-state.js';
import { ReportOutbox } from '../../../src/helper/report-outbox.js';
import { pushState } from '../../../src/helper/restore-push.js';
import { buildHelperServer } from '../../../src/helper/server.js';
import { probe } from '../../../src/runtime/http-probe.js';
import { createLogger } from '../../../src/runtime/logger.js';

const log = createLogger('test', 'error');
let server: Server;
let port: number;
let seen: IncomingMessage[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => unhandled.push(err);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  server = createServer((req, res) => {
    seen.push(req);
    req.resume();
    req.on('end', () => res.end('{"count":1}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  seen = [];
  unhandled.length = 0;
});

const assignment = (uid: string, path: string): PullAssignment => ({
  namespace: 'apps',
  policy: 'p',
  policyUID: 'pu',
  pod: `pod-${uid}`,
  podUID: uid,
  podIP: '127.0.0.1',
  port,
  path: '/state',
  intervalMs: 1000,
  timeoutMs: 1000,
  maxBytes: 1000,
  restartCount: 0,
  targets: [],
  lastSequence: 0,
  // 5 in a row: one probe slowed past its timeout on a busy machine is not the fault this test looks for.
  probe: { port, path, periodMs: 50, failureThreshold: 5 },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PodProber with tenant liveness paths', () => {
  it('probes a non-Latin-1 path the way the kubelet sends it, and keeps probing every Pod', async () => {
    const faults: PodFault[] = [];
    const prober = new PodProber({ report: (f) => faults.push(f), log });
    prober.assign([assignment('a', '/héalth✓'), assignment('b', '/healthz'), assignment('c', '/a\u0001b')]);
    await sleep(400);
    prober.stop();
    // Probes in flight (a timeout of 100 ms) must not land in the next test's record.
    await sleep(150);
    const urls = seen.map((r) => r.url);
    expect(urls.filter((u) => u === '/healthz').length).toBeGreaterThanOrEqual(3);
    expect(urls.filter((u) => u === '/h%C3%A9alth%E2%9C%93').length).toBeGreaterThanOrEqual(3);
    // A path no request can carry is never sent, and is no evidence that the Pod failed.
    expect(urls.some((u) => u?.startsWith('/a'))).toBe(false);
    expect(faults).toEqual([]);
    expect(unhandled).toEqual([]);
  });
});

describe('http probe', () => {
  it('resolves a probe it cannot even send to misconfigured, never throws', async () => {
    await expect(probe('127.0.0.1', port, '/a\u0001b', 500)).resolves.toBe('misconfigured');
    await expect(probe('127.0.0.1', port, 'healthz', 500)).resolves.toBe('misconfigured');
    await expect(probe('127.0.0.1', 70_000, '/healthz', 500)).resolves.toBe('misconfigured');
    await expect(probe('127.0.0.1', Number.NaN, '/healthz', 500)).resolves.toBe('misconfigured');
    await expect(probe('', port, '/healthz', 500)).resolves.toBe('misconfigured');
    await expect(probe('127.0.0.1', port, '/réady✓', 500)).resolves.toBe('ok');
    expect(seen.map((r) => r.url)).toEqual(['/r%C3%A9ady%E2%9C%93']);
  });
});

describe('restore push with tenant paths and content types', () => {
  const push = (path: string, contentType = 'application/json', to = port) =>
    pushState({ podIP: '127.0.0.1', port: to, path, timeoutMs: 1000 }, Readable.from([Buffer.from('{}')]), {
      contentType,
      sizeBytes: 2,
    });

  it('pushes to a non-Latin-1 restore path, percent-encoded', async () => {
    await expect(push('/réstore✓')).resolves.toMatchObject({ result: 'Succeeded' });
    expect(seen.map((r) => r.url)).toEqual(['/r%C3%A9store%E2%9C%93']);
  });

  it('fails with a clear message, without a request, for a path or port no request can carry', async () => {
    const bad = await push('/re\nstore');
    expect(bad).toMatchObject({ result: 'Failed', reason: 'Rejected' });
    expect(bad.result === 'Failed' && bad.message).toMatch(/control character U\+000A/);
    await expect(push('/state', 'application/json', 70_000)).resolves.toMatchObject({
      result: 'Failed',
      reason: 'Rejected',
    });
    expect(seen).toEqual([]);
  });

  it('sends a content type no header can carry as application/octet-stream', async () => {
    await expect(push('/state', 'text/plain; charset=✓')).resolves.toMatchObject({ result: 'Succeeded' });
    expect(seen[0]?.headers['content-type']).toBe('application/octet-stream');
  });
});

describe('pull with tenant paths', () => {
  const puller = new NodePuller({
    outbox: new ReportOutbox({ capacity: 10, batchMs: 10 }),
    authorization: async () => 'Bearer x',
    concurrency: 2,
    log,
    pull: pullState,
  });
  afterAll(() => puller.stop());
  const pull = (path: string, to = port) =>
    puller.pullNow({
      ...assignment('p', '/healthz'),
      port: to,
      path,
      targets: [{ node: 'n2', url: 'http://127.0.0.1:1' }],
    });

  it('fails with a clear message, without a request, for a path with a control character', async () => {
    const out = await pull('/state\u0001');
    expect(out).toMatchObject({ ok: false, reason: 'PullFailed' });
    expect(!out.ok && out.message).toMatch(/"\/state\\u0001" contains the control character U\+0001/);
    expect(seen).toEqual([]);
  });

  it('pulls a non-Latin-1 path percent-encoded, and fails clearly for a port out of range', async () => {
    await pull('/stäte✓');
    expect(seen.map((r) => r.url)).toEqual(['/st%C3%A4te%E2%9C%93']);
    const out = await pull('/state', 70_000);
    expect(out).toMatchObject({ ok: false, reason: 'PullFailed' });
    expect(unhandled).toEqual([]);
  });
});

describe("the app's content type, sent on to the helpers", () => {
  let dir: string;
  let helper: ReturnType<typeof buildHelperServer>;
  let helperUrl: string;
  let app: Server;
  let appPort: number;
  let answerType: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tenant-paths-'));
    const store = await BlobStore.open(dir, { maxBlobBytes: 1000, quotaBytes: 100_000 });
    helper = buildHelperServer({
      store,
      // The apps here listen on this machine's loopback.
      allowLoopbackTargets: true,
      nodeName: 'n2',
      review: async () => ({ ok: true, user: 'system:serviceaccount:ops:controller' }),
      log,
    });
    helperUrl = await helper.listen({ host: '127.0.0.1', port: 0 });
    app = createServer((_req, res) => {
      // An app may answer without a usable media type; node's server sends the header as given.
      if (answerType !== undefined) res.setHeader('content-type', answerType);
      res.end('{"count":1}');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await helper.close();
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['', 'text', 'json please'])(
    'stores the state of an app answering content type %j, as application/octet-stream',
    async (type) => {
      answerType = type;
      const out = await pullState({
        source: `http://127.0.0.1:${appPort}/state`,
        timeoutMs: 1000,
        maxBytes: 1000,
        targets: [{ node: 'n2', url: helperUrl }],
        blob: {
          namespace: 'apps',
          policy: 'p',
          policyUID: 'pu',
          pod: 'c-0',
          podUID: '0f4c2a1e-1111',
          sequence: Date.now(),
        },
        authorization: { n2: 'Bearer x' },
      });
      expect(out.ok ? out.contentType : out.message).toBe('application/octet-stream');
    },
  );
});
