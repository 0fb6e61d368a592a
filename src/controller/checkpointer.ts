import type { V1ObjectReference, V1Pod } from '@kubernetes/client-node';
import { API_VERSION, KIND, REASONS, type ResolvedSpec } from '../api/index.js';
import { errorMessage, type Logger } from '../runtime/logger.js';
import { jittered } from './backoff.js';
import {
  addCopy,
  copyOf,
  dropCopiesOnNode,
  keepOnNode,
  nextSequence,
  type CheckpointBook,
  type CheckpointRecord,
} from './checkpoint-book.js';
import { restartCount, type ClusterView } from './cluster-view.js';
import type { EventRecorder } from './events.js';
import type { HelperClient } from './helper-client.js';
import type { ControllerMetrics } from './metrics.js';
import { pullState } from './pull-state.js';
import { chooseTargets } from './target-nodes.js';

/** Pause between the final pulls of a terminating Pod, and how long they may go on at most. */
const FINAL_PULL_GAP_MS = 100;
const FINAL_PULLS_MAX_MS = 30_000;

export interface ProtectedPod {
  policyKey: string;
  policy: string;
  policyUID: string;
  spec: ResolvedSpec;
  pod: V1Pod;
}

interface Schedule {
  entry: ProtectedPod;
  timer?: NodeJS.Timeout;
  /** A pull is queued or running; a tick meanwhile is skipped rather than piling up. */
  busy: boolean;
  /** That pull, for whoever must wait for it. */
  running?: Promise<void>;
}

export interface CheckpointerDeps {
  book: CheckpointBook;
  view: ClusterView;
  helpers: HelperClient;
  metrics: ControllerMetrics;
  events: EventRecorder;
  log: Logger;
  /** Pulls running at once across all Pods. */
  concurrency: number;
  /** A policy's checkpoints changed (status to write). */
  onChange: (policyKey: string) => void;
  /** False while a Pod must not be pulled (its restore is not done yet). */
  mayPull?: (pod: V1Pod) => boolean;
  /** A pull was answered by a new process of the app (its identity changed): it restarted, restore it now. */
  onRestart?: (entry: ProtectedPod, instance: string | undefined) => void;
  /** A pull of the Pod was stored. */
  onStored?: (podUID: string) => void;
}

export const podRef = (pod: V1Pod): V1ObjectReference => ({
  apiVersion: 'v1',
  kind: 'Pod',
  name: pod.metadata?.name,
  namespace: pod.metadata?.namespace,
  uid: pod.metadata?.uid,
});

export const policyRef = (
  e: Pick<ProtectedPod, 'policy' | 'policyUID'> & { namespace?: string },
): V1ObjectReference => ({
  apiVersion: API_VERSION,
  kind: KIND,
  name: e.policy,
  namespace: e.namespace,
  uid: e.policyUID,
});

/**
 * Pulls every protected Pod's state on its own timer (random phase, ±5 % jitter, bounded concurrency) and
 * streams it to helpers on other nodes. A failed pull never touches the stored copies; it is recorded on the
 * checkpoint and surfaces as the policy's Degraded condition and a Warning Event.
 */
export class Checkpointer {
  private schedules = new Map<string, Schedule>();
  private running = 0;
  private waiting: (() => void)[] = [];
  private stopped = false;

  constructor(private readonly d: CheckpointerDeps) {}

  /** Makes `entries` the Pods protected by `policyKey`: starts new timers, updates specs, stops the rest. */
  sync(policyKey: string, entries: ProtectedPod[]): void {
    const wanted = new Map(entries.map((e) => [e.pod.metadata!.uid!, e]));
    for (const [uid, s] of this.schedules) {
      if (s.entry.policyKey === policyKey && !wanted.has(uid)) this.unschedule(uid);
    }
    for (const [uid, entry] of wanted) {
      const s = this.schedules.get(uid);
      if (s && s.entry.policyKey !== policyKey) continue; // another policy protects it already
      if (!s) {
        this.schedules.set(uid, { entry, busy: false });
        this.arm(uid, Math.random() * entry.spec.intervalSeconds * 1000);
      } else {
        const intervalChanged = s.entry.spec.intervalSeconds !== entry.spec.intervalSeconds;
        s.entry = entry;
        if (intervalChanged) this.arm(uid, Math.random() * entry.spec.intervalSeconds * 1000);
      }
      this.d.book.ensure({
        namespace: entry.pod.metadata!.namespace!,
        policy: entry.policy,
        policyUID: entry.policyUID,
        pod: entry.pod.metadata!.name!,
        podUID: uid,
        podNode: entry.pod.spec?.nodeName,
      }).orphanedSince = undefined;
    }
    this.d.metrics.protectedPods.set(this.schedules.size);
  }

  stopPolicy(policyKey: string): void {
    this.sync(policyKey, []);
  }

  /** The policy protecting a Pod now, if any. */
  ownerOf(podUID: string): string | undefined {
    return this.schedules.get(podUID)?.entry.policyKey;
  }

  protectedPods(): ProtectedPod[] {
    return [...this.schedules.values()].map((s) => s.entry);
  }

  /** Pulls a Pod now (e.g. its copy's node went away, or it is about to be deleted). */
  pullNow(podUID: string): Promise<void> {
    const s = this.schedules.get(podUID);
    if (!s) return Promise.resolve();
    return this.run(podUID, s);
  }

  /** Re-sends copies whose node or helper is no longer usable to a new target at once. */
  retarget(): void {
    const usable = this.d.view.usableHelpers();
    for (const [uid, s] of this.schedules) {
      const r = this.d.book.get(uid);
      if (!r || s.busy) continue;
      const valid = [...r.copies.keys()].filter((n) => usable.has(n)).length;
      if (r.copies.size > 0 && valid < Math.min(s.entry.spec.copies, usable.size)) void this.run(uid, s);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.schedules.values()) clearTimeout(s.timer);
  }

  private unschedule(uid: string): void {
    const s = this.schedules.get(uid);
    if (!s) return;
    clearTimeout(s.timer);
    this.schedules.delete(uid);
    const r = this.d.book.get(uid);
    if (r) r.orphanedSince ??= Date.now();
  }

  private arm(uid: string, delayMs: number): void {
    const s = this.schedules.get(uid);
    if (!s || this.stopped) return;
    clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      const current = this.schedules.get(uid);
      if (current !== s) return;
      this.arm(uid, jittered(s.entry.spec.intervalSeconds * 1000, 0.05));
      if (!s.busy) void this.run(uid, s);
    }, delayMs);
  }

  private async acquire(): Promise<void> {
    if (this.running < this.d.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  private run(uid: string, s: Schedule): Promise<void> {
    if (s.busy) return s.running ?? Promise.resolve();
    if (this.d.mayPull && !this.d.mayPull(s.entry.pod)) return Promise.resolve();
    s.busy = true;
    s.running = (async () => {
      await this.acquire();
      try {
        if (this.schedules.get(uid) === s && !this.stopped) await this.pullOnce(s.entry);
      } catch (err) {
        this.d.log.error('pull crashed', { pod: s.entry.pod.metadata?.name, error: errorMessage(err) });
      } finally {
        this.release();
        s.busy = false;
        s.running = undefined;
      }
    })();
    return s.running;
  }

  /** One pull; false if it failed (reported as a failure unless `quiet`). */
  private async pullOnce(e: ProtectedPod, quiet = false): Promise<boolean> {
    const pod = e.pod;
    const namespace = pod.metadata!.namespace!;
    const r = this.d.book.ensure({
      namespace,
      policy: e.policy,
      policyUID: e.policyUID,
      pod: pod.metadata!.name!,
      podUID: pod.metadata!.uid!,
      podNode: pod.spec?.nodeName,
    });
    const usable = this.d.view.usableHelpers();
    const load = this.d.book.loadByNode();
    const current = [...r.copies.values()].sort((a, b) => b.sequence - a.sequence).map((c) => c.node);
    const targets = chooseTargets({
      podNode: pod.spec?.nodeName ?? '',
      copies: e.spec.copies,
      current,
      candidates: [...usable.keys()].map((node) => ({ node, load: load.get(node) ?? 0 })),
      key: r.podUID,
    });
    if (targets.length === 0) {
      if (!quiet)
        this.failed(e, r, REASONS.noTargetNode, 'no other node has a Ready helper to hold the copy');
      return false;
    }
    const sequence = nextSequence(r);
    r.lastSequence = sequence;
    const outcome = await pullState({
      source: `http://${pod.status!.podIP}:${e.spec.port}${e.spec.path}`,
      timeoutMs: e.spec.timeoutSeconds * 1000,
      maxBytes: e.spec.maxStateBytes,
      targets: targets.map((node) => ({ node, url: usable.get(node)!.url })),
      blob: {
        namespace,
        policy: e.policy,
        policyUID: e.policyUID,
        pod: r.pod,
        podUID: r.podUID,
        sequence,
        restartCount: restartCount(pod),
      },
      authorization: await this.d.helpers.authorization(),
      ...(r.instance !== undefined ? { expectedInstance: r.instance } : {}),
    });
    this.d.metrics.pullSeconds.observe(outcome.durationMs / 1000);
    if (!outcome.ok && outcome.reason === 'Restarted') {
      // Seen before the API shows the restart: nothing was stored, the copies still hold the old process's state.
      this.d.log.info('the app restarted (new process identity); restoring its last checkpoint', {
        pod: r.pod,
        namespace,
        instance: outcome.instance,
        was: r.instance,
      });
      this.d.onRestart?.(e, outcome.instance);
      return false;
    }
    if (!outcome.ok) {
      const reason =
        outcome.reason === 'StateTooLarge'
          ? REASONS.stateTooLarge
          : outcome.reason === 'HelperUnavailable'
            ? REASONS.helperUnavailable
            : REASONS.pullFailed;
      // An app that has not answered since it (re)started is starting, not failing: a JVM or an app that
      // loads data may need minutes. Its first good pull starts the clock; the kubelet judges its start-up.
      const starting =
        reason === REASONS.pullFailed &&
        ![...r.copies.values()].some((c) => c.restartCount === restartCount(pod));
      if (starting) {
        this.d.metrics.pulls.inc({ result: 'failure' });
        this.d.log.debug('app not answering yet since its start', { pod: r.pod, namespace });
      } else if (!quiet) this.failed(e, r, reason, outcome.message);
      return false;
    }
    this.d.metrics.pulls.inc({ result: 'success' });
    this.d.metrics.pullBytes.observe(outcome.sizeBytes);
    r.instance = outcome.instance;
    for (const { node, meta } of outcome.stored) {
      addCopy(r, copyOf(node, meta));
      if (meta.kept) keepOnNode(r, node, meta.kept);
    }
    // Copies on nodes that are no longer targets are stale now; drop them so restores never pick them.
    for (const node of [...r.copies.keys()]) {
      if (!targets.includes(node)) {
        dropCopiesOnNode(r, node);
        const ep = this.d.view.helpers().get(node);
        if (ep) void this.d.helpers.delete(ep.url, namespace, r.podUID).catch(() => undefined);
      }
    }
    this.d.onStored?.(r.podUID);
    if (r.restoredFrom) this.dropRestoredOrphan(r.restoredFrom);
    r.restoredFrom = undefined;
    const recovered = r.lastFailure !== undefined;
    r.lastFailure = undefined;
    if (recovered) this.d.log.info('pulls recovered', { pod: r.pod, namespace });
    this.d.onChange(e.policyKey);
    if (outcome.failed.length > 0) {
      this.d.log.warn('some copies failed', { pod: r.pod, failed: outcome.failed });
    }
    return true;
  }

  /** The orphan a Pod was restored from is redundant once that Pod has a checkpoint of its own. */
  private dropRestoredOrphan(orphanUID: string): void {
    const orphan = this.d.book.get(orphanUID);
    if (!orphan || this.schedules.has(orphanUID)) return;
    const endpoints = this.d.view.helpers();
    for (const node of orphan.copies.keys()) {
      const ep = endpoints.get(node);
      if (ep) void this.d.helpers.delete(ep.url, orphan.namespace, orphanUID).catch(() => undefined);
    }
    this.d.book.delete(orphanUID);
  }

  /**
   * A protected Pod is being deleted while its process may still serve (drain, rollout, `kubectl delete`):
   * keep pulling it until its replacement claims the copy, so the copy restored is the one taken after the
   * app got SIGTERM and stopped changing its state. The kubelet delivers SIGTERM a moment after the
   * deletion shows in the watch; a single pull at once would miss what the app did in that moment.
   */
  async finalize(podUID: string): Promise<void> {
    const s = this.schedules.get(podUID);
    const r = this.d.book.get(podUID);
    if (!s || !r || r.finalizing) return;
    r.finalizing = true;
    clearTimeout(s.timer);
    const graceMs = (s.entry.pod.metadata?.deletionGracePeriodSeconds ?? 30) * 1000;
    const deadline = Date.now() + Math.min(graceMs, FINAL_PULLS_MAX_MS);
    // A restore from this record waits on `finalPull` while `finalizing`: for the pull running now.
    let pullDone = () => undefined as void;
    const nextPull = () => {
      r.finalPull = new Promise<void>((resolve) => (pullDone = resolve));
    };
    nextPull();
    try {
      while (s.busy && s.running) await s.running;
      s.busy = true;
      for (let first = true; ; first = false) {
        r.finalizing = true;
        await this.acquire();
        let ok: boolean;
        try {
          // Only the first final pull reports a failure: an app that exits at SIGTERM stops answering.
          ok = await this.pullOnce(s.entry, !first);
        } finally {
          this.release();
          r.finalizing = false;
          pullDone();
        }
        if (!ok || r.claimedBy || this.stopped || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, FINAL_PULL_GAP_MS));
        if (r.claimedBy) break;
        nextPull();
      }
    } catch (err) {
      this.d.log.warn('final checkpoint failed; the previous one will be restored', {
        pod: r.pod,
        error: errorMessage(err),
      });
    } finally {
      s.busy = false;
      r.finalizing = false;
      pullDone();
      r.finalPull = undefined;
      this.unschedule(podUID);
      this.d.onChange(s.entry.policyKey);
    }
  }

  private failed(e: ProtectedPod, r: CheckpointRecord, reason: string, message: string): void {
    this.d.metrics.pulls.inc({ result: 'failure' });
    this.d.metrics.pullFailures.inc({ reason });
    const changed = r.lastFailure?.reason !== reason;
    r.lastFailure = { reason, message, at: Date.now() };
    if (changed) {
      const podName = e.pod.metadata?.name;
      this.d.log.warn('pull failed; last good checkpoint kept', {
        pod: podName,
        namespace: r.namespace,
        reason,
        message,
      });
      const text = `checkpoint of Pod ${podName} failed (${reason}): ${message}; the last good checkpoint is kept`;
      this.d.events.record(policyRef({ ...e, namespace: r.namespace }), 'Warning', reason, text);
      this.d.events.record(podRef(e.pod), 'Warning', reason, text);
    }
    this.d.onChange(e.policyKey);
  }
}
