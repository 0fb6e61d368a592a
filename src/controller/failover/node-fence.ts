import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Taint } from '@kubernetes/client-node';
import { FENCE_TAINT } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const MAX_ATTEMPTS = 5;

/** The node's taints with the operator's fence added or removed (pure). */
export function withFence(taints: readonly V1Taint[] | undefined, fenced: boolean): V1Taint[] {
  const rest = (taints ?? []).filter((t) => t.key !== FENCE_TAINT);
  return fenced ? [...rest, { key: FENCE_TAINT, effect: 'NoSchedule' }] : rest;
}

/**
 * Adds or removes the operator's NoSchedule taint and keeps every other taint. `spec.taints` is one list, so
 * the write carries the resourceVersion it was computed from: if the node lifecycle controller (or anyone)
 * changed the taints in between, the API server answers 409 and the update is computed again from the new
 * list instead of dropping their taint. `afterRead` is a seam for the test of exactly that race.
 */
export async function setFence(
  core: Pick<CoreV1Api, 'readNode' | 'patchNode'>,
  node: string,
  on: boolean,
  afterRead: () => Promise<void> = async () => undefined,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const n = await core.readNode({ name: node });
    await afterRead();
    try {
      await core.patchNode(
        {
          name: node,
          body: {
            metadata: { resourceVersion: n.metadata?.resourceVersion },
            spec: { taints: withFence(n.spec?.taints, on) },
          },
        },
        merge,
      );
      return;
    } catch (err) {
      if (statusCode(err) !== 409 || attempt >= MAX_ATTEMPTS) throw err;
    }
  }
}
