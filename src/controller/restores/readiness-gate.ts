import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { READINESS_GATE } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';

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
function closedReady(reason: string) {
  return {
    type: 'Ready',
    status: 'False',
    reason: 'ReadinessGatesNotReady',
    message: `readiness gate ${READINESS_GATE} closed by pull-state-operator (${reason})`,
    lastTransitionTime: new Date(),
  };
}

/**
 * Writes the operator's readiness-gate condition on Pods that declare the gate. Writes to one Pod go out one
 * after the other, in the order they were asked for: a "False" sent when a restart was seen must never land
 * after the "True" of the restore that followed it a few milliseconds later, or the Pod stays out of its
 * Service.
 */
export class GateWriter {
  private readonly core: CoreV1Api;
  private writes = new Map<string, Promise<void>>();

  constructor(
    kc: KubeConfig,
    private readonly log: Logger,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  set(pod: V1Pod, status: 'True' | 'False', reason: string, message: string): Promise<void> {
    if (!hasGate(pod)) return Promise.resolve();
    const uid = pod.metadata!.uid!;
    const previous = this.writes.get(uid) ?? Promise.resolve();
    const write = previous.then(() => this.write(pod, status, reason, message));
    this.writes.set(uid, write);
    void write.then(() => {
      if (this.writes.get(uid) === write) this.writes.delete(uid);
    });
    return write;
  }

  private async write(pod: V1Pod, status: 'True' | 'False', reason: string, message: string): Promise<void> {
    try {
      await this.core.patchNamespacedPodStatus(
        {
          name: pod.metadata!.name!,
          namespace: pod.metadata!.namespace!,
          body: {
            status: {
              conditions: [
                {
                  type: READINESS_GATE,
                  status,
                  reason,
                  message: message.slice(0, 1000),
                  lastTransitionTime: new Date(),
                },
                ...(status === 'False' ? [closedReady(reason)] : []),
              ],
            },
          },
        },
        smp,
      );
    } catch (err) {
      if (statusCode(err) !== 404)
        this.log.warn('could not set the readiness gate', {
          pod: pod.metadata?.name,
          error: errorMessage(err),
        });
    }
  }
}
