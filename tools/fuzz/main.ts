// `npm run fuzz [-- --seconds N] [-- --seed N]`: throws malformed input at every surface that takes input from
// the network or from users, for a bounded time, and checks that nothing breaks: no crash, no unhandled
// rejection, bounded memory, no copy stored that should not be, no good copy replaced. Real HTTP servers on
// loopback: a helper (its whole API, with a plain token check in place of TokenReview) and a hostile app.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { mapAnnotations } from '../../src/api/annotations.js';
import { ANNOTATIONS } from '../../src/api/constants.js';
import { parseSpec } from '../../src/api/resolved-spec.js';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../../src/cli/flags.js';
import { BlobStore, blobId } from '../../src/helper/blob-store.js';
import { NodePuller } from '../../src/helper/node-puller.js';
import { pullState } from '../../src/helper/pull-state.js';
import { ReportOutbox } from '../../src/helper/report-outbox.js';
import { pushState } from '../../src/helper/restore-push.js';
import { buildHelperServer } from '../../src/helper/server.js';
import { createLogger } from '../../src/runtime/logger.js';
import { Gen, prng } from './generate.js';
import { tenantInputSurfaces } from './tenant-input.js';

const FLAGS = {
  seconds: { kind: 'int', min: 1, max: 86_400, default: 60, help: 'how long to fuzz' },
  seed: { kind: 'int', min: 0, max: 2 ** 31 - 1, default: 0, help: 'random seed (0: a new one, printed)' },
  'max-rss-growth-mib': {
    kind: 'int',
    min: 1,
    max: 65_536,
    default: 256,
    help: 'resident memory may grow at most this much over the run',
  },
} satisfies FlagSpecs;

const MAX_BLOB = 64 * 1024;
const UID = '0f4c2a1e-1111-2222-3333-444455556666';
const GOOD = 'Bearer good';

type Counts = Record<string, number>;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help'))
    return void process.stdout.write(
      helpText(
        'npm run fuzz -- [flags]',
        'Fuzzes the helper API, the spec and annotation parsers, and pulls and restores against hostile apps.',
        FLAGS,
      ),
    );
  const flags = parseFlags(args, FLAGS);
  const seed = flags.seed || Math.floor(Math.random() * 2 ** 31);
  const g = new Gen(prng(seed));
  const counts: Counts = {};
  const failures: string[] = [];
  const fail = (what: string) => {
    if (failures.length < 50) failures.push(what);
  };
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  /** How each surface's inputs ended, where a surface has more than one defined ending. */
  const outcomes: Record<string, Counts> = {};
  const outcome = (surface: string, kind: string) => {
    const o = (outcomes[surface] ??= {});
    o[kind] = (o[kind] ?? 0) + 1;
  };
  process.on('unhandledRejection', (err) => fail(`unhandled rejection: ${String(err)}`));
  process.on('uncaughtException', (err) => fail(`uncaught exception: ${err.stack ?? String(err)}`));
  console.log(`fuzz: seed ${seed}, ${flags.seconds} s (repeat with --seed ${seed})`);

  const dir = await mkdtemp(join(tmpdir(), 'pull-state-fuzz-'));
  const log = createLogger('fuzz', 'error');
  const store = await BlobStore.open(dir, { maxBlobBytes: MAX_BLOB, quotaBytes: 64 * MAX_BLOB });
  const outbox = new ReportOutbox({ capacity: 1000, batchMs: 10 });
  const puller = new NodePuller({
    outbox,
    authorization: async () => GOOD,
    concurrency: 8,
    log,
    pull: pullState,
  });
  const helper = buildHelperServer({
    store,
    // The apps here listen on this machine's loopback.
    allowLoopbackTargets: true,
    nodeName: 'fuzz',
    review: async (a) =>
      a === GOOD
        ? { ok: true, user: 'controller' }
        : a === 'Bearer peer'
          ? { ok: true, user: 'peer', node: 'fuzz-peer' }
          : { ok: false, status: 401, message: 'token rejected' },
    puller,
    outbox,
    peerUser: 'peer',
    log,
  });
  const helperUrl = await helper.listen({ host: '127.0.0.1', port: 0 });

  // A helper as it runs in a Pod (no loopback targets, its node's address known), with nothing stored and
  // every Pod paused: a target it accepts is never dialled, so no fuzzed address is ever contacted.
  const NODE_IP = '10.0.0.254';
  const guardedDir = await mkdtemp(join(tmpdir(), 'pull-state-fuzz-guarded-'));
  const guardedPuller = new NodePuller({
    outbox: new ReportOutbox({ capacity: 100, batchMs: 50 }),
    authorization: async () => 'Bearer peer',
    concurrency: 1,
    log,
    pull: pullState,
  });
  const guarded = buildHelperServer({
    store: await BlobStore.open(guardedDir, { maxBlobBytes: MAX_BLOB, quotaBytes: MAX_BLOB }),
    nodeName: 'guarded',
    nodeIP: NODE_IP,
    review: async (a) =>
      a === GOOD ? { ok: true, user: 'controller' } : { ok: false, status: 401, message: 'token rejected' },
    puller: guardedPuller,
    outbox: new ReportOutbox({ capacity: 100, batchMs: 50 }),
    log,
  });
  const guardedUrl = await guarded.listen({ host: '127.0.0.1', port: 0 });
  /** The fuzzer's own reading of the target rule, written apart from the helper's. */
  const forbidden = (ip: string, hostNetwork: boolean) => {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 0 || a === 127 || a >= 224 || (a === 169 && b === 254) || (ip === NODE_IP && !hostNetwork);
  };
  const helperPort = Number(new URL(helperUrl).port);

  // A hostile app: each request is answered the way the next `appPlan` says.
  let appPlan: (req: IncomingMessage, res: ServerResponse) => void = (_q, s) => s.end('{}');
  const app = createServer((req, res) => appPlan(req, res));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;

  /** Every stored copy's body hashes to its recorded digest (nothing half-written or mixed up is kept). */
  const checkStore = async (when: string) => {
    for (const meta of store.list()) {
      const found = store.read(meta.id, meta.sequence);
      if (!found) continue;
      const hash = createHash('sha256');
      for await (const c of found.body as AsyncIterable<Buffer>) hash.update(c);
      if (`sha256:${hash.digest('hex')}` !== meta.digest)
        fail(`${when}: copy ${meta.id}@${meta.sequence} does not match its digest`);
    }
  };
  let lastSequence = 0;
  const digests = () => new Set(store.list().map((m) => `${m.id}@${m.sequence}:${m.digest}`));

  const tenant = await tenantInputSurfaces({ g, log, helperUrl, authorization: GOOD, fail, outcome });
  const surfaces: [string, () => Promise<void>][] = [
    ...tenant.surfaces,
    [
      'spec parser',
      async () => {
        const input = g.chance(0.7)
          ? { selector: { matchLabels: { app: 'x' } }, ...(g.value() as object) }
          : g.value();
        const r = parseSpec(input);
        if (!r.ok && (r.errors.length === 0 || r.errors.some((e) => typeof e !== 'string' || !e)))
          fail(`spec: empty error for ${JSON.stringify(input)}`);
      },
    ],
    [
      'annotations',
      async () => {
        const a: Record<string, string> = {};
        for (let i = g.int(6); i > 0; i--)
          a[g.chance(0.8) ? g.pick(Object.values(ANNOTATIONS)) : `hitachienergy.com/ps_${g.string(8)}`] =
            g.chance(0.5) ? String(g.value()) : g.string();
        const m = mapAnnotations(a, { matchLabels: { app: 'x' } });
        if (!['absent', 'valid', 'invalid'].includes(m.kind)) fail(`annotations: unexpected kind ${m.kind}`);
      },
    ],
    [
      'helper HTTP API',
      async () => {
        const before = digests();
        const method = g.pick(['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']);
        const paths = [
          `/v1/blobs/apps/${UID}`,
          `/v1/blobs/apps/${UID}/restore`,
          `/v1/blobs/${g.string(20)}/${g.string(70)}`,
          '/v1/blobs',
          '/v1/assignments',
          '/v1/pulls',
          '/v1/reports',
          `/v1/${g.string(30)}`,
          `/${g.string(300)}`,
        ];
        const query = Array.from(
          { length: g.int(5) },
          () =>
            `${g.pick(['sequence', 'policy', 'policyUID', 'pod', 'pulledAt', 'instance', 'newerThan', 'waitMs', 'after', 'podUID', g.string(8)])}=${encodeURIComponent(g.chance(0.5) ? String(g.value()) : g.string())}`,
        ).join('&');
        const body =
          method === 'GET' || method === 'DELETE' || method === 'OPTIONS'
            ? undefined
            : g.chance(0.5)
              ? JSON.stringify(g.value())
              : Buffer.alloc(g.chance(0.1) ? MAX_BLOB * 2 : g.int(2048), g.int(256));
        try {
          const res = await fetch(`${helperUrl}${g.pick(paths)}${query ? `?${query}` : ''}`, {
            method,
            headers: {
              ...(g.chance(0.9)
                ? { authorization: g.pick([GOOD, GOOD, 'Bearer peer', 'Bearer x', 'Basic a', '']) }
                : {}),
              ...(body
                ? {
                    'content-type': g.pick([
                      'application/json',
                      'text/plain',
                      'application/octet-stream',
                      g.string(20).replace(/[^\x20-\x7e]/g, ''),
                    ]),
                  }
                : {}),
              ...(g.chance(0.2) ? { 'pull-state-instance': g.string(20).replace(/[^\x20-\x7e]/g, '') } : {}),
            },
            ...(body !== undefined ? { body } : {}),
            signal: AbortSignal.timeout(5000),
          });
          await res.arrayBuffer();
          if (res.status >= 500) fail(`helper answered ${res.status} to ${method} with query ${query}`);
          // Only a 201 PUT may store something new; nothing else may change or drop a copy but a DELETE.
          const after = digests();
          if (method !== 'PUT' && method !== 'DELETE' && method !== 'POST')
            for (const d of after) if (!before.has(d)) fail(`${method} stored ${d}`);
        } catch (err) {
          fail(`helper request failed: ${String(err)}`);
        }
      },
    ],
    [
      'pull/restore target addresses',
      async () => {
        const octet = () => g.int(256);
        const ip = g.pick([
          `127.${octet()}.${octet()}.${octet()}`,
          '169.254.169.254',
          `169.254.${octet()}.${octet()}`,
          `0.${octet()}.${octet()}.${octet()}`,
          `${224 + g.int(32)}.${octet()}.${octet()}.${octet()}`,
          NODE_IP,
          `10.244.${octet()}.${octet()}`,
          `${octet()}.${octet()}.${octet()}.${octet()}`,
        ]);
        const hostNetwork = g.chance(0.3);
        const refuse = forbidden(ip, hostNetwork);
        const call = async (path: string, method: string, body: unknown) => {
          const res = await fetch(`${guardedUrl}${path}`, {
            method,
            headers: { authorization: GOOD, 'content-type': 'application/json' },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(5000),
          });
          return { status: res.status, text: await res.text() };
        };
        const assignment = {
          namespace: 'apps',
          policy: 'p',
          policyUID: 'u',
          pod: 'c',
          podUID: UID,
          podIP: ip,
          ...(hostNetwork ? { hostNetwork: true } : {}),
          port: 1 + g.int(65535),
          path: '/state',
          intervalMs: 100,
          timeoutMs: 100,
          maxBytes: 1,
          restartCount: 0,
          targets: [],
          lastSequence: 0,
          paused: true,
        };
        const which = g.pick(['restore', 'assignments']);
        const r =
          which === 'restore'
            ? await call(`/v1/blobs/apps/${UID}/restore`, 'POST', {
                podIP: ip,
                port: assignment.port,
                path: '/state',
                timeoutMs: 100,
                ...(hostNetwork ? { hostNetwork: true } : {}),
              })
            : await call('/v1/assignments', 'PUT', { pods: [assignment] });
        // A restore to a bad target is refused (400); a bad assignment is left out of the set and named.
        const refused =
          r.text.includes(`podIP ${ip}`) && (which === 'assignments' ? r.status === 200 : r.status === 400);
        if (refused !== refuse)
          fail(`${which} to ${ip} (hostNetwork ${hostNetwork}): ${r.status} ${r.text.slice(0, 200)}`);
        if (which === 'assignments' && refuse && guardedPuller.assignments().some((a) => a.podIP === ip))
          fail(`a refused assignment to ${ip} was kept`);
        outcome('pull/restore target addresses', refused ? 'refused' : 'admitted');
        if (which === 'assignments' && !refuse) await call('/v1/assignments', 'PUT', { pods: [] });
      },
    ],
    [
      'raw HTTP bytes',
      async () => {
        // Malformed requests, lying content-lengths and bodies that stop half-way.
        const lines = [
          `PUT /v1/blobs/apps/${UID}?policy=p&policyUID=u&pod=c&sequence=${Date.now()} HTTP/1.1\r\nhost: x\r\nauthorization: ${GOOD}\r\ncontent-length: ${g.int(5000)}\r\n\r\n${'x'.repeat(g.int(3000))}`,
          `GET /v1/blobs HTTP/1.1\r\n${g.string(200)}\r\n\r\n`,
          `${g.string(100)}\r\n\r\n`,
          `POST /v1/pulls HTTP/1.1\r\nhost: x\r\nauthorization: ${GOOD}\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n${g.pick(['zz', '5\r\n{"a":', 'ffffffff\r\n'])}`,
        ];
        await new Promise<void>((resolve) => {
          const s = connect(helperPort, '127.0.0.1', () => {
            s.write(g.pick(lines));
            setTimeout(() => s.destroy(), g.int(50));
          });
          s.on('error', () => undefined);
          s.on('close', () => resolve());
          s.setTimeout(2000, () => s.destroy());
        });
      },
    ],
    [
      'pull from a hostile app',
      async () => {
        const before = digests();
        const status = g.pick([200, 200, 200, 204, 301, 404, 500, 503]);
        const size = g.pick([0, 10, 1000, MAX_BLOB - 1, MAX_BLOB, MAX_BLOB + 1, MAX_BLOB * 4]);
        const behaviour = g.pick(['normal', 'lie-length', 'cut', 'slow', 'garbage-instance']);
        const payload = Buffer.alloc(size, g.int(256));
        appPlan = (_req, res) => {
          const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
          if (behaviour === 'lie-length') headers['content-length'] = Math.max(0, size - 5);
          if (behaviour === 'garbage-instance') headers['pull-state-instance'] = 'a b';
          res.writeHead(status, headers);
          if (behaviour === 'cut') {
            res.write(payload.subarray(0, size >> 1));
            setTimeout(() => res.destroy(), 5);
          } else if (behaviour === 'slow') {
            res.write(payload.subarray(0, 10));
            setTimeout(() => res.end(payload.subarray(10)), 400);
          } else res.end(payload);
        };
        // Increasing and near the clock, as a helper's sequences are (a helper refuses any a day ahead).
        const sequence = (lastSequence = Math.max(lastSequence + 1, Date.now()));
        const out = await pullState({
          source: `http://127.0.0.1:${appPort}/state`,
          timeoutMs: 300,
          maxBytes: MAX_BLOB,
          targets: [{ node: 'fuzz', url: helperUrl }],
          blob: { namespace: 'apps', policy: 'p', policyUID: 'u', pod: 'c', podUID: UID, sequence },
          authorization: { fuzz: GOOD },
        });
        // A shorter content-length is a complete answer by HTTP's rules: the state is what it declares.
        const sent = behaviour === 'lie-length' ? payload.subarray(0, Math.max(0, size - 5)) : payload;
        const complete =
          status === 200 && sent.length <= MAX_BLOB && (behaviour === 'normal' || behaviour === 'lie-length');
        if (out.ok !== complete)
          fail(
            `pull of status ${status}, ${size} bytes, ${behaviour}: ok=${out.ok} ${out.ok ? '' : out.message}`,
          );
        if (!out.ok) {
          const after = digests();
          for (const d of after)
            if (!before.has(d)) fail(`a failed pull (${behaviour}, ${status}) stored ${d}`);
        } else {
          const want = `sha256:${createHash('sha256').update(sent).digest('hex')}`;
          if (out.digest !== want) fail(`pull stored ${out.digest}, the app sent ${want}`);
          const meta = store.get(blobId('apps', UID), sequence);
          if (meta?.digest !== want) fail(`the stored copy ${meta?.digest} is not what the app sent`);
        }
      },
    ],
    [
      'restore into a hostile app',
      async () => {
        const status = g.pick([200, 204, 400, 500, 301]);
        const behaviour = g.pick(['normal', 'hang', 'destroy', 'huge-answer']);
        appPlan = (req, res) => {
          req.resume();
          if (behaviour === 'hang') return;
          if (behaviour === 'destroy') return void res.destroy();
          res.writeHead(status);
          res.end(behaviour === 'huge-answer' ? Buffer.alloc(1024 * 1024) : '');
        };
        const body = Buffer.alloc(g.int(5000), 7);
        const r = await pushState(
          { podIP: '127.0.0.1', port: appPort, path: '/state', timeoutMs: 300 },
          Readable.from([body]),
          { contentType: 'application/json', sizeBytes: body.length },
        );
        const good = behaviour !== 'hang' && behaviour !== 'destroy' && status >= 200 && status < 300;
        if ((r.result === 'Succeeded') !== good) fail(`restore into ${behaviour}/${status}: ${r.result}`);
      },
    ],
  ];

  // Warm up, then watch memory from there.
  for (const [, run] of surfaces) await run();
  if (typeof global.gc === 'function') global.gc();
  const rss0 = process.memoryUsage().rss;
  const deadline = Date.now() + flags.seconds * 1000;
  let lastCheck = Date.now();
  while (Date.now() < deadline && failures.length < 50) {
    const [name, run] = g.pick(surfaces);
    try {
      await run();
    } catch (err) {
      fail(`${name} threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    count(name);
    if (Date.now() - lastCheck > 5000) {
      lastCheck = Date.now();
      await checkStore('during the run');
      const health = await fetch(`${helperUrl}/healthz`).then(
        (r) => r.status,
        () => 0,
      );
      if (health !== 200) fail(`helper /healthz answered ${health}`);
    }
  }
  await checkStore('at the end');
  await new Promise((r) => setTimeout(r, 200));
  const growthMiB = Math.round((process.memoryUsage().rss - rss0) / 1024 ** 2);
  if (growthMiB > flags['max-rss-growth-mib']) fail(`resident memory grew ${growthMiB} MiB`);
  puller.stop();
  await tenant.close();
  await helper.close();
  guardedPuller.stop();
  await guarded.close();
  await rm(guardedDir, { recursive: true, force: true });
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
  await rm(dir, { recursive: true, force: true });
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  console.log(`fuzz: ${total} inputs in ${flags.seconds} s, memory +${growthMiB} MiB`);
  for (const [k, v] of Object.entries(counts)) {
    const ends = Object.entries(outcomes[k] ?? {}).sort(([a], [b]) => a.localeCompare(b));
    console.log(`  ${k}: ${v}${ends.length ? ` (${ends.map(([e, n]) => `${e} ${n}`).join(', ')})` : ''}`);
  }
  if (failures.length) {
    console.log(`fuzz: ${failures.length} problem(s) (seed ${seed}):`);
    for (const f of failures) console.log(`  - ${f}`);
    process.exit(1);
  }
  console.log('fuzz: no problem found');
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(err.message);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
