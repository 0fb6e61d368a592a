import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import {
  GROUP,
  RESTORE_PLURAL,
  VERSION,
  type IPullStateRestore,
  type PullStateRestorePodResult,
  type PullStateRestoreStatus,
} from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import type { CheckpointRecord } from '../checkpoints/checkpoint-book.js';
import type { ProtectedPod } from '../checkpoints/protected-pod.js';
import type { EventRecorder } from '../kube/events.js';
import type { HelperClient } from '../kube/helper-client.js';
import type { HelperEndpoint } from '../kube/cluster-view.js';
import { Informer } from '../kube/informer.js';
import { WorkQueue } from '../kube/workqueue.js';
import { chooseGeneration } from './generation-choice.js';
import { hostNetworkMark } from '../policies/host-network.js';
import { systemClock, type Clock } from '../kube/clock.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** A push into a running app: it answers at once or not at all. */
const PUSH_TIMEOUT_MS = 10_000;

export interface RestoreRequestDeps {
  kc: KubeConfig;
  log: Logger;
  events: EventRecorder;
  helpers: HelperClient;
  policyExists: (namespace: string, name: string) => boolean;
  /** The Pods a policy protects now (running, with an IP). */
  protectedPods: (namespace: string, policy: string) => ProtectedPod[];
  record: (podUID: string) => CheckpointRecord | undefined;
  /** Reads one Pod's generations from the helpers (the book may lag their reports). */
  refresh: (podUID: string) => Promise<void>;
  usableHelpers: () => Map<string, HelperEndpoint>;
  /** The leadership term: a push in progress is work in flight until it ends (see kube/in-flight.ts). */
  signal?: AbortSignal;
  clock?: Clock;
}

const key = (o: IPullStateRestore) => `${o.metadata!.namespace}/${o.metadata!.name}`;

/**
 * The reconciler of PullStateRestore: each object is acted on once. It rolls the named Pod (or every Pod
 * of the policy) back to the chosen generation by having the helper that holds it push it into the running
 * app, and records per Pod what was restored. A request a previous leader left Running is not repeated (it
 * may have been applied to some Pods already): it is marked Failed with that reason.
 */
export class RestoreRequestReconciler {
  private readonly api: CustomObjectsApi;
  readonly informer: Informer<IPullStateRestore>;
  private readonly queue: WorkQueue;
  private readonly clock: Clock;
  /** Requests (by uid) this process is working on: a Running one not in here was left by a previous leader. */
  private readonly mine = new Set<string>();
  /** Requests (by uid) this process finished: the cache may still show them Running for a moment. */
  private readonly finished = new Set<string>();

  constructor(private readonly d: RestoreRequestDeps) {
    this.api = d.kc.makeApiClient(CustomObjectsApi);
    this.clock = d.clock ?? systemClock;
    this.informer = new Informer<IPullStateRestore>({
      name: RESTORE_PLURAL,
      kc: d.kc,
      path: `/apis/${GROUP}/${VERSION}/${RESTORE_PLURAL}`,
      list: () =>
        this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: RESTORE_PLURAL }),
      log: d.log,
    });
    this.queue = new WorkQueue((k) => this.reconcile(k), {
      concurrency: 2,
      paused: true,
      signal: d.signal,
      clock: d.clock,
      onError: (k, err, retryInMs) =>
        d.log.warn('PullStateRestore failed, will retry', {
          restore: k,
          error: errorMessage(err),
          retryInMs,
        }),
    });
    this.informer.onChange((o, kind) => {
      if (kind !== 'delete') return this.queue.add(key(o));
      this.finished.delete(o.metadata!.uid!);
    });
  }

  async startCache(): Promise<void> {
    await this.informer.start();
  }

  /** Acting starts once the checkpoint book is known (after the helpers' inventories). */
  resume(): void {
    this.queue.resume();
  }

  async stop(): Promise<void> {
    this.queue.stop();
    await this.informer.stop();
  }

  private async reconcile(k: string): Promise<void> {
    const [namespace, name] = k.split('/') as [string, string];
    const obj = this.informer.get(name, namespace);
    if (!obj) return;
    const uid = obj.metadata!.uid!;
    const phase = obj.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed' || this.finished.has(uid) || this.mine.has(uid)) return;
    if (phase === 'Running')
      return this.finish(
        obj,
        'Failed',
        'interrupted by a controller leader change; it may have been applied to some Pods: create a new PullStateRestore to retry',
        [],
      );
    const spec = obj.spec;
    if (!this.d.policyExists(namespace, spec.policyName))
      return this.finish(
        obj,
        'Failed',
        `PullStatePolicy ${namespace}/${spec.policyName} not found; allowed: a policy in namespace ${namespace} (kubectl get pullstatepolicies -n ${namespace})`,
        [],
      );
    const protectedPods = this.d.protectedPods(namespace, spec.policyName);
    const targets = spec.podName
      ? protectedPods.filter((p) => p.pod.metadata?.name === spec.podName)
      : protectedPods;
    if (targets.length === 0) {
      const names = protectedPods.map((p) => p.pod.metadata!.name!).sort();
      const allowed =
        names.length > 0
          ? `allowed: ${names.slice(0, 20).join(', ')}`
          : 'the policy protects no running Pod now';
      const what = spec.podName
        ? `Pod ${spec.podName} is not protected by ${spec.policyName}`
        : `${spec.policyName} protects no Pod`;
      return this.finish(obj, 'Failed', `${what}; ${allowed}`, []);
    }
    this.mine.add(uid);
    try {
      await this.patchStatus(obj, {
        phase: 'Running',
        startTime: new Date(this.clock.now()).toISOString(),
        observedGeneration: obj.metadata?.generation ?? 0,
      });
      const results: PullStateRestorePodResult[] = [];
      for (const t of targets.slice(0, 100)) results.push(await this.restoreOne(obj, t));
      const ok = results.filter((r) => r.result === 'Succeeded').length;
      const failed = results.filter((r) => r.result === 'Failed');
      const message =
        failed.length === 0
          ? `restored into ${ok} Pod(s)`
          : `restored into ${ok} of ${results.length} Pod(s); ${failed.map((f) => `${f.pod}: ${f.message ?? ''}`).join('; ')}`;
      await this.finish(obj, failed.length === 0 ? 'Succeeded' : 'Failed', message, results);
    } finally {
      this.mine.delete(uid);
    }
  }

  private async restoreOne(obj: IPullStateRestore, t: ProtectedPod): Promise<PullStateRestorePodResult> {
    const pod = t.pod.metadata!.name!;
    const podUID = t.pod.metadata!.uid!;
    const namespace = t.pod.metadata!.namespace!;
    const fail = (message: string): PullStateRestorePodResult => ({ pod, podUID, result: 'Failed', message });
    await this.d.refresh(podUID).catch(() => undefined);
    const helpers = this.d.usableHelpers();
    const generations = (this.d.record(podUID)?.generations ?? []).filter((c) => helpers.has(c.node));
    const choice = chooseGeneration(generations, obj.spec.generation ?? {});
    if ('error' in choice) return fail(choice.error);
    const { copy } = choice;
    const podIP = t.pod.status?.podIP;
    if (!podIP) return fail('the Pod has no IP');
    try {
      const answer = await this.d.helpers.restore(helpers.get(copy.node)!, namespace, podUID, {
        podIP,
        ...hostNetworkMark(t.pod, t.spec),
        port: t.spec.port,
        path: t.spec.restorePath,
        timeoutMs: PUSH_TIMEOUT_MS,
        sequence: copy.sequence,
      });
      if (answer.result !== 'Succeeded') return fail(`${answer.reason}: ${answer.message}`);
    } catch (err) {
      return fail(errorMessage(err));
    }
    const pulledAt = new Date(copy.pulledAt ?? Date.parse(copy.storedAt)).toISOString();
    this.d.events.record(
      { kind: 'Pod', namespace, name: pod, uid: podUID, apiVersion: 'v1' },
      'Normal',
      'RolledBack',
      `state of ${pulledAt} (generation ${copy.sequence}) restored by PullStateRestore ${obj.metadata!.name}`,
    );
    return {
      pod,
      podUID,
      node: copy.node,
      sequence: copy.sequence,
      pulledAt,
      sizeBytes: copy.sizeBytes,
      result: 'Succeeded',
    };
  }

  private async finish(
    obj: IPullStateRestore,
    phase: 'Succeeded' | 'Failed',
    message: string,
    pods: PullStateRestorePodResult[],
  ): Promise<void> {
    await this.patchStatus(obj, {
      phase,
      message,
      pods,
      restoredPods: pods.filter((p) => p.result === 'Succeeded').length,
      completionTime: new Date(this.clock.now()).toISOString(),
      observedGeneration: obj.metadata?.generation ?? 0,
    });
    this.finished.add(obj.metadata!.uid!);
    this.d.events.record(
      {
        kind: 'PullStateRestore',
        apiVersion: `${GROUP}/${VERSION}`,
        namespace: obj.metadata!.namespace!,
        name: obj.metadata!.name!,
        uid: obj.metadata!.uid!,
      },
      phase === 'Succeeded' ? 'Normal' : 'Warning',
      phase === 'Succeeded' ? 'Restored' : 'RestoreFailed',
      message,
    );
    this.d.log.info('PullStateRestore done', { restore: key(obj), phase, message });
  }

  private async patchStatus(obj: IPullStateRestore, status: PullStateRestoreStatus): Promise<void> {
    await this.api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: obj.metadata!.namespace!,
        plural: RESTORE_PLURAL,
        name: obj.metadata!.name!,
        body: { status },
      },
      mergePatch,
    );
  }
}
