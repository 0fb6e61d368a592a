import type { V1Pod } from '@kubernetes/client-node';
import type { ResolvedSpec } from '../../api/index.js';

/** A Pod a policy protects now, with the policy's resolved spec. */
export interface ProtectedPod {
  policyKey: string;
  policy: string;
  policyUID: string;
  /** The Pod's workload (`workloadOf`): an orphan of another workload is never restored into this Pod. */
  workload?: string;
  spec: ResolvedSpec;
  pod: V1Pod;
}
