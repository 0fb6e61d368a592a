import { createHash } from 'node:crypto';
import { quotedText } from '../runtime/quoted-text.js';
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import {
  HELPER_API,
  INSTANCE_HEADER,
  INSTANCE_PATTERN,
  type CopyFields,
  type CopyTarget,
  type PullFailureReason,
  type PullOutcome,
  type StoredCopy,
} from '../api/index.js';
import { contentTypeOr } from '../runtime/header-value.js';

/** Keep-alive connections to Pods and helpers: a pull every second must not pay a TCP handshake each time. */
export const pullAgent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: 60_000 });

export interface PullRequest {
  /** `http://<podIP>:<port><path>` */
  source: string;
  timeoutMs: number;
  maxBytes: number;
  targets: CopyTarget[];
  /** What the helper records with the copy (the same fields its PUT takes). */
  blob: CopyFields;
  /** Bearer credentials for each target helper, by node: each is good at that helper only. */
  authorization: Record<string, string>;
  /** For `https://` targets: an agent that verifies the helpers' certificates against the operator's CA. */
  peerAgent?: HttpsAgent;
  /** When the GET is sent; the copies record it. */
  pulledAt?: number;
  /**
   * The process identity of the last copy: an answer with another one comes from a restarted process and is
   * never stored (its state is the empty start state).
   */
  expectedInstance?: string;
}

class PullError extends Error {
  constructor(
    readonly reason: PullFailureReason,
    message: string,
    readonly instance?: string,
  ) {
    super(message);
  }
}

async function readSome(res: IncomingMessage, limit = 256): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    if (n < limit) chunks.push(c);
    n += c.length;
    if (n > 64 * 1024) break;
  }
  return quotedText(Buffer.concat(chunks).subarray(0, limit).toString('utf8').trim(), limit, n > limit);
}

interface Upload {
  node: string;
  req: ClientRequest;
  response: Promise<{ status: number; body: string }>;
  error?: string;
  /** The helper answered before the body ended: a refusal (quota, busy); the body's rest is not sent. */
  refused?: number;
}

function startUpload(
  target: CopyTarget,
  r: PullRequest,
  answer: { contentType: string; pulledAt: number; instance?: string },
): Upload {
  const { contentType } = answer;
  const q = new URLSearchParams({
    policy: r.blob.policy,
    policyUID: r.blob.policyUID,
    pod: r.blob.pod,
    sequence: String(r.blob.sequence),
    pulledAt: String(answer.pulledAt),
  });
  if (r.blob.restartCount !== undefined) q.set('restartCount', String(r.blob.restartCount));
  if (r.blob.workload !== undefined) q.set('workload', r.blob.workload);
  if (answer.instance !== undefined) q.set('instance', answer.instance);
  const url = new URL(
    `${target.url}${HELPER_API}/blobs/${r.blob.namespace}/${r.blob.podUID}?${q.toString()}`,
  );
  const headers = { 'content-type': contentType, authorization: r.authorization[target.node] ?? '' };
  // A bearer token never goes to a helper over plain HTTP when the helpers speak HTTPS, nor unverified.
  const req =
    url.protocol === 'https:'
      ? httpsRequest(url, { method: 'PUT', agent: r.peerAgent ?? false, rejectUnauthorized: true, headers })
      : request(url, { method: 'PUT', agent: pullAgent, headers });
  // The body goes out in many writes: without this, Nagle holds the last TLS record until the peer's delayed
  // ACK (40 ms on Linux), which more than doubled a 1 MiB checkpoint.
  req.setNoDelay(true);
  const upload: Upload = {
    node: target.node,
    req,
    response: new Promise((resolve, reject) => {
      req.once('response', (res) => {
        if (res.statusCode !== 201) upload.refused = res.statusCode ?? 0;
        readSome(res, 4096).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
      });
      req.once('error', (err) => {
        upload.error ??= err.message;
        // A refusal's answer explains more than the reset that follows it (the helper closes the connection).
        if (upload.refused === undefined) reject(err);
      });
    }),
  };
  upload.response.catch(() => undefined);
  return upload;
}

/** The app's process identity header, if any; one that is not a short printable id is an error. */
function instanceOf(res: IncomingMessage, source: string): string | undefined {
  const value = res.headers[INSTANCE_HEADER];
  if (value === undefined) return undefined;
  if (typeof value === 'string' && INSTANCE_PATTERN.test(value)) return value;
  res.destroy();
  throw new PullError(
    'PullFailed',
    `${source} sent a ${INSTANCE_HEADER} header that is not 1-128 printable ASCII characters without spaces`,
  );
}

/** Resolves when a backed-up upload can take more, or is gone; leaves no listener behind either way. */
function drainedOrClosed(req: ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

/**
 * GETs a Pod's state and streams it into every target helper at once while hashing it: the state is never
 * held in memory as a whole. Only a complete 2xx body within `maxBytes` and `timeoutMs` is committed; on any
 * failure the uploads are aborted mid-body, so the helpers keep their previous copy.
 */
export async function pullState(r: PullRequest): Promise<PullOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  let uploads: Upload[] = [];
  let source: ClientRequest | undefined;
  // Built only when it fires: an Error's stack capture for every pull showed in the helper's profile.
  let timeout: PullError | undefined;
  const timer = setTimeout(() => {
    const err = new PullError('PullFailed', `no complete answer from ${r.source} within ${r.timeoutMs} ms`);
    timeout = err;
    source?.destroy(err);
    for (const u of uploads) u.req.destroy(err);
  }, r.timeoutMs);
  // Before the GET: a process started after this moment cannot have produced the answer.
  const pulledAt = r.pulledAt ?? Date.now();
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      source = request(r.source, { agent: pullAgent, headers: { accept: '*/*' } }, resolve);
      source.once('error', reject);
      source.end();
    }).catch((err: Error) => {
      throw err instanceof PullError
        ? err
        : new PullError('PullFailed', `GET ${r.source} failed: ${err.message}`);
    });
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const text = await readSome(res).catch(() => '');
      throw new PullError('PullFailed', `GET ${r.source} answered ${status}${text ? `: ${text}` : ''}`);
    }
    // 204/205 carry no body and 206 a part of one: stored, they would replace the state with nothing or a piece.
    if (status !== 200 && status !== 203) {
      res.destroy();
      throw new PullError(
        'PullFailed',
        `GET ${r.source} answered ${status}; only 200 with the whole state as its body is stored`,
      );
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > r.maxBytes) {
      res.destroy();
      throw new PullError('StateTooLarge', `state of ${declared} bytes exceeds maxStateBytes ${r.maxBytes}`);
    }
    // Sent on to the target helpers and, at a restore, back to the app: only a value a header can carry.
    const contentType = contentTypeOr(res.headers['content-type']);
    const instance = instanceOf(res, r.source);
    // A process that stopped naming itself is not the one the copies are of either.
    if (r.expectedInstance !== undefined && instance !== r.expectedInstance) {
      res.destroy();
      throw new PullError(
        'Restarted',
        `${r.source} answered from process ${instance ?? '(no id)'}, the copies are of ${r.expectedInstance}: the app restarted`,
        instance,
      );
    }
    uploads = r.targets.map((t) => startUpload(t, r, { contentType, pulledAt, instance }));
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > r.maxBytes)
          throw new PullError(
            'StateTooLarge',
            `state exceeds maxStateBytes ${r.maxBytes} (more than ${size - chunk.length} bytes sent)`,
          );
        hash.update(chunk);
        const waits: Promise<unknown>[] = [];
        for (const u of uploads) {
          if (u.error || u.refused !== undefined || u.req.destroyed) continue;
          if (!u.req.write(chunk)) waits.push(drainedOrClosed(u.req));
        }
        if (waits.length) await Promise.all(waits);
      }
    } catch (err) {
      if (err instanceof PullError) throw err;
      throw new PullError('PullFailed', `reading ${r.source} failed: ${(err as Error).message}`);
    }
    if (!res.complete) throw new PullError('PullFailed', `the answer of ${r.source} ended early`);
    const digest = `sha256:${hash.digest('hex')}`;
    for (const u of uploads) if (!u.error && u.refused === undefined) u.req.end();
    const stored: { node: string; meta: StoredCopy }[] = [];
    const failed: { node: string; message: string }[] = [];
    const refusals: number[] = [];
    await Promise.all(
      uploads.map(async (u) => {
        try {
          const answer = await u.response;
          if (answer.status !== 201) {
            refusals.push(answer.status);
            // A refusal that came before the body ended leaves the request half sent: its socket would
            // stay taken (and the agent's pool short of one) for as long as the target keeps it open.
            if (u.refused !== undefined) u.req.destroy();
            throw new Error(`helper answered ${answer.status}: ${answer.body}`);
          }
          const meta = JSON.parse(answer.body) as StoredCopy;
          if (meta.digest !== digest || meta.sizeBytes !== size)
            throw new Error(`helper stored ${meta.digest}, expected ${digest}`);
          stored.push({ node: u.node, meta });
        } catch (err) {
          const message =
            u.refused !== undefined ? (err as Error).message : (u.error ?? (err as Error).message);
          failed.push({ node: u.node, message });
        }
      }),
    );
    if (stored.length === 0) {
      // Every target refused for lack of space: this policy's states do not fit, a retry will not help soon.
      const full = refusals.length === uploads.length && refusals.every((s) => s === 507);
      return {
        ok: false,
        reason: full ? 'StorageFull' : 'HelperUnavailable',
        message: `no helper stored the state: ${failed.map((f) => `${f.node}: ${f.message}`).join('; ')}`,
        failed,
        durationMs: elapsed(),
      };
    }
    return {
      ok: true,
      sizeBytes: size,
      digest,
      contentType,
      ...(instance !== undefined ? { instance } : {}),
      stored,
      failed,
      durationMs: elapsed(),
    };
  } catch (err) {
    for (const u of uploads) u.req.destroy();
    source?.destroy();
    const e =
      timeout ?? (err instanceof PullError ? err : new PullError('PullFailed', (err as Error).message));
    return {
      ok: false,
      reason: e.reason,
      message: e.message,
      ...(e.instance !== undefined ? { instance: e.instance } : {}),
      durationMs: elapsed(),
    };
  } finally {
    clearTimeout(timer);
  }
}
