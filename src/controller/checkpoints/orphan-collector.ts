import type { Logger } from '../../runtime/logger.js';
import { dropCopiesOnNode, policyKey, type CheckpointBook } from './checkpoint-book.js';
import type { ClusterView } from '../kube/cluster-view.js';
import type { HelperClient } from '../kube/helper-client.js';

/** Records whose Pod has been gone longer than the retention (pure). */
export function expiredOrphans<T extends { orphanedSince?: number }>(
  records: readonly T[],
  now: number,
  retentionMs: number,
): T[] {
  return records.filter((r) => r.orphanedSince !== undefined && now - r.orphanedSince >= retentionMs);
}

/**
 * Deletes copies of Pods that have been gone for longer than the retention. Not at once: a replacement may
 * still need the copy, and a restarted controller first relearns which Pods exist.
 */
export async function collectOrphans(
  book: CheckpointBook,
  view: ClusterView,
  helpers: HelperClient,
  retentionMs: number,
  log: Logger,
  onChange: (policyKey: string) => void,
  now: number,
): Promise<void> {
  const endpoints = view.helpers();
  for (const r of expiredOrphans(book.all(), now, retentionMs)) {
    let left = 0;
    for (const node of [...r.copies.keys()]) {
      const ep = endpoints.get(node);
      if (!ep) continue; // the node is gone; its helper's disk goes with it
      try {
        await helpers.delete(ep, r.namespace, r.podUID);
        dropCopiesOnNode(r, node);
      } catch (err) {
        left++;
        log.warn('could not delete an expired copy', { pod: r.pod, node, error: String(err) });
      }
    }
    if (left === 0) {
      book.delete(r.podUID);
      log.info('deleted the copies of a Pod gone for longer than the retention', {
        pod: r.pod,
        namespace: r.namespace,
      });
      onChange(policyKey(r.namespace, r.policy));
    }
  }
}
