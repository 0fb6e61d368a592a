// One node's pull slots under a namespace whose apps trickle their answers (a byte a second, never done
// within the timeout): real HTTP apps on loopback, a real target helper, the real pull. Before slots were
// shared per namespace, the trickling Pods took every slot for their whole timeout and the other
// namespace's Pod was not pulled at all meanwhile.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PullAssignment, PullReport } from '../../../src/api/index.js';
import { BlobStore } from '../../../src/helper/blob-store.js';
import { NodePuller } from '../../../src/helper/node-puller.js';
import { pullState } from '../../../src/helper/pull-state.js';
import { ReportOutbox } from '../../../src/helper/report-outbox.js';
import { buildHelperServer } from '../../../src/helper/server.js';
import { createLogger } from '../../../src/runtime/logger.js';

const log = createLogger('test', 'error');
const servers: Server[] = [];
let dir: string;
let target: ReturnType<typeof buildHelperServer>;
let targetUrl: string;

async function listen(handler: Parameters<typeof createServer>[1]): Promise<number> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fair-'));
  target = buildHelperServer({
    store: await BlobStore.open(dir, { maxBlobBytes: 1000, quotaBytes: 1_000_000 }),
    nodeName: 'n2',
    review: async () => ({ ok: true, user: 'peer', node: 'n1' }),
    peerUser: 'peer',
    log,
  });
  targetUrl = await target.listen({ host: '127.0.0.1', port: 0 });
});

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await target.close();
  await rm(dir, { recursive: true, force: true });
});

const assignment = (namespace: string, n: number, port: number): PullAssignment => ({
  namespace,
  policy: 'p',
  policyUID: 'pu',
  pod: `${namespace}-${n}`,
  podUID: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
  podIP: '127.0.0.1',
  port,
  path: '/state',
  intervalMs: 200,
  timeoutMs: 3000,
  maxBytes: 1000,
  restartCount: 0,
  targets: [{ node: 'n2', url: targetUrl }],
  lastSequence: 0,
});

it("a namespace whose apps trickle their answers does not hold up another namespace's pulls", async () => {
  const trickle = await listen((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const t = setInterval(() => res.write(' '), 1000);
    res.on('close', () => clearInterval(t));
  });
  const quick = await listen((_req, res) => res.end('{"count":1}'));
  const reports: PullReport[] = [];
  const puller = new NodePuller({
    outbox: new ReportOutbox({ capacity: 1000, batchMs: 50 }),
    authorization: async () => 'Bearer peer',
    concurrency: 4,
    perNamespace: 2,
    log,
    pull: pullState,
    observe: (r) => reports.push(r),
  });
  try {
    puller.assign([
      ...Array.from({ length: 8 }, (_, i) => assignment('hog', i + 1, trickle)),
      assignment('victim', 100, quick),
    ]);
    await new Promise((r) => setTimeout(r, 2500));
    const use = puller.slotUse();
    // The hog never holds more than its share, though it has Pods waiting for slots.
    expect(use.byNamespace.hog?.running).toBeLessThanOrEqual(2);
    expect(use.byNamespace.hog?.waiting).toBeGreaterThan(0);
    // The victim kept its interval (200 ms) all along: well over half of its pulls in 2.5 s succeeded.
    const victim = reports.filter((r) => r.namespace === 'victim' && r.ok);
    expect(victim.length).toBeGreaterThanOrEqual(6);
  } finally {
    puller.stop();
  }
});
