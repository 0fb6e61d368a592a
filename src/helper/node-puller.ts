import type { Agent as HttpsAgent } from 'node:https';
import type { PullAssignment, PullOutcome, PullReport } from '../api/index.js';
import { backoffDelay } from '../runtime/backoff.js';
import { sequenceProblem } from './blob-store.js';
import { errorMessage, type Logger } from '../runtime/logger.js';
import { requestPath } from '../runtime/request-path.js';
import { FairSlots } from './fair-slots.js';
import type { PullRequest } from './pull-state.js';
import type { ReportOutbox } from './report-outbox.js';
import { httpURL } from '../runtime/ip-address.js';

export interface NodePullerOptions {
  outbox: ReportOutbox;
  /** The helper's own bearer credentials, for the target helpers. */
  /** The credentials for the helper of one target node (a token only that helper accepts). */
  authorization: (node: string) => Promise<string>;
  /** Pulls running at once on this node. */
  concurrency: number;
  /** Pulls of one namespace running at once (default: all of `concurrency`). */
  perNamespace?: number;
  log: Logger;
  pull: (r: PullRequest) => Promise<PullOutcome>;
  /** The HTTPS agent for the other helpers (trusting the operator's CA). */
  peerAgent?: () => HttpsAgent | undefined;
  /** Every pull's report (metrics). */
  observe?: (report: PullReport) => void;
}

interface Item {
  a: PullAssignment;
  /** The GET's URL, the tenant's path percent-encoded as the kubelet would send it; or why there is none. */
  source: { ok: true; url: string } | { ok: false; problem: string };
  /** In the controller's assignment set (else known only from a one-off pull). */
  scheduled: boolean;
  timer?: NodeJS.Timeout;
  running?: Promise<PullReport>;
  lastSequence: number;
  /** Process identity of the stored copies: an answer from another one is a restart, never stored. */
  expected?: string;
  /** The identity the controller last sent: a change is its decision and replaces `expected`. */
  assigned?: string;
  /**
   * When a new process answered: no scheduled pull until the controller has restored it and says so, or
   * until HELD_RETRY has passed (the report may have been lost to a leader change): then it is reported again.
   */
  heldSince?: number;
  /** Scheduled pulls that failed in a row (a failure that cost the node work: the app's answer was bad). */
  failures: number;
}

/** How long a Pod waits, after a new process answered, for the controller's decision before a new pull. */
const heldRetryMs = (intervalMs: number) => Math.max(10_000, 5 * intervalMs);

/**
 * A pull's sequence: milliseconds since the epoch, above every sequence this helper used and the controller
 * has seen, so it keeps increasing across helper restarts, leader changes and clock steps back.
 */
export function nextSequence(now: number, lastUsed: number, lastSeen: number): number {
  // A sequence the helpers would refuse (a planted one, seen before the helpers dropped it) is not followed.
  const plausible = (s: number) => (sequenceProblem(s + 1, now) === undefined ? s + 1 : 0);
  return Math.max(now, plausible(lastUsed), plausible(lastSeen));
}

/** Backed-off pulls wait at most this long (or one interval, if that is longer). */
const MAX_BACKOFF_MS = 30_000;
/** The first retry of a failed pull of a Pod with a long interval comes after twice this. */
const RETRY_BASE_MS = 5_000;

/**
 * The wait before the next pull after `failures` failed pulls in a row: doubling per failure from twice
 * min(interval, 5 s), up to 8 intervals and at most max(interval, 30 s). A pull that failed for lack of CPU
 * (a timeout on a saturated node) did all its work for nothing; pulling again at full rate kept 100 Pods ×
 * 1 MiB at 1 s in a collapse where 3 pulls a second of 60 succeeded. Backing off lets some finish, and each
 * success resets it. A long interval retries sooner than one interval: at 900 s, an app still starting when
 * its first pull came would otherwise have no copy for 15 minutes, and a failed pull would leave the newest
 * copy 30 minutes old.
 */
export function pullDelayMs(intervalMs: number, failures: number): number {
  if (failures <= 0) return intervalMs;
  const maxMs = Math.min(8 * intervalMs, Math.max(intervalMs, MAX_BACKOFF_MS));
  return backoffDelay(failures + 1, { baseMs: Math.min(intervalMs, RETRY_BASE_MS), maxMs });
}

/** The state's URL, checked once when the assignment arrives rather than at every pull. */
function sourceOf(a: PullAssignment): Item['source'] {
  const path = requestPath(a.path);
  return path.ok ? { ok: true, url: httpURL('http', a.podIP, a.port, path.path) } : path;
}

/** ±5 % so Pods with the same interval drift apart instead of pulling in lockstep. */
const jittered = (ms: number) => ms * (0.95 + Math.random() * 0.1);
/**
 * A new Pod's first pull comes at a random moment within this (or its interval, if shorter): spread, so a
 * helper given many Pods at once does not pull them all together, but soon, so a Pod with a long interval
 * (up to an hour) is not left without any copy for most of it.
 */
const FIRST_PULL_SPREAD_MS = 10_000;

/**
 * Pulls the protected Pods of this node on their own timers, as the controller assigned them, and streams
 * every copy to the helpers of other nodes. The outcome of every pull goes to the outbox the controller
 * long-polls. Pulls of one Pod never overlap; the rules of a pull (restart, size, timeout) are pull-state's.
 */
export class NodePuller {
  private items = new Map<string, Item>();
  private readonly slots: FairSlots;
  private stopped = false;

  constructor(private readonly o: NodePullerOptions) {
    this.slots = new FairSlots(o.concurrency, Math.min(o.perNamespace ?? o.concurrency, o.concurrency));
  }

  /** Pulls running and waiting for a slot, per namespace. */
  slotUse(): ReturnType<FairSlots['snapshot']> {
    return this.slots.snapshot();
  }

  /** Makes `set` the Pods this node pulls: new ones start at a random phase, removed ones stop. */
  assign(set: PullAssignment[]): { pods: number; added: number; removed: number } {
    const wanted = new Map(set.map((a) => [a.podUID, a]));
    let removed = 0;
    let added = 0;
    for (const [uid, item] of this.items) {
      if (wanted.has(uid)) continue;
      clearTimeout(item.timer);
      this.items.delete(uid);
      if (item.scheduled) removed++;
    }
    for (const a of wanted.values()) {
      const item = this.update(a);
      if (!item.scheduled) {
        item.scheduled = true;
        added++;
        this.arm(item, Math.random() * Math.min(a.intervalMs, FIRST_PULL_SPREAD_MS));
      }
    }
    return { pods: this.items.size, added, removed };
  }

  /** Pulls one Pod now (a final pull before deletion, a restart check, a new target) and answers its report. */
  async pullNow(a: PullAssignment): Promise<PullReport> {
    const item = this.update(a);
    while (item.running) await item.running.catch(() => undefined);
    return this.run(item, true);
  }

  assignments(): PullAssignment[] {
    return [...this.items.values()].filter((i) => i.scheduled).map((i) => i.a);
  }

  stop(): void {
    this.stopped = true;
    for (const item of this.items.values()) clearTimeout(item.timer);
  }

  private update(a: PullAssignment): Item {
    let item = this.items.get(a.podUID);
    if (!item) {
      item = {
        a,
        source: sourceOf(a),
        scheduled: false,
        lastSequence: 0,
        expected: a.instance,
        assigned: a.instance,
        failures: 0,
      };
      this.items.set(a.podUID, item);
    }
    if (a.instance !== item.assigned) {
      item.expected = a.instance;
      item.heldSince = undefined;
    }
    if (item.a.paused && !a.paused) item.heldSince = undefined;
    const intervalChanged = item.a.intervalMs !== a.intervalMs;
    // A Pod skipped for lack of a target node should not wait out a long interval once one is Ready.
    const gainedTargets = item.a.targets.length === 0 && a.targets.length > 0;
    item.assigned = a.instance;
    if (a.path !== item.a.path || a.podIP !== item.a.podIP || a.port !== item.a.port)
      item.source = sourceOf(a);
    item.a = a;
    if (item.scheduled && intervalChanged) this.arm(item, Math.random() * a.intervalMs);
    else if (item.scheduled && gainedTargets)
      this.arm(item, Math.random() * Math.min(a.intervalMs, FIRST_PULL_SPREAD_MS));
    return item;
  }

  private arm(item: Item, delayMs: number): void {
    clearTimeout(item.timer);
    if (this.stopped) return;
    item.timer = setTimeout(() => {
      if (this.items.get(item.a.podUID) !== item) return;
      this.arm(item, jittered(item.a.intervalMs));
      const held =
        item.heldSince !== undefined && Date.now() - item.heldSince < heldRetryMs(item.a.intervalMs);
      if (!item.running && !item.a.paused && !held) void this.run(item, false).catch(() => undefined);
    }, delayMs);
  }

  private run(item: Item, oneOff: boolean): Promise<PullReport> {
    const p = (async () => {
      const namespace = item.a.namespace;
      await this.slots.acquire(namespace);
      try {
        return await this.pullOnce(item, oneOff);
      } finally {
        this.slots.release(namespace);
      }
    })();
    item.running = p;
    void p
      .catch((err: unknown) =>
        this.o.log.error('pull crashed', { pod: item.a.pod, error: errorMessage(err) }),
      )
      .finally(() => {
        if (item.running === p) item.running = undefined;
      });
    return p;
  }

  /** The targets this helper has a token for, and the tokens; without any, why. */
  private async credentialsFor(all: PullAssignment['targets']): Promise<{
    targets: PullAssignment['targets'];
    authorization: Record<string, string>;
    problem?: string;
  }> {
    const answers = await Promise.allSettled(all.map((t) => this.o.authorization(t.node)));
    const authorization: Record<string, string> = {};
    let problem: string | undefined;
    all.forEach((t, i) => {
      const answer = answers[i]!;
      if (answer.status === 'fulfilled') authorization[t.node] = answer.value;
      else problem = errorMessage(answer.reason);
    });
    const targets = all.filter((t) => t.node in authorization);
    if (problem && targets.length > 0)
      this.o.log.warn('no token for some target helpers: their copies are skipped this time', {
        skipped: all.filter((t) => !(t.node in authorization)).map((t) => t.node),
        error: problem,
      });
    return { targets, authorization, problem };
  }

  private async pullOnce(item: Item, oneOff: boolean): Promise<PullReport> {
    const a = item.a;
    const pulledAt = Date.now();
    const sequence = nextSequence(pulledAt, item.lastSequence, a.lastSequence);
    item.lastSequence = sequence;
    const source = item.source;
    const { targets, authorization, problem } = source.ok
      ? await this.credentialsFor(a.targets)
      : { targets: [], authorization: {}, problem: undefined };
    const outcome: PullOutcome = !source.ok
      ? { ok: false, reason: 'PullFailed', message: source.problem, durationMs: 0 }
      : a.targets.length === 0
        ? { ok: false, reason: 'NoTargetNode', message: 'no node was named to hold the copy', durationMs: 0 }
        : targets.length === 0
          ? {
              ok: false,
              reason: 'HelperUnavailable',
              message: problem ?? 'no token for any helper that is to hold the copy',
              durationMs: 0,
            }
          : await this.o.pull({
              source: source.url,
              timeoutMs: a.timeoutMs,
              maxBytes: a.maxBytes,
              targets,
              blob: {
                namespace: a.namespace,
                policy: a.policy,
                policyUID: a.policyUID,
                pod: a.pod,
                podUID: a.podUID,
                ...(a.workload !== undefined ? { workload: a.workload } : {}),
                sequence,
                restartCount: a.restartCount,
              },
              authorization,
              ...(this.o.peerAgent?.() ? { peerAgent: this.o.peerAgent()! } : {}),
              pulledAt,
              ...(item.expected !== undefined ? { expectedInstance: item.expected } : {}),
            });
    if (outcome.ok) {
      item.expected = outcome.instance;
      item.heldSince = undefined;
      item.failures = 0;
    } else if (!oneOff && ['PullFailed', 'StateTooLarge', 'StorageFull'].includes(outcome.reason)) {
      // No target helper (HelperUnavailable) cost nothing, and a restart has its own hold.
      item.failures++;
      if (item.scheduled && this.items.get(a.podUID) === item)
        this.arm(item, jittered(pullDelayMs(a.intervalMs, item.failures)));
    }
    const restarted = !outcome.ok && outcome.reason === 'Restarted';
    if (restarted) {
      item.heldSince = Date.now();
      this.o.log.info('the app answered from a new process; nothing stored, the controller restores it', {
        pod: a.pod,
        namespace: a.namespace,
        instance: outcome.instance,
        was: item.expected,
      });
    }
    const report: PullReport = {
      ...outcome,
      namespace: a.namespace,
      podUID: a.podUID,
      sequence,
      targets: a.targets.map((t) => t.node),
      pulledAt,
    };
    this.o.observe?.(report);
    // A one-off pull's report is its answer; the outbox is for the scheduled ones.
    if (!oneOff) this.o.outbox.add(report, restarted);
    return report;
  }
}
