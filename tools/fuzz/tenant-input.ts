// Tenant input on its way into an outgoing request: liveness paths and ports from Pod specs, state and restore
// paths from policies, and the header values an app answers with, against an app on loopback that sends
// whatever bytes it likes. Every input must end in one of its surface's defined outcomes, and nothing may
// throw or leave a rejection behind (the run's own handlers catch those).
import { createHash } from 'node:crypto';
import { validateHeaderValue } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { INSTANCE_PATTERN, type PodFault, type PullAssignment } from '../../src/api/index.js';
import { NodePuller } from '../../src/helper/node-puller.js';
import { PodProber } from '../../src/helper/pod-prober.js';
import { pullState } from '../../src/helper/pull-state.js';
import { ReportOutbox } from '../../src/helper/report-outbox.js';
import { pushState } from '../../src/helper/restore-push.js';
import { probe, type ProbeOutcome } from '../../src/runtime/http-probe.js';
import type { Logger } from '../../src/runtime/logger.js';
import { requestPath } from '../../src/runtime/request-path.js';
import type { Gen } from './generate.js';

export type Surface = [string, () => Promise<void>];

interface Answer {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

interface Seen {
  target: string;
  contentType?: string;
}

/**
 * An app spoken to at the byte level: node's own server refuses to send a header value it could not parse
 * back, and such a value is exactly what a hostile or broken app sends.
 */
class RawApp {
  seen: Seen[] = [];
  answer: Answer = { status: 200, headers: [], body: Buffer.from('{}') };
  private sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<RawApp> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const app = new RawApp(server, (server.address() as AddressInfo).port);
    server.on('connection', (s) => app.serve(s));
    return app;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setTimeout(3000, () => socket.destroy());
    let buffered = Buffer.alloc(0);
    let head: { seen: Seen; length: number; start: number } | undefined;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!head) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
        const header = (name: string) =>
          lines
            .find((l) => l.toLowerCase().startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        head = {
          seen: { target: lines[0]?.split(' ')[1] ?? '', contentType: header('content-type') },
          length: Number(header('content-length') ?? 0) || 0,
          start: end + 4,
        };
        this.seen.push(head.seen);
      }
      // The whole body first: answering mid-upload would make the outcome a race.
      if (buffered.length - head.start < Math.min(head.length, 1024 * 1024)) return;
      const { status, headers } = this.answer;
      // A 204 has no body by HTTP's rules; sending one is a broken app of another kind than this one.
      const body = status === 204 ? Buffer.alloc(0) : this.answer.body;
      const lines = [`HTTP/1.1 ${status} X`, ...headers.map(([k, v]) => `${k}: ${v}`)];
      if (status !== 204) lines.push(`content-length: ${body.length}`);
      lines.push('connection: close', '', '');
      socket.end(Buffer.concat([Buffer.from(lines.join('\r\n'), 'utf8'), body]));
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

const PROBE_OUTCOMES = new Set<ProbeOutcome>(['ok', 'error', 'failed', 'unreachable', 'misconfigured']);
const PUSH_REASONS = new Set(['Unreachable', 'Rejected', 'Timeout']);
const PULL_REASONS = new Set(['PullFailed', 'StateTooLarge', 'HelperUnavailable', 'Restarted']);
const validPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
const sendableHeader = (v: string) => {
  try {
    validateHeaderValue('x', v);
    return true;
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const UIDS = Array.from({ length: 8 }, (_, i) => `0f4c2a1e-0000-0000-0000-00000000000${i}`);

export interface TenantInputContext {
  g: Gen;
  log: Logger;
  helperUrl: string;
  authorization: string;
  fail: (what: string) => void;
  /** Counts one input's outcome under its surface. */
  outcome: (surface: string, kind: string) => void;
}

/** The tenant-input surfaces and what to close after the run. */
export async function tenantInputSurfaces(
  c: TenantInputContext,
): Promise<{ surfaces: Surface[]; close: () => Promise<void> }> {
  const { g, fail } = c;
  const app = await RawApp.start();
  const puller = new NodePuller({
    outbox: new ReportOutbox({ capacity: 100, batchMs: 10 }),
    authorization: async () => c.authorization,
    concurrency: 4,
    log: c.log,
    pull: pullState,
  });
  const assignment = (uid: string, over: Partial<PullAssignment>): PullAssignment => ({
    namespace: 'apps',
    policy: 'p',
    policyUID: 'u',
    pod: `pod-${uid.slice(-1)}`,
    podUID: uid,
    podIP: '127.0.0.1',
    port: app.port,
    path: '/state',
    intervalMs: 1000,
    timeoutMs: 500,
    maxBytes: 64 * 1024,
    restartCount: 0,
    targets: [{ node: 'fuzz', url: c.helperUrl }],
    lastSequence: 0,
    ...over,
  });
  const randomAnswer = (statuses: number[], instance: boolean): Answer => ({
    status: g.pick(statuses),
    headers: [
      ['content-type', g.headerValue()],
      ...(instance && g.chance(0.5)
        ? [['pull-state-instance', g.chance(0.5) ? `id-${g.int(3)}` : g.headerValue()] as [string, string]]
        : []),
    ],
    body: Buffer.alloc(g.int(2000), g.int(256)),
  });
  /** The probe as every caller gets it, checked for never throwing. */
  const checkedProbe = async (ip: string, port: number, path: string, timeoutMs: number) => {
    try {
      return await probe(ip, port, path, timeoutMs);
    } catch (err) {
      fail(`probe(${JSON.stringify(ip)}, ${port}, ${JSON.stringify(path)}) threw: ${String(err)}`);
      return 'misconfigured' as const;
    }
  };

  const surfaces: Surface[] = [
    [
      'probe (tenant path and port)',
      async () => {
        const [path, port, ip] = [g.path(), g.port(app.port), g.pick(['127.0.0.1', '127.0.0.1', ''])];
        app.answer = randomAnswer([200, 204, 301, 404, 500], false);
        const before = app.seen.length;
        const outcome = await checkedProbe(ip, port, path, 300);
        c.outcome('probe (tenant path and port)', outcome);
        const target = requestPath(path);
        const sendable = target.ok && validPort(port) && ip !== '';
        if (!PROBE_OUTCOMES.has(outcome)) fail(`probe: undefined outcome ${String(outcome)}`);
        if ((outcome === 'misconfigured') === sendable)
          fail(`probe of ${JSON.stringify(path)} on port ${port} at ${JSON.stringify(ip)}: ${outcome}`);
        if (!sendable && app.seen.length !== before) fail(`probe sent ${JSON.stringify(path)} anyway`);
        if (target.ok && sendable && port === app.port && app.seen.at(-1)?.target !== target.path)
          fail(`probe sent ${app.seen.at(-1)?.target} for ${JSON.stringify(path)}, not ${target.path}`);
      },
    ],
    [
      'pod prober (tenant probe specs)',
      async () => {
        const pods = Array.from({ length: 1 + g.int(4) }, (_, i) => ({
          uid: UIDS[i]!,
          path: g.path(),
          port: g.port(app.port),
        }));
        app.answer = randomAnswer([200, 500], false);
        const probed = new Map<string, ProbeOutcome[]>();
        const faults: PodFault[] = [];
        const prober = new PodProber({
          report: (f) => faults.push(f),
          log: c.log,
          probe: async (ip, port, path, timeoutMs) => {
            const outcome = await checkedProbe(ip, port, path, timeoutMs);
            // The prober sends the path encoded: the Pods are told apart by that and their port.
            for (const p of pods) {
              const t = requestPath(p.path);
              if (t.ok && t.path === path && Object.is(p.port, port))
                probed.set(p.uid, [...(probed.get(p.uid) ?? []), outcome]);
            }
            return outcome;
          },
        });
        prober.assign(
          pods.map((p) =>
            assignment(p.uid, { probe: { port: p.port, path: p.path, periodMs: 50, failureThreshold: 1 } }),
          ),
        );
        const sent = pods.filter((p) => requestPath(p.path).ok);
        const deadline = Date.now() + 3000;
        while (sent.some((p) => !probed.has(p.uid)) && Date.now() < deadline) await sleep(20);
        prober.stop();
        for (const p of sent)
          if (!probed.has(p.uid)) fail(`the prober never probed path ${JSON.stringify(p.path)}`);
        for (const p of pods) {
          const ok = requestPath(p.path).ok;
          c.outcome('pod prober (tenant probe specs)', ok ? 'probed' : 'not sent (misconfigured)');
          // A probe that could not be sent is no evidence: such a Pod is never reported failed.
          if ((!ok || !validPort(p.port)) && faults.some((f) => f.podUID === p.uid))
            fail(`the prober reported ${JSON.stringify(p.path)} on port ${p.port} failed`);
        }
      },
    ],
    [
      'restore push (tenant path, content type)',
      async () => {
        const [path, port, contentType] = [g.path(), g.port(app.port), g.headerValue()];
        app.answer = randomAnswer([200, 204, 400, 500], true);
        const body = Buffer.alloc(g.int(3000), 7);
        const before = app.seen.length;
        let r;
        try {
          r = await pushState({ podIP: '127.0.0.1', port, path, timeoutMs: 500 }, Readable.from([body]), {
            contentType,
            sizeBytes: body.length,
          });
        } catch (err) {
          return fail(`restore push of ${JSON.stringify(path)} threw: ${String(err)}`);
        }
        c.outcome(
          'restore push (tenant path, content type)',
          r.result === 'Failed' ? `Failed/${r.reason}` : r.result,
        );
        if (r.result === 'Failed' && (!PUSH_REASONS.has(r.reason) || !r.message))
          fail(`restore push: undefined outcome ${JSON.stringify(r)}`);
        if (r.result === 'Succeeded' && r.instance !== undefined && !INSTANCE_PATTERN.test(r.instance))
          fail(`restore push passed on the instance ${JSON.stringify(r.instance)}`);
        const target = requestPath(path);
        if (!target.ok) {
          if (r.result !== 'Failed' || r.reason !== 'Rejected' || r.status !== undefined)
            fail(`restore push to ${JSON.stringify(path)}: ${r.result}`);
          if (app.seen.length !== before) fail(`restore push sent ${JSON.stringify(path)} anyway`);
          return;
        }
        if (port !== app.port || app.seen.length === before) return;
        const seen = app.seen.at(-1)!;
        if (seen.target !== target.path) fail(`restore push sent ${seen.target}, not ${target.path}`);
        const sent = seen.contentType ?? '';
        if (!sendableHeader(sent)) fail(`restore push sent the content type ${JSON.stringify(sent)}`);
        if (sent !== contentType.trim() && sent !== 'application/octet-stream')
          fail(
            `restore push sent the content type ${JSON.stringify(sent)} for ${JSON.stringify(contentType)}`,
          );
        if (/^(application|text)\/[a-z-]+(;.*)?$/.test(contentType) && sent !== contentType)
          fail(`restore push replaced the content type ${JSON.stringify(contentType)}`);
        // An answer node cannot parse (a control character in a header) is a failed push, like a reset.
        const parsable = app.answer.headers.every(([, v]) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(v));
        if (app.answer.status < 300 && parsable && r.result !== 'Succeeded')
          fail(`restore push into an app answering ${app.answer.status}: ${JSON.stringify(r)}`);
      },
    ],
    [
      'pull (tenant path, app headers)',
      async () => {
        const [path, port] = [g.path(), g.port(app.port)];
        app.answer = randomAnswer([200, 200, 200, 404], true);
        const before = app.seen.length;
        let report;
        try {
          report = await puller.pullNow(assignment(g.pick(UIDS), { path, port }));
        } catch (err) {
          return fail(`pull of ${JSON.stringify(path)} threw: ${String(err)}`);
        }
        c.outcome('pull (tenant path, app headers)', report.ok ? 'stored' : report.reason);
        if (!report.ok && (!PULL_REASONS.has(report.reason) || !report.message))
          fail(`pull: undefined outcome ${JSON.stringify(report)}`);
        const target = requestPath(path);
        if (!target.ok) {
          if (report.ok || report.reason !== 'PullFailed')
            fail(`pull of ${JSON.stringify(path)} got ${report.ok}`);
          if (app.seen.length !== before) fail(`pull sent ${JSON.stringify(path)} anyway`);
          return;
        }
        // The pull's URL goes through WHATWG URL parsing, which drops an empty query and encodes a few more
        // characters of the query: the same request to any app.
        const url = new URL(`http://x${target.path}`);
        const want = `${url.pathname}${url.search}`;
        if (port === app.port && app.seen.length > before && app.seen.at(-1)!.target !== want)
          fail(`pull sent ${app.seen.at(-1)!.target}, not ${want}`);
        if (!report.ok) return;
        if (!sendableHeader(report.contentType))
          fail(`pull stored the content type ${JSON.stringify(report.contentType)}`);
        const digest = `sha256:${createHash('sha256').update(app.answer.body).digest('hex')}`;
        if (report.digest !== digest) fail(`pull stored ${report.digest}, the app sent ${digest}`);
      },
    ],
  ];
  return {
    surfaces,
    close: async () => {
      puller.stop();
      await app.close();
    },
  };
}
