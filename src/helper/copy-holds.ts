import type { CopyHold } from '../api/index.js';

/**
 * The Pods whose copies this helper keeps, and from which node's helper, as the controller last said. Until
 * the controller has said anything (a helper just started, or a controller from before holds), nothing is
 * refused here: the other checks (TokenReview, the peer identity, sequences, the namespace's share) still
 * apply. Without it, any helper's token could store a copy of any Pod, also one of another tenant's that
 * would then be restored as an orphan's state.
 */
export class CopyHolds {
  private holds?: Map<string, string>;

  /** Replaces the list; answers how many Pods it names. */
  set(list: readonly CopyHold[]): number {
    this.holds = new Map(list.map((h) => [key(h.namespace, h.podUID), h.node]));
    return this.holds.size;
  }

  list(): CopyHold[] | undefined {
    if (!this.holds) return undefined;
    return [...this.holds].map(([k, node]) => {
      const [namespace, podUID] = k.split('/') as [string, string];
      return { namespace, podUID, node };
    });
  }

  /**
   * Why a copy of `namespace/podUID` sent by a helper is refused, or undefined. `from`: the node of the Pod
   * the sender's token is bound to, when the token names one.
   */
  problem(namespace: string, podUID: string, from: string | undefined): string | undefined {
    if (!this.holds) return undefined;
    const node = this.holds.get(key(namespace, podUID));
    if (node === undefined) return `this helper was not told to keep copies of Pod ${namespace}/${podUID}`;
    if (from !== undefined && from !== node)
      return `copies of Pod ${namespace}/${podUID} come from the helper of node ${node}, not ${from}`;
    return undefined;
  }
}

const key = (namespace: string, podUID: string) => `${namespace}/${podUID}`;
