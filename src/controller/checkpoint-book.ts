import type { BlobMeta } from '../helper/blob-store.js';

/** One stored copy of a Pod's state on one node. */
export interface Copy {
  node: string;
  sequence: number;
  /** The Pod's container restarts when this copy was pulled (absent in copies of older helpers). */
  restartCount?: number;
  digest: string;
  sizeBytes: number;
  storedAt: string;
}

/** Everything the controller knows about one Pod's checkpoint; rebuilt from helper inventories on takeover. */
export interface CheckpointRecord {
  namespace: string;
  policy: string;
  /** UID of the policy when the copy was made; orphans of an earlier policy of the same name are not restored. */
  policyUID?: string;
  pod: string;
  podUID: string;
  /** Node of the protected Pod when it was last seen. */
  podNode?: string;
  copies: Map<string, Copy>;
  /** Set when the Pod is gone: the record waits to be restored into a replacement or to expire. */
  orphanedSince?: number;
  lastFailure?: { reason: string; message: string; at: number };
  /** A final pull of a terminating Pod is running: a restore from this record waits for it. */
  finalizing?: boolean;
  /** The new Pod this orphan is being restored into, so no second Pod takes it. */
  claimedBy?: string;
  /** The orphan this Pod was restored from; deleted once this Pod has a checkpoint of its own. */
  restoredFrom?: string;
  /** Highest sequence ever used, so the next one is always larger even after clock steps. */
  lastSequence: number;
}

export const policyKey = (namespace: string, name: string) => `${namespace}/${name}`;

/** What the controller keeps of a copy a helper reported (after a PUT, or in its inventory). */
export function copyOf(node: string, meta: BlobMeta): Copy {
  const { sequence, restartCount, digest, sizeBytes, storedAt } = meta;
  return {
    node,
    sequence,
    ...(restartCount !== undefined ? { restartCount } : {}),
    digest,
    sizeBytes,
    storedAt,
  };
}

/** The newest copy of a record (highest sequence), if any. */
export function newestCopy(r: CheckpointRecord): Copy | undefined {
  let best: Copy | undefined;
  for (const c of r.copies.values()) if (!best || c.sequence > best.sequence) best = c;
  return best;
}

/** Next sequence: wall-clock milliseconds, so a new leader continues above its predecessor. */
export function nextSequence(r: CheckpointRecord, now = Date.now()): number {
  return Math.max(now, r.lastSequence + 1);
}

/** In-memory index of checkpoints by Pod UID. */
export class CheckpointBook {
  private records = new Map<string, CheckpointRecord>();

  get(podUID: string): CheckpointRecord | undefined {
    return this.records.get(podUID);
  }

  ensure(init: Omit<CheckpointRecord, 'copies' | 'lastSequence'>): CheckpointRecord {
    let r = this.records.get(init.podUID);
    if (!r) {
      r = { ...init, copies: new Map(), lastSequence: 0 };
      this.records.set(init.podUID, r);
    } else {
      r.pod = init.pod;
      r.policy = init.policy;
      if (init.policyUID) r.policyUID = init.policyUID;
      if (init.podNode) r.podNode = init.podNode;
    }
    return r;
  }

  forPolicy(namespace: string, policy: string): CheckpointRecord[] {
    return [...this.records.values()].filter((r) => r.namespace === namespace && r.policy === policy);
  }

  all(): CheckpointRecord[] {
    return [...this.records.values()];
  }

  delete(podUID: string): void {
    this.records.delete(podUID);
  }

  /** Copies each node holds, for spreading new copies by load. */
  loadByNode(): Map<string, number> {
    const load = new Map<string, number>();
    for (const r of this.records.values())
      for (const node of r.copies.keys()) load.set(node, (load.get(node) ?? 0) + 1);
    return load;
  }

  /** Merges one helper's inventory: what the disk says wins over what this process remembers. */
  learnInventory(node: string, blobs: readonly BlobMeta[]): void {
    for (const b of blobs) {
      const r = this.ensure({
        namespace: b.namespace,
        policy: b.policy,
        policyUID: b.policyUID,
        pod: b.pod,
        podUID: b.podUID,
      });
      const known = r.copies.get(node);
      if (!known || known.sequence < b.sequence) {
        r.copies.set(node, copyOf(node, b));
      }
      r.lastSequence = Math.max(r.lastSequence, b.sequence);
    }
  }
}
