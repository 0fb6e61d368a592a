import type { BlobMeta } from '../../api/index.js';

/** One stored copy of a Pod's state on one node. */
export interface Copy {
  node: string;
  sequence: number;
  /** The Pod's container restarts when this copy was pulled (absent in copies of older helpers). */
  restartCount?: number;
  /** When the GET was sent (ms since the epoch); absent in copies of older helpers. */
  pulledAt?: number;
  /** The app's process identity at the pull, if it sends one. */
  instance?: string;
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
  /**
   * The Pod's workload (`WORKLOAD_PATTERN`): as its newest copy says, or the live Pod. An orphan goes only into
   * a new Pod of the same workload; one without (copies of older versions) into none.
   */
  workload?: string;
  /** Node of the protected Pod when it was last seen. */
  podNode?: string;
  /** The newest copy on each node (what a retarget or the status looks at). */
  copies: Map<string, Copy>;
  /**
   * Every generation known on any node, newest first (helpers keep a few per Pod): a restore after a restart
   * the controller saw late picks one pulled before it. Changed only through the functions below.
   */
  generations: Copy[];
  /** The process identity of the app whose state the copies hold; a pull from another one is a restart. */
  instance?: string;
  /** Set when the Pod is gone: the record waits to be restored into a replacement or to expire. */
  orphanedSince?: number;
  lastFailure?: { reason: string; message: string; at: number };
  /** A final pull of a terminating Pod is running: a restore from this record waits for it. */
  finalizing?: boolean;
  /** Settles when the final pull running (or about to run) is done. */
  finalPull?: Promise<void>;
  /**
   * The final pulls found the state still (two in a row alike: the app got SIGTERM and stopped changing it),
   * or a replacement waited for that long enough: its restore takes the newest copy now.
   */
  finalSettled?: boolean;
  /** The new Pod this orphan is being restored into, so no second Pod takes it. */
  claimedBy?: string;
  /**
   * No copy with a higher sequence is kept: set to the copy restored into a replacement, and to the newest
   * sequence when the Pod was given up for lost. A later copy is of a process that still runs although its
   * replacement took over (a partitioned node heals before its kubelet kills it): its state went its own way.
   */
  sealed?: number;
  /** The orphan this Pod was restored from; deleted once this Pod has a checkpoint of its own. */
  restoredFrom?: string;
  /** Highest sequence ever used, so the next one is always larger even after clock steps. */
  lastSequence: number;
}

export const policyKey = (namespace: string, name: string) => `${namespace}/${name}`;

/** What the controller keeps of a copy a helper reported (after a PUT, or in its inventory). */
export function copyOf(node: string, meta: BlobMeta): Copy {
  const { sequence, restartCount, pulledAt, instance, digest, sizeBytes, storedAt } = meta;
  return {
    node,
    sequence,
    ...(restartCount !== undefined ? { restartCount } : {}),
    ...(pulledAt !== undefined ? { pulledAt } : {}),
    ...(instance !== undefined ? { instance } : {}),
    digest,
    sizeBytes,
    storedAt,
  };
}

/** Generations the controller remembers per node and Pod; helpers keep 3 by default. */
const GENERATIONS_PER_NODE = 8;

/** Adds a generation a helper stored (no-op if known). */
export function addCopy(r: CheckpointRecord, copy: Copy): void {
  if (r.generations.some((c) => c.node === copy.node && c.sequence === copy.sequence)) return;
  r.generations.push(copy);
  r.generations.sort((a, b) => b.sequence - a.sequence);
  const onNode = r.generations.filter((c) => c.node === copy.node);
  for (const old of onNode.slice(GENERATIONS_PER_NODE)) r.generations.splice(r.generations.indexOf(old), 1);
  const newest = onNode[0]!;
  r.copies.set(copy.node, newest);
}

/** Forgets every generation on a node (deleted there, or the node is no longer a target). */
export function dropCopiesOnNode(r: CheckpointRecord, node: string): void {
  r.copies.delete(node);
  r.generations = r.generations.filter((c) => c.node !== node);
}

/** Forgets one generation (its helper no longer holds it). */
export function dropCopy(r: CheckpointRecord, copy: Copy): void {
  r.generations = r.generations.filter((c) => c !== copy);
  const newest = r.generations.find((c) => c.node === copy.node);
  if (newest) r.copies.set(copy.node, newest);
  else r.copies.delete(copy.node);
}

/** Keeps only the generations a helper says it still holds (it drops its oldest beyond its limit). */
export function keepOnNode(r: CheckpointRecord, node: string, sequences: readonly number[]): void {
  r.generations = r.generations.filter((c) => c.node !== node || sequences.includes(c.sequence));
}

/** Forgets the generations after `sequence`; returns the nodes that held any. */
export function dropNewerThan(r: CheckpointRecord, sequence: number): Set<string> {
  const nodes = new Set(r.generations.filter((c) => c.sequence > sequence).map((c) => c.node));
  r.generations = r.generations.filter((c) => c.sequence <= sequence);
  for (const node of nodes) {
    const newest = r.generations.find((c) => c.node === node);
    if (newest) r.copies.set(node, newest);
    else r.copies.delete(node);
  }
  return nodes;
}

/** The newest copy of a record (highest sequence), if any. */
/** A copy pulled after the Pod was given up or its state went to a replacement: not its state (see sealed). */
export function pastSeal(r: CheckpointRecord, sequence: number): boolean {
  return r.sealed !== undefined && sequence > r.sealed;
}

export function newestCopy(r: CheckpointRecord): Copy | undefined {
  let best: Copy | undefined;
  for (const c of r.copies.values()) if (!best || c.sequence > best.sequence) best = c;
  return best;
}

/** In-memory index of checkpoints by Pod UID. */
export class CheckpointBook {
  private records = new Map<string, CheckpointRecord>();

  get(podUID: string): CheckpointRecord | undefined {
    return this.records.get(podUID);
  }

  ensure(init: Omit<CheckpointRecord, 'copies' | 'generations' | 'lastSequence'>): CheckpointRecord {
    let r = this.records.get(init.podUID);
    if (!r) {
      r = { ...init, copies: new Map(), generations: [], lastSequence: 0 };
      this.records.set(init.podUID, r);
    } else {
      r.pod = init.pod;
      r.policy = init.policy;
      if (init.policyUID) r.policyUID = init.policyUID;
      if (init.workload) r.workload = init.workload;
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
      // A Pod's workload does not change; the newest copy's word is kept should older ones lack it.
      if (b.workload && b.sequence >= r.lastSequence) r.workload = b.workload;
      r.lastSequence = Math.max(r.lastSequence, b.sequence);
      if (pastSeal(r, b.sequence)) continue;
      addCopy(r, copyOf(node, b));
    }
    // The app's identity is the one of the newest copy (a new leader continues the previous one's check).
    for (const r of this.records.values()) {
      const newest = newestCopy(r);
      if (newest && r.instance === undefined) r.instance = newest.instance;
    }
  }
}
