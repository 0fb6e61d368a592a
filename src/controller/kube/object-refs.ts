import type { V1ObjectReference, V1Pod } from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../../api/index.js';

/** Event subjects: a Pod, and a policy (by name and UID, with the namespace of the Pod it protects). */
export const podRef = (pod: V1Pod): V1ObjectReference => ({
  apiVersion: 'v1',
  kind: 'Pod',
  name: pod.metadata?.name,
  namespace: pod.metadata?.namespace,
  uid: pod.metadata?.uid,
});

export const policyRef = (
  e: { policy: string; policyUID: string } & { namespace?: string },
): V1ObjectReference => ({
  apiVersion: API_VERSION,
  kind: KIND,
  name: e.policy,
  namespace: e.namespace,
  uid: e.policyUID,
});
