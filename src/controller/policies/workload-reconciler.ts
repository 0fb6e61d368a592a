import {
  CustomObjectsApi,
  type KubeConfig,
  type V1Deployment,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  KIND,
  LABELS,
  MANAGED_BY_VALUE,
  PLURAL,
  REASONS,
  VERSION,
  formatProblems,
  mapAnnotations,
  type AnnotatedKind,
  type IPullStatePolicy,
} from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import type { Logger } from '../../runtime/logger.js';
import { policyKey } from '../checkpoints/checkpoint-book.js';
import type { EventRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import type { ReconcileResult } from '../kube/workqueue.js';

export type Workload = V1Deployment | V1StatefulSet;

export interface WorkloadReconcilerDeps {
  kc: KubeConfig;
  workloads: Record<AnnotatedKind, Informer<Workload>>;
  policies: Informer<IPullStatePolicy>;
  events: EventRecorder;
  log: Logger;
  /** Written here, read by the policy reconciler for the managed policy's Degraded condition. */
  annotationProblems: Map<string, string>;
  /** A managed policy's problem changed: its status must be recomputed. */
  onProblemChange: (policyKey: string) => void;
}

/** JSON with object keys sorted, so specs compare equal whatever order the API server wrote them in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

export const workloadKey = (kind: AnnotatedKind, namespace: string, name: string) =>
  `${kind}/${namespace}/${name}`;

export function parseWorkloadKey(key: string): { kind: AnnotatedKind; namespace: string; name: string } {
  const [kind, namespace, name] = key.split('/') as [AnnotatedKind, string, string];
  return { kind, namespace, name };
}

/** Whether a policy was generated from this workload's annotations (label and owner both say so). */
export function isManagedBy(
  policy: IPullStatePolicy | undefined,
  kind: AnnotatedKind,
  uid: string | undefined,
): boolean {
  return (
    policy?.metadata?.labels?.[LABELS.managedFrom] === kind &&
    (policy.metadata.ownerReferences ?? []).some((o) => o.kind === kind && (!uid || o.uid === uid))
  );
}

/**
 * Compatibility mode: turns the original prototype's `hitachienergy.com/ps_*` annotations on a Deployment or
 * StatefulSet into a managed PullStatePolicy of the same name, owned by the workload (garbage collected with
 * it). Bad values leave the last good policy alone and are reported as a Warning Event naming the annotation.
 */
export class WorkloadReconciler {
  private api: CustomObjectsApi;

  constructor(private readonly d: WorkloadReconcilerDeps) {
    this.api = d.kc.makeApiClient(CustomObjectsApi);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { kind, namespace, name } = parseWorkloadKey(key);
    const pKey = policyKey(namespace, name);
    const workload = this.d.workloads[kind].get(name, namespace);
    const policy = this.d.policies.get(name, namespace);
    if (!workload || workload.metadata?.deletionTimestamp) {
      this.setProblem(pKey, undefined);
      return; // the garbage collector removes the owned policy
    }
    const uid = workload.metadata?.uid;
    const managed = isManagedBy(policy, kind, uid);
    const ref = { apiVersion: 'apps/v1', kind, name, namespace, uid };
    const mapping = mapAnnotations(
      workload.metadata?.annotations,
      (workload.spec?.selector ?? {}) as Parameters<typeof mapAnnotations>[1],
    );
    if (mapping.kind !== 'absent') {
      for (const w of mapping.warnings) this.d.events.record(ref, 'Warning', 'UnknownAnnotation', w);
    }
    if (mapping.kind === 'absent') {
      this.setProblem(pKey, undefined);
      if (managed) {
        this.d.log.info('annotations removed, deleting the managed policy', { workload: key });
        await this.deletePolicy(namespace, name);
        this.d.events.record(
          ref,
          'Normal',
          'PolicyDeleted',
          `annotations removed: deleted PullStatePolicy ${name}`,
        );
      }
      return;
    }
    if (mapping.kind === 'invalid') {
      const message = formatProblems(mapping.problems);
      this.d.log.warn('invalid annotations', { workload: key, message });
      this.d.events.record(
        ref,
        'Warning',
        REASONS.invalidAnnotation,
        `${message}${managed ? '; the last valid settings stay in effect' : ''}`,
      );
      this.setProblem(pKey, message);
      return; // no requeue: the next edit of the workload brings us back
    }
    this.setProblem(pKey, undefined);
    if (policy && !managed) {
      this.d.events.record(
        ref,
        'Warning',
        'PolicyConflict',
        `a PullStatePolicy named ${name} exists and is not managed from this ${kind}; the annotations are ignored`,
      );
      return;
    }
    const desired: IPullStatePolicy = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name,
        namespace,
        labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.managedFrom]: kind },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind, name, uid: uid!, controller: true, blockOwnerDeletion: false },
        ],
      },
      spec: mapping.spec,
    };
    if (!policy) {
      await this.api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        body: desired,
      });
      this.d.log.info('created managed policy', { workload: key });
      this.d.events.record(
        ref,
        'Normal',
        'PolicyCreated',
        `created PullStatePolicy ${name} from the ps_* annotations`,
      );
      return;
    }
    if (canonical(policy.spec) === canonical(mapping.spec)) return;
    // replace carries the cached resourceVersion: a concurrent edit makes this fail and the queue retries.
    await this.api.replaceNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
      body: {
        ...desired,
        metadata: { ...desired.metadata, resourceVersion: policy.metadata?.resourceVersion },
      },
    });
    this.d.log.info('updated managed policy', { workload: key });
  }

  private setProblem(key: string, message: string | undefined): void {
    if (this.d.annotationProblems.get(key) === message) return;
    if (message === undefined) this.d.annotationProblems.delete(key);
    else this.d.annotationProblems.set(key, message);
    this.d.onProblemChange(key);
  }

  private async deletePolicy(namespace: string, name: string): Promise<void> {
    try {
      await this.api.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
      });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
  }
}
