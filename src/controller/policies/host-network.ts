import type { V1Pod } from '@kubernetes/client-node';
import { REASONS } from '../../api/index.js';
import type { ResolvedSpec } from '../../api/resolved-spec.js';

/** Why a selected Pod is left unprotected, for its Event and its readiness gate. */
export interface Refusal {
  reason: string;
  message: string;
}

/**
 * A Pod on the host network has its node's address: pulling from or restoring into it reaches whatever
 * listens on that node port (the kubelet, an exporter, another tenant's host-network Pod), not necessarily
 * the app. So such a Pod is a target only when its policy says so.
 */
export function hostNetworkRefusal(
  pod: V1Pod,
  spec: Pick<ResolvedSpec, 'allowHostNetwork' | 'port'>,
): Refusal | undefined {
  if (pod.spec?.hostNetwork !== true || spec.allowHostNetwork) return undefined;
  return {
    reason: REASONS.hostNetworkRefused,
    message: `the Pod uses hostNetwork, so its state port ${spec.port} is a port of its node: it is not checkpointed or restored; set spec.allowHostNetwork: true in its PullStatePolicy if that port is the app's`,
  };
}

/**
 * The mark a helper needs before it pulls from or restores into its own node's address: set only for a
 * hostNetwork Pod whose policy allows it.
 */
export function hostNetworkMark(
  pod: V1Pod,
  spec: Pick<ResolvedSpec, 'allowHostNetwork'>,
): { hostNetwork?: true } {
  return pod.spec?.hostNetwork === true && spec.allowHostNetwork ? { hostNetwork: true } : {};
}
