import {
  HELPER_API,
  type AssignmentSet,
  type HoldSet,
  type Inventory,
  type PeerProbeAnswer,
  type PeerProbeRequest,
  type PullAssignment,
  type PullReport,
  type ReportBatch,
  type RestoreRequest,
  type RestoreResult,
} from '../../api/index.js';
import { Agent, fetch as undiciFetch } from 'undici';
import type { HelperCredentials } from '../../kube/bearer-token.js';
import type { HelperEndpoint } from './cluster-view.js';

/** The helper a call goes to: its API address, and its node (whose audience its token is for). */
export type HelperTarget = Pick<HelperEndpoint, 'url' | 'node'>;

/**
 * A helper's restore answer. NotStored: it does not hold that generation (any more). Refused: it will never
 * accept this request as sent (a 4xx for the request itself, e.g. a path it cannot send or a timeout beyond its
 * limit), so only a change of the policy or the Pod can make a retry succeed.
 */
export type RestoreAnswer =
  | RestoreResult
  | { result: 'Failed'; reason: 'NotStored'; message: string }
  | { result: 'Failed'; reason: 'Refused'; status: number; message: string };

/**
 * Helper answers that say the request itself is wrong. Not 401/403 (a token or certificate being rotated),
 * 404 (NotStored), 409 or 429 (the helper is busy): those can pass on a later try.
 */
const REFUSED = new Set([400, 413, 415, 422]);

type Response = Awaited<ReturnType<typeof undiciFetch>>;
type RequestInit = NonNullable<Parameters<typeof undiciFetch>[1]>;

/** This replica's term as leader ran out: what it was about to do is its successor's to decide. */
export class NotLeadingError extends Error {
  constructor(what: string) {
    super(`not leading any more: no ${what}`);
  }
}

/**
 * Calls to the helpers' HTTPS API with the controller's own ServiceAccount token (for the audience of the
 * called helper's node only), verifying each helper's certificate against the operator's CA and its Pod IP.
 */
export class HelperClient {
  private readonly dispatcher: Agent;

  /**
   * `mayAct` is asked right before a call that changes what a Pod runs with or what is kept (a restore, a
   * delete): a leader whose term ran out (its step-down timer late, its exit under way) sends neither.
   */
  constructor(
    private readonly credentials: HelperCredentials,
    caPem: string,
    private readonly mayAct: () => boolean = () => true,
  ) {
    this.dispatcher = new Agent({ connect: { ca: caPem }, keepAliveTimeout: 30_000 });
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }

  private async call(
    helper: HelperTarget,
    path: string,
    init: RequestInit & { timeoutMs?: number; abort?: AbortSignal } = {},
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(init.timeoutMs ?? 5000);
    return undiciFetch(`${helper.url}${HELPER_API}${path}`, {
      ...init,
      dispatcher: this.dispatcher,
      headers: {
        ...(init.headers as Record<string, string>),
        authorization: await this.credentials.header(helper.node),
      },
      signal: init.abort ? AbortSignal.any([timeout, init.abort]) : timeout,
    });
  }

  private async json<T>(helper: HelperTarget, res: Response): Promise<T> {
    if (!res.ok) throw new Error(`helper ${helper.url} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** What a helper stores: everything, or one Pod's generations. */
  async inventory(helper: HelperTarget, podUID?: string, timeoutMs = 5000): Promise<Inventory> {
    const query = podUID ? `?podUID=${encodeURIComponent(podUID)}` : '';
    return this.json(helper, await this.call(helper, `/blobs${query}`, { timeoutMs }));
  }

  /** Replaces the set of Pods a helper pulls on its own timer. */
  async assign(helper: HelperTarget, set: AssignmentSet): Promise<void> {
    await this.json(
      helper,
      await this.call(helper, `/assignments`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(set),
        timeoutMs: 10_000,
      }),
    );
  }

  /**
   * Tells a helper which Pods' copies it keeps and from which node; false if the helper predates holds (it
   * answers 404 and keeps taking every copy its peers send).
   */
  async holds(helper: HelperTarget, set: HoldSet): Promise<boolean> {
    const res = await this.call(helper, `/holds`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(set),
      timeoutMs: 10_000,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return false;
    }
    await this.json(helper, res);
    return true;
  }

  /** Has a Pod's helper pull it once, now; answers when the copies are stored (or the pull failed). */
  async pull(helper: HelperTarget, a: PullAssignment): Promise<PullReport> {
    const res = await this.call(helper, `/pulls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(a),
      // It may wait for the Pod's scheduled pull first; a final pull waits on this, so no more than that.
      timeoutMs: 2 * a.timeoutMs + 1000,
    });
    return this.json(helper, res);
  }

  /** The helper's pull reports after `after`; waits up to `waitMs` for some. */
  async reports(
    helper: HelperTarget,
    after: number,
    boot: string | undefined,
    waitMs: number,
    abort: AbortSignal,
  ): Promise<ReportBatch> {
    const q = new URLSearchParams({ after: String(after), waitMs: String(waitMs) });
    if (boot) q.set('boot', boot);
    const res = await this.call(helper, `/reports?${q.toString()}`, { timeoutMs: waitMs + 10_000, abort });
    return this.json(helper, res);
  }

  /** Deletes a Pod's copies on a helper: all of them, or only the generations after `newerThan`. */
  async delete(helper: HelperTarget, namespace: string, podUID: string, newerThan?: number): Promise<void> {
    if (!this.mayAct()) throw new NotLeadingError('delete copies');
    const query = newerThan === undefined ? '' : `?newerThan=${newerThan}`;
    const res = await this.call(helper, `/blobs/${namespace}/${podUID}${query}`, {
      method: 'DELETE',
    });
    if (!res.ok && res.status !== 404)
      throw new Error(`helper ${helper.url} answered ${res.status}: ${await res.text()}`);
  }

  /**
   * Has a helper probe the health port of another node's helper (an indirect probe); the outcome it saw.
   * Throws if this helper could not be asked: that is no report on the other one.
   */
  async probe(helper: HelperTarget, target: PeerProbeRequest, timeoutMs: number): Promise<string> {
    const res = await this.call(helper, `/probe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(target),
      timeoutMs,
    });
    const { outcome } = await this.json<PeerProbeAnswer>(helper, res);
    if (typeof outcome !== 'string') throw new Error(`helper ${helper.url} answered no probe outcome`);
    return outcome;
  }

  /** Asks a helper to push its copy into a Pod; the answer says whether to retry. */
  async restore(
    helper: HelperTarget,
    namespace: string,
    podUID: string,
    target: RestoreRequest,
  ): Promise<RestoreAnswer> {
    if (!this.mayAct()) throw new NotLeadingError('restore');
    const res = await this.call(helper, `/blobs/${namespace}/${podUID}/restore`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(target),
      timeoutMs: target.timeoutMs + 2000,
    });
    if (res.status === 200 || res.status === 502) return (await res.json()) as RestoreResult;
    if (res.status === 404) {
      const { error } = (await res.json().catch(() => ({}))) as { error?: string };
      return { result: 'Failed', reason: 'NotStored', message: error ?? `helper ${helper.url} answered 404` };
    }
    if (REFUSED.has(res.status)) {
      const { error } = (await res.json().catch(() => ({}))) as { error?: string };
      return {
        result: 'Failed',
        reason: 'Refused',
        status: res.status,
        message: `helper refused the restore request (${res.status}): ${error ?? 'no reason given'}`,
      };
    }
    throw new Error(`helper ${helper.url} answered ${res.status}: ${await res.text()}`);
  }
}
