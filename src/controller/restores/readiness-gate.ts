import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
  type V1PodCondition,
} from '@kubernetes/client-node';
import { READINESS_GATE } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import { systemClock, type Clock } from '../kube/clock.js';

const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

export const hasGate = (pod: V1Pod) =>
  (pod.spec?.readinessGates ?? []).some((g) => g.conditionType === READINESS_GATE);
export const gateTrue = (pod: V1Pod) =>
  (pod.status?.conditions ?? []).some((c) => c.type === READINESS_GATE && c.status === 'True');

/**
 * The Ready condition written with a closed gate. When the readiness probe of a restarted container first
 * passes, the kubelet computes Ready from its own last status, in which the gate may still be True from
 * before the restart (kubernetes/kubernetes#122002): the Pod showed Ready for up to 351 ms before its
 * restore. A Ready message the kubelet would not write makes it reconcile the Pod at once (it compares
 * status and message), and that sync reads the closed gate. The kubelet owns Ready and rewrites it then.
 */
function closedReady(reason: string): V1PodCondition {
  return {
    type: 'Ready',
    status: 'False',
    reason: 'ReadinessGatesNotReady',
    message: `readiness gate ${READINESS_GATE} closed by pull-state-operator (${reason})`,
    lastTransitionTime: new Date(),
  };
}

/** Patches a Pod's status conditions (the API server in production; tests pass a scripted one). */
export type ConditionPatch = (pod: V1Pod, conditions: V1PodCondition[]) => Promise<void>;

/** The conditions patch through the API server (strategic merge: other conditions are left alone). */
export function apiConditionPatch(kc: KubeConfig): ConditionPatch {
  const core = kc.makeApiClient(CoreV1Api);
  return async (pod, conditions) => {
    await core.patchNamespacedPodStatus(
      { name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { status: { conditions } } },
      smp,
    );
  };
}

export interface GateWriterDeps {
  patch: ConditionPatch;
  /** The Pod as the cache holds it now, if it still exists with this UID. */
  currentPod: (namespace: string, name: string, uid: string) => V1Pod | undefined;
  log: Logger;
  /** Ends the writes (leadership lost, shutdown). */
  signal?: AbortSignal;
  /** How long after a write the cache may lag before the gate is written again (default 2 s). */
  settleMs?: number;
  clock?: Clock;
}

type GateStatus = 'True' | 'False';

/** The gate value a Pod should show, and where writing it stands. */
interface DesiredGate {
  namespace: string;
  name: string;
  status: GateStatus;
  reason: string;
  message: string;
  /** When the API accepted a write of this value (the cache may not show it yet). */
  writtenAt?: number;
  /** Callers waiting for the first attempt at this value. */
  waiters: (() => void)[];
}

const DEFAULT_SETTLE_MS = 2000;

/** Whether the Pod shows the gate as desired (status and reason: the reason tells apart two False values). */
function shows(pod: V1Pod, d: DesiredGate): boolean {
  const c = (pod.status?.conditions ?? []).find((x) => x.type === READINESS_GATE);
  return c?.status === d.status && c.reason === d.reason;
}

/**
 * Keeps the operator's readiness-gate condition on Pods that declare the gate at the value last decided for
 * each, level-based as a controller-runtime reconciler: the decision is recorded, one queue item per Pod
 * writes it, and the item is done only when the cache shows it. A failed write returns an error to the queue,
 * which retries it with backoff; a Pod whose gate someone else changed is written again. Only the newest
 * value per Pod is ever written, and one Pod's writes never overlap: a "False" decided when a restart was
 * seen can never land after the "True" of the restore that followed it, which would keep the Pod out of its
 * Service.
 */
export class GateWriter {
  private readonly desired = new Map<string, DesiredGate>();
  private readonly queue: WorkQueue;
  private readonly settleMs: number;
  private readonly clock: Clock;

  constructor(private readonly d: GateWriterDeps) {
    this.settleMs = d.settleMs ?? DEFAULT_SETTLE_MS;
    this.clock = d.clock ?? systemClock;
    this.queue = new WorkQueue((uid) => this.reconcile(uid), {
      concurrency: 16,
      signal: d.signal,
      clock: d.clock,
      backoff: { baseMs: 200, maxMs: 10_000 },
      onError: (uid, err, retryInMs) =>
        d.log.warn('could not set the readiness gate, will retry', {
          pod: this.desired.get(uid)?.name,
          podUID: uid,
          error: errorMessage(err),
          retryInMs,
        }),
    });
    d.signal?.addEventListener('abort', () => this.release(), { once: true });
  }

  /**
   * Decides the gate value of a Pod. Resolves after the first attempt to write it (whether the API took it
   * or not: retries go on through the queue) or when a later decision replaced it.
   */
  set(pod: V1Pod, status: GateStatus, reason: string, message: string): Promise<void> {
    if (!hasGate(pod) || this.queue.isStopped) return Promise.resolve();
    const uid = pod.metadata!.uid!;
    const before = this.desired.get(uid);
    const waiters = before?.waiters ?? [];
    this.desired.set(uid, {
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      status,
      reason,
      message: message.slice(0, 1000),
      waiters,
    });
    const done = new Promise<void>((resolve) => waiters.push(resolve));
    this.queue.add(uid);
    return done;
  }

  /** The cache shows a new version of a Pod: if its gate is not what was decided, it is written again. */
  podChanged(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const d = this.desired.get(uid);
    if (d && !shows(pod, d)) this.queue.add(uid);
  }

  /** The Pod is gone: nothing to keep. */
  forget(uid: string): void {
    const d = this.desired.get(uid);
    this.desired.delete(uid);
    this.queue.forget(uid);
    for (const w of d?.waiters.splice(0) ?? []) w();
  }

  private async reconcile(uid: string): Promise<ReconcileResult> {
    const d = this.desired.get(uid);
    if (!d) return;
    const pod = this.d.currentPod(d.namespace, d.name, uid);
    if (!pod) return this.forget(uid);
    if (shows(pod, d)) {
      this.settle(d);
      return;
    }
    // Written, and the cache has not caught up yet: look again rather than write twice.
    const since = d.writtenAt === undefined ? Infinity : this.clock.monotonic() - d.writtenAt;
    if (since < this.settleMs) return { requeueAfterMs: this.settleMs - since };
    // Only a change of status is a transition: the restorer reads the time the gate opened as when the
    // current process got its state.
    const current = (pod.status?.conditions ?? []).find((c) => c.type === READINESS_GATE);
    const condition: V1PodCondition = {
      type: READINESS_GATE,
      status: d.status,
      reason: d.reason,
      message: d.message,
      lastTransitionTime:
        current?.status === d.status && current.lastTransitionTime
          ? current.lastTransitionTime
          : new Date(this.clock.now()),
    };
    try {
      await this.d.patch(pod, [condition, ...(d.status === 'False' ? [closedReady(d.reason)] : [])]);
    } catch (err) {
      if (statusCode(err) === 404) return this.forget(uid);
      this.settle(d);
      throw err;
    }
    // A newer decision may have come in meanwhile: the queue runs this key again for it.
    if (this.desired.get(uid) === d) d.writtenAt = this.clock.monotonic();
    this.settle(d);
    // Done once the cache shows it (podChanged brings it back sooner if it shows something else).
    return { requeueAfterMs: this.settleMs };
  }

  /** The callers of this decision stop waiting: the first attempt was made. */
  private settle(d: DesiredGate): void {
    for (const w of d.waiters.splice(0)) w();
  }

  private release(): void {
    for (const d of this.desired.values()) this.settle(d);
  }
}
