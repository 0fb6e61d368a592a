import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { registerProbes } from '../runtime/probes.js';
import type { Logger } from '../runtime/logger.js';
import { BlobStore, StoreError, blobId, sequenceProblem } from './blob-store.js';
import { CopyHolds } from './copy-holds.js';
import {
  HELPER_API,
  INSTANCE_PATTERN,
  WORKLOAD_PATTERN,
  MAX_RESTORE_TIMEOUT_MS,
  type AssignmentSet,
  type HoldSet,
  type PeerProbeAnswer,
  type PeerProbeRequest,
  type Inventory,
  type PullAssignment,
  type RestoreRequest,
  type RestoreResult,
} from '../api/index.js';
import type { NodePuller } from './node-puller.js';
import type { PodProber } from './pod-prober.js';
import { helperMetrics, type HelperMetrics } from './metrics.js';
import type { ReportOutbox } from './report-outbox.js';
import { pushState } from './restore-push.js';
import { RestoreLedger, ledgerKey } from './restore-ledger.js';
import type { Verdict } from './token-reviewer.js';
import { probe as httpProbe, type ProbeOutcome } from '../runtime/http-probe.js';
import { canonicalIP, hostPort, isLoopback, notAPodIP, sameIP } from '../runtime/ip-address.js';

export interface HelperServerOptions {
  store: BlobStore;
  nodeName: string;
  review: (authorization: string | undefined) => Promise<Verdict>;
  /** Which Pods' copies this helper keeps, and from which node (PUT /v1/holds); default: a new list. */
  holds?: CopyHolds;
  /** Pulls this node's Pods; absent: the helper only stores and restores. */
  puller?: NodePuller;
  /** Probes this node's fast-failover Pods. */
  prober?: PodProber;
  metrics?: HelperMetrics;
  outbox?: ReportOutbox;
  /**
   * The helpers' own identity: it may store copies (a helper streams the copies of its node's Pods to the
   * others) and nothing else.
   */
  peerUser?: string;
  /** Probes the health port of other nodes' helpers for the leader (`POST /v1/probe`); absent: 404. */
  peerProbe?: PeerProbeOptions;
  /**
   * This helper's node address (downward API `status.hostIP`): a pull or restore there reaches the node's own
   * ports, so it is done only for a Pod marked `hostNetwork` (its policy allowed it).
   */
  nodeIP?: string;
  /**
   * Lets pulls and restores go to 127.0.0.0/8: for unit tests and the fuzzer, whose apps run on this
   * machine's loopback. A helper in a Pod never sets it (its loopback is its own).
   */
  allowLoopbackTargets?: boolean;
  /** The helper's clock (epoch ms), against which copies' sequences are bounded; tests pass a fixed one. */
  now?: () => number;
  /** Serve HTTPS with this key and certificate (the helper always does; unit tests may serve plain HTTP). */
  tls?: { key: string; cert: string };
  log: Logger;
}

export interface PeerProbeOptions {
  /** The helpers' health port (one DaemonSet: the same on every node); the only port ever probed. */
  healthPort: number;
  /** This helper's own Pod IP: probing itself is no second vantage point. */
  podIP?: string;
  /** One HTTP probe; tests pass a scripted one. */
  probe?: (ip: string, port: number, path: string, timeoutMs: number) => Promise<ProbeOutcome>;
}

/** Indirect probes running at once; more are refused (429): the leader asks for a few per suspect node. */
const MAX_PEER_PROBES = 32;

/**
 * Why a pull or restore must not go to `ip` (undefined: it may). The controller's refusal of hostNetwork
 * Pods is the rule; this is the second line. Even a caller replaying the controller's credential gets no
 * loopback, link-local (the clouds' metadata service) or reserved target. The own-node rule keeps a mistaken
 * assignment from reading the node's ports (pulls are made on the Pod's own node); a caller that claims
 * hostNetwork passes it, and restores pushed from other nodes cannot know the target node's address.
 */
export function targetProblem(
  ip: string,
  hostNetwork: boolean | undefined,
  o: { nodeIP?: string; allowLoopbackTargets?: boolean } = {},
): string | undefined {
  const loopbackAllowed = o.allowLoopbackTargets === true && isLoopback(ip);
  if (notAPodIP(ip) && !loopbackAllowed)
    return `podIP ${ip} is not a Pod address (loopback, link-local, multicast or reserved); allowed: the IP of a Pod`;
  if (sameIP(ip, o.nodeIP) && !hostNetwork)
    return `podIP ${ip} is this helper's node; allowed: a Pod IP, or the node's for a hostNetwork Pod whose policy sets allowHostNetwork`;
  return undefined;
}

const peerProbeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'ip'],
  properties: {
    node: { type: 'string', minLength: 1, maxLength: 253 },
    ip: { type: 'string', format: 'ip-address' },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 2000, default: 400 },
  },
} as const;

/** Longest long poll of `GET /v1/reports`. */
const MAX_REPORT_WAIT_MS = 60_000;

interface BlobParams {
  namespace: string;
  podUID: string;
}

const restoreSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['podIP', 'port', 'path'],
  properties: {
    podIP: { type: 'string', format: 'ip-address' },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    path: { type: 'string', pattern: '^/[^\\s?#]*$', maxLength: 1024 },
    timeoutMs: { type: 'integer', minimum: 100, maximum: MAX_RESTORE_TIMEOUT_MS, default: 5000 },
    sequence: { type: 'integer', minimum: 0 },
    hostNetwork: { type: 'boolean' },
    target: {
      type: 'object',
      additionalProperties: false,
      required: ['podUID', 'restartCount'],
      properties: {
        podUID: { type: 'string', pattern: '^[0-9a-f-]{1,64}$' },
        restartCount: { type: 'integer', minimum: 0 },
        instance: { type: 'string', pattern: INSTANCE_PATTERN.source },
      },
    },
  },
} as const;

const uidPattern = '^[0-9a-f-]{1,64}$';
const dnsName = { type: 'string', minLength: 1, maxLength: 253 } as const;

export const assignmentSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'namespace',
    'policy',
    'policyUID',
    'pod',
    'podUID',
    'podIP',
    'port',
    'path',
    'intervalMs',
    'timeoutMs',
    'maxBytes',
    'restartCount',
    'targets',
    'lastSequence',
  ],
  properties: {
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' },
    policy: dnsName,
    policyUID: { type: 'string', minLength: 1, maxLength: 64 },
    pod: dnsName,
    podUID: { type: 'string', pattern: uidPattern },
    workload: { type: 'string', pattern: WORKLOAD_PATTERN.source },
    podIP: { type: 'string', format: 'ip-address' },
    hostNetwork: { type: 'boolean' },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    path: { type: 'string', pattern: '^/[^\\s?#]*$', maxLength: 1024 },
    intervalMs: { type: 'integer', minimum: 100, maximum: 86_400_000 },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 3_600_000 },
    maxBytes: { type: 'integer', minimum: 1 },
    restartCount: { type: 'integer', minimum: 0 },
    targets: {
      type: 'array',
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['node', 'url'],
        properties: {
          node: dnsName,
          url: { type: 'string', pattern: '^https?://[^\\s/?#]+$', maxLength: 300 },
        },
      },
    },
    instance: { type: 'string', pattern: INSTANCE_PATTERN.source },
    lastSequence: { type: 'integer', minimum: 0 },
    paused: { type: 'boolean' },
    probe: {
      type: 'object',
      additionalProperties: false,
      required: ['port', 'path', 'periodMs', 'failureThreshold'],
      properties: {
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        path: { type: 'string', pattern: '^/[^\\s#]*$', maxLength: 1024 },
        periodMs: { type: 'integer', minimum: 50, maximum: 600_000 },
        failureThreshold: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    },
  },
} as const;

const assignmentSetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['pods'],
  properties: { pods: { type: 'array', maxItems: 100_000, items: assignmentSchema } },
} as const;

/** An upload that sends nothing for this long is dropped (a drip app's copy sends a byte a second). */
const UPLOAD_IDLE_MS = 120_000;

const holdSetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['holds'],
  properties: {
    holds: {
      type: 'array',
      maxItems: 1_000_000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['namespace', 'podUID', 'node'],
        properties: {
          namespace: { type: 'string', minLength: 1, maxLength: 63 },
          podUID: { type: 'string', minLength: 1, maxLength: 64 },
          node: { type: 'string', minLength: 1, maxLength: 253 },
        },
      },
    },
  },
} as const;

const reportsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    after: { type: 'integer', minimum: 0 },
    boot: { type: 'string', maxLength: 64 },
    waitMs: { type: 'integer', minimum: 0, maximum: MAX_REPORT_WAIT_MS, default: 0 },
  },
} as const;

const generationQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { sequence: { type: 'integer', minimum: 0 } },
} as const;

const deleteQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { newerThan: { type: 'integer', minimum: 0 } },
} as const;

const putQuerySchema = {
  type: 'object',
  required: ['policy', 'policyUID', 'pod', 'sequence'],
  properties: {
    policy: { type: 'string', minLength: 1, maxLength: 253 },
    policyUID: { type: 'string', minLength: 1, maxLength: 64 },
    pod: { type: 'string', minLength: 1, maxLength: 253 },
    workload: { type: 'string', pattern: WORKLOAD_PATTERN.source },
    sequence: { type: 'integer', minimum: 0 },
    restartCount: { type: 'integer', minimum: 0 },
    pulledAt: { type: 'integer', minimum: 0 },
    instance: { type: 'string', pattern: INSTANCE_PATTERN.source },
  },
} as const;

const notStored = (sequence: number | undefined) =>
  sequence === undefined
    ? 'no state stored for this Pod on this node'
    : `no generation with sequence ${sequence} stored for this Pod on this node`;

function sendStoreError(reply: FastifyReply, err: unknown): FastifyReply {
  if (!(err instanceof StoreError)) throw err;
  if (err.status === 503) reply.header('retry-after', '1');
  return reply.code(err.status).send({ error: err.message, reason: err.reason });
}

/**
 * The helper's HTTP API. Every `/v1` call needs the controller's bearer token; bodies of PUT are streamed to
 * disk, never parsed or buffered by fastify.
 */
export function buildHelperServer(o: HelperServerOptions): FastifyInstance {
  // Long polls must not hold a shutdown for their full wait.
  const options = {
    logger: false,
    forceCloseConnections: true,
    ajv: {
      customOptions: {
        removeAdditional: false,
        // Pod and node addresses of IPv4, IPv6 and dual-stack clusters (zones and non-addresses refused).
        formats: { 'ip-address': (s: string) => canonicalIP(s) !== undefined },
      },
    },
  } as const;
  // One instance type for both: the routes do not care which transport carries them.
  const app = (o.tls
    ? Fastify({ ...options, https: o.tls })
    : Fastify(options)) as unknown as FastifyInstance;
  const m = o.metrics ?? helperMetrics(o.store);
  const ledger = new RestoreLedger<RestoreResult>();
  registerProbes(app, m.registry, { healthy: () => true, notReadyBecause: () => undefined });

  app.addHook('onResponse', async (req, reply) => {
    m.requests.inc({ route: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) });
  });

  const holds = o.holds ?? new CopyHolds();
  /** Who sent each request (after TokenReview): a peer's copies are checked against the holds. */
  const callers = new WeakMap<FastifyRequest, Extract<Verdict, { ok: true }>>();

  app.register(
    async (api) => {
      api.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
        // A refused upload's body is never read: close its connection rather than leave it half sent.
        const refuse = (status: number, error: string) => {
          if (req.method === 'PUT') reply.header('connection', 'close');
          return reply.code(status).send({ error });
        };
        let verdict: Verdict;
        try {
          verdict = await o.review(req.headers.authorization);
        } catch (err) {
          o.log.warn('TokenReview failed', { error: String(err) });
          return refuse(503, 'cannot check the token now (TokenReview failed); retry');
        }
        if (!verdict.ok) {
          if (verdict.status === 401) reply.header('www-authenticate', 'Bearer');
          return refuse(verdict.status, verdict.message);
        }
        callers.set(req, verdict);
        if (
          verdict.user === o.peerUser &&
          !(req.method === 'PUT' && req.url.startsWith(`${HELPER_API}/blobs/`))
        )
          return refuse(403, `${verdict.user} may only store copies (PUT ${HELPER_API}/blobs/...)`);
      });

      api.put<{ Body: HoldSet }>(
        '/holds',
        { schema: { body: holdSetSchema }, bodyLimit: 64 * 1024 * 1024 },
        async (req) => {
          const before = holds.list()?.length;
          const count = holds.set(req.body.holds);
          if (before !== count) o.log.info('holds', { pods: count });
          return { holds: count };
        },
      );

      api.get('/holds', async (_req, reply) => {
        const list = holds.list();
        return list ? { holds: list } : reply.code(404).send({ error: 'no holds received yet' });
      });

      const puller = o.puller;
      const outbox = o.outbox;
      if (puller && outbox) {
        api.put<{ Body: AssignmentSet }>(
          '/assignments',
          { schema: { body: assignmentSetSchema }, bodyLimit: 64 * 1024 * 1024 },
          async (req) => {
            // A bad target is left out alone: refusing the whole set would stop every pull of the node.
            const refused: string[] = [];
            const admitted = req.body.pods.filter((a) => {
              const problem = targetProblem(a.podIP, a.hostNetwork, o);
              if (problem) {
                refused.push(`${a.namespace}/${a.pod}: ${problem}`);
                o.log.warn('assignment refused', { pod: `${a.namespace}/${a.pod}`, problem });
              }
              return !problem;
            });
            const { pods, added, removed } = puller.assign(admitted);
            o.prober?.assign(admitted);
            if (added || removed) o.log.info('assignments', { pods, added, removed });
            return refused.length > 0 ? { pods, refused } : { pods };
          },
        );

        api.get('/assignments', async (): Promise<AssignmentSet> => ({ pods: puller.assignments() }));

        api.post<{ Body: PullAssignment }>(
          '/pulls',
          { schema: { body: assignmentSchema } },
          async (req, reply) => {
            const problem = targetProblem(req.body.podIP, req.body.hostNetwork, o);
            if (problem) return reply.code(400).send({ error: problem });
            return puller.pullNow(req.body);
          },
        );

        api.get<{ Querystring: { after?: number; boot?: string; waitMs: number } }>(
          '/reports',
          { schema: { querystring: reportsQuerySchema } },
          async (req) => {
            const gone = new AbortController();
            req.raw.once('close', () => gone.abort());
            return outbox.next(req.query.after ?? 0, req.query.boot, req.query.waitMs, gone.signal);
          },
        );
      }

      const peerProbe = o.peerProbe;
      if (peerProbe) {
        const probe = peerProbe.probe ?? httpProbe;
        let running = 0;
        // Only the controller gets here (the peer identity may only store copies). It names an address, but
        // the port is the helpers' health port and the path /readyz, whatever it sends, and the answer is the
        // outcome alone: no body, no header. So the endpoint cannot reach an app's state port (which admits
        // helpers), and tells the caller no more than whether something answers on the helpers' health port.
        api.post<{ Body: PeerProbeRequest }>(
          '/probe',
          { schema: { body: peerProbeSchema } },
          async (req, reply): Promise<PeerProbeAnswer | FastifyReply> => {
            const { node, ip, timeoutMs = 400 } = req.body;
            if (node === o.nodeName || sameIP(ip, peerProbe.podIP))
              return reply.code(400).send({ error: 'a helper is no second opinion on itself' });
            if (notAPodIP(ip))
              return reply.code(403).send({ error: `${ip} cannot be a helper Pod's IP: not probed` });
            if (running >= MAX_PEER_PROBES)
              return reply.code(429).send({ error: `${MAX_PEER_PROBES} peer probes running already` });
            running++;
            try {
              const outcome = await probe(ip, peerProbe.healthPort, '/readyz', timeoutMs);
              if (outcome !== 'ok') o.log.info('peer probe', { node, ip, outcome });
              return { outcome };
            } finally {
              running--;
            }
          },
        );
      }

      // `?podUID=` narrows it to one Pod's generations (a restore that must know the very newest copy).
      api.get<{ Querystring: { podUID?: string } }>(
        '/blobs',
        {
          schema: {
            querystring: {
              type: 'object',
              additionalProperties: false,
              properties: { podUID: { type: 'string', pattern: uidPattern } },
            },
          },
        },
        async (req): Promise<Inventory> => ({
          node: o.nodeName,
          usedBytes: o.store.usedBytes(),
          quotaBytes: o.store.limits.quotaBytes,
          blobs: req.query.podUID
            ? o.store.list().filter((b) => b.podUID === req.query.podUID)
            : o.store.list(),
        }),
      );

      api.get<{ Params: BlobParams; Querystring: { sequence?: number } }>(
        '/blobs/:namespace/:podUID',
        { schema: { querystring: generationQuerySchema } },
        async (req, reply) => {
          try {
            const found = o.store.read(blobId(req.params.namespace, req.params.podUID), req.query.sequence);
            if (!found) return reply.code(404).send({ error: notStored(req.query.sequence) });
            reply.header('content-type', found.meta.contentType);
            reply.header('content-length', found.meta.sizeBytes);
            reply.header('x-checkpoint-sequence', found.meta.sequence);
            reply.header('x-checkpoint-digest', found.meta.digest);
            return reply.send(found.body);
          } catch (err) {
            return sendStoreError(reply, err);
          }
        },
      );

      // `?newerThan=N` drops only the generations after N (pulled after the app may have restarted).
      api.delete<{ Params: BlobParams; Querystring: { newerThan?: number } }>(
        '/blobs/:namespace/:podUID',
        { schema: { querystring: deleteQuerySchema } },
        async (req, reply) => {
          try {
            const id = blobId(req.params.namespace, req.params.podUID);
            const { newerThan } = req.query;
            if (newerThan !== undefined) {
              const dropped = await o.store.deleteNewerThan(id, newerThan);
              return reply.code(200).send({ dropped });
            }
            const deleted = await o.store.delete(id);
            return reply.code(deleted ? 204 : 404).send(deleted ? undefined : { error: 'no such blob' });
          } catch (err) {
            return sendStoreError(reply, err);
          }
        },
      );

      api.post<{ Params: BlobParams; Body: RestoreRequest }>(
        '/blobs/:namespace/:podUID/restore',
        { schema: { body: restoreSchema } },
        async (req, reply) => {
          let id: string;
          try {
            id = blobId(req.params.namespace, req.params.podUID);
          } catch (err) {
            return sendStoreError(reply, err);
          }
          const problem = targetProblem(req.body.podIP, req.body.hostNetwork, o);
          if (problem) return reply.code(400).send({ error: problem });
          const { sequence, target } = req.body;
          if (!o.store.get(id, sequence)) return reply.code(404).send({ error: notStored(sequence) });
          const push = async (): Promise<RestoreResult> => {
            // Read when the push starts: a joined or repeated request must not open a stream it never uses.
            const found = o.store.read(id, sequence);
            if (!found) {
              return {
                result: 'Failed',
                reason: 'Rejected',
                message: notStored(sequence),
                durationMs: 0,
                sequence: sequence ?? 0,
                digest: '',
                sizeBytes: 0,
              };
            }
            const result = await pushState(req.body, found.body, found.meta);
            m.restoreSeconds.observe({ result: result.result }, result.durationMs / 1000);
            const { message: detail, ...outcome } = 'message' in result ? result : { ...result, message: '' };
            // An app not listening yet is retried every 250 ms: that is routine, not news.
            const level = 'reason' in result && result.reason === 'Unreachable' ? 'debug' : 'info';
            o.log[level]('restore', {
              blob: found.meta.id,
              sequence: found.meta.sequence,
              target: hostPort(req.body.podIP, req.body.port),
              ...outcome,
              ...(detail ? { detail } : {}),
            });
            const { digest, sizeBytes } = found.meta;
            return { ...result, sequence: found.meta.sequence, digest, sizeBytes };
          };
          const { answer, repeated } = target
            ? await ledger.run(ledgerKey(req.params.namespace, target), push)
            : { answer: await push(), repeated: false };
          if (repeated)
            o.log.info('restore asked again for the same process; already done', { blob: id, target });
          return reply
            .code(answer.result === 'Succeeded' ? 200 : 502)
            .send(repeated ? { ...answer, alreadyRestored: true } : answer);
        },
      );

      // A body of any content type is the state itself: hand the raw stream to the store.
      api.register(async (raw) => {
        raw.removeAllContentTypeParsers();
        raw.addContentTypeParser('*', (_req, _payload, done) => done(null));
        raw.put<{
          Params: BlobParams;
          Querystring: {
            policy: string;
            policyUID: string;
            pod: string;
            workload?: string;
            sequence: number;
            restartCount?: number;
            pulledAt?: number;
            instance?: string;
          };
        }>('/blobs/:namespace/:podUID', { schema: { querystring: putQuerySchema } }, async (req, reply) => {
          const implausible = sequenceProblem(req.query.sequence, (o.now ?? Date.now)());
          if (implausible) return reply.header('connection', 'close').code(400).send({ error: implausible });
          const caller = callers.get(req);
          // Where a copy comes from is what custody checks: a peer token that names no node (not bound to a
          // helper Pod, or Kubernetes before 1.30) could come from any node, so it stores nothing.
          if (caller?.user === o.peerUser && caller?.node === undefined) {
            o.metrics?.uploadsRefused.inc({ namespace: '', reason: 'NoNode' });
            return reply.header('connection', 'close').code(403).send({
              error:
                "the sender's token names no node; allowed: a helper token bound to the helper's Pod (Kubernetes 1.30+ names its node)",
              reason: 'NoNode',
            });
          }
          const unheld =
            caller?.user === o.peerUser
              ? holds.problem(req.params.namespace, req.params.podUID, caller?.node)
              : undefined;
          if (unheld) {
            // Not by the namespace the sender named: a stolen token could mint a series per name.
            o.metrics?.uploadsRefused.inc({ namespace: '', reason: 'NotHeld' });
            o.log.warn('copy refused', {
              blob: `${req.params.namespace}/${req.params.podUID}`,
              problem: unheld,
            });
            return reply.header('connection', 'close').code(403).send({ error: unheld, reason: 'NotHeld' });
          }
          // A sender that stops sending mid-body (its node lost, no FIN) must not keep its upload slot and
          // disk reservation for as long as TCP takes to notice.
          const socket = req.raw.socket;
          // Removed again after the upload: a kept-alive connection carries many uploads, and a listener left
          // per upload piled up on it (Node's MaxListenersExceededWarning after ten).
          const idle = () => socket.destroy(new Error('upload idle'));
          socket.setTimeout(UPLOAD_IDLE_MS, idle);
          try {
            const digest = req.headers['x-checkpoint-digest'];
            const meta = await o.store.put(
              {
                namespace: req.params.namespace,
                podUID: req.params.podUID,
                policy: req.query.policy,
                policyUID: req.query.policyUID,
                pod: req.query.pod,
                ...(req.query.workload !== undefined ? { workload: req.query.workload } : {}),
                sequence: req.query.sequence,
                ...(req.query.restartCount !== undefined ? { restartCount: req.query.restartCount } : {}),
                ...(req.query.pulledAt !== undefined ? { pulledAt: req.query.pulledAt } : {}),
                ...(req.query.instance !== undefined ? { instance: req.query.instance } : {}),
                contentType: req.headers['content-type'] ?? 'application/octet-stream',
                ...(typeof digest === 'string' ? { expectedDigest: digest } : {}),
              },
              req.raw,
            );
            return reply.code(201).send({ ...meta, kept: o.store.sequences(meta.id) });
          } catch (err) {
            // The client went away mid-body: nothing was stored, and nobody reads the answer.
            if (req.raw.destroyed && !(err instanceof StoreError)) return reply.code(400).send();
            if (err instanceof StoreError) {
              o.metrics?.uploadsRefused.inc({ namespace: req.params.namespace, reason: err.reason });
              // The rest of the body may not have been read: close, rather than drain it for nothing.
              reply.header('connection', 'close');
            }
            return sendStoreError(reply, err);
          } finally {
            socket.setTimeout(0);
            socket.off('timeout', idle);
          }
        });
      });
    },
    { prefix: HELPER_API },
  );

  app.setErrorHandler((err: { statusCode?: number; message: string; validation?: unknown }, _req, reply) => {
    if (err.validation) return reply.code(400).send({ error: err.message });
    const status = err.statusCode ?? 500;
    // A client's mistake (415, 413, a body that stopped mid-way) is the client's news, not the helper's.
    if (status < 500) o.log.debug('helper request refused', { status, error: err.message });
    else o.log.error('helper request failed', { error: err.message });
    return reply.code(status).send({ error: err.message });
  });
  return app;
}
