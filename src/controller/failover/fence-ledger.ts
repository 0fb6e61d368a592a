import type { V1Node } from '@kubernetes/client-node';
import { FENCE_TAINT } from '../../api/index.js';

/**
 * Which nodes the operator fenced: as the node cache shows the taint, or by a write of this leader the cache
 * has not shown yet. Its own object, written by the fault detector and read by the cluster view (a fenced
 * node takes no copies), so neither needs the other.
 */
export class FenceLedger {
  /**
   * Fences this leader wrote that the node cache does not show yet. The cache is the truth otherwise: a fence
   * another leader wrote (also one that lost its lease but finished its write) or a user removed is seen.
   */
  private fencing = new Set<string>();
  /** Unfenced by this leader: the resourceVersion of the node object it removed the taint from. */
  private unfenced = new Map<string, string | undefined>();

  constructor(private readonly nodes: { get(name: string): V1Node | undefined }) {}

  isFenced(node: string): boolean {
    const n = this.nodes.get(node);
    if ((n?.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT)) {
      this.fencing.delete(node);
      // Removed by this leader, and the cache still shows the object it removed it from: not fenced (and not
      // removed again every round). Any newer object is the truth (someone fenced it again).
      if (this.unfenced.has(node) && this.unfenced.get(node) === n?.metadata?.resourceVersion) return false;
      this.unfenced.delete(node);
      return true;
    }
    this.unfenced.delete(node);
    return this.fencing.has(node);
  }

  /** The API took this leader's write of the fence (on) or its removal (off). */
  wrote(node: string, on: boolean): void {
    if (on) {
      this.fencing.add(node);
      this.unfenced.delete(node);
    } else {
      this.fencing.delete(node);
      this.unfenced.set(node, this.nodes.get(node)?.metadata?.resourceVersion);
    }
  }
}
