import { createHash } from 'node:crypto';

export interface TargetCandidate {
  node: string;
  /** Copies this node already holds for other Pods, so new copies go to the emptiest nodes. */
  load: number;
}

export interface TargetChoice {
  /** The protected Pod's node: never a target, a copy there dies with the Pod. */
  podNode: string;
  copies: number;
  /** Targets used so far; kept while still valid so copies do not wander. */
  current: readonly string[];
  /** Ready nodes with a Ready helper. */
  candidates: readonly TargetCandidate[];
  /** Stable per-Pod key that spreads Pods with equal loads over different nodes. */
  key: string;
  /** The policy's `sameNodeCopy: WhenNoOtherNode`: with no other candidate, the Pod's own node holds the copy. */
  sameNodeWhenAlone?: boolean;
}

function spread(key: string, node: string): string {
  return createHash('sha1').update(`${key}/${node}`).digest('hex');
}

/**
 * Where a Pod's copies go: never its own node (unless it is the only candidate and the policy allows that),
 * valid current targets first (sticky), then the least-loaded candidates; ties broken by a per-Pod hash.
 * Returns fewer than `copies` nodes when there are not enough.
 */
export function chooseTargets(c: TargetChoice): string[] {
  const eligible = new Map(c.candidates.filter((x) => x.node !== c.podNode).map((x) => [x.node, x]));
  if (eligible.size === 0)
    return c.sameNodeWhenAlone === true && c.candidates.some((x) => x.node === c.podNode) ? [c.podNode] : [];
  const chosen = c.current.filter((n) => eligible.has(n)).slice(0, c.copies);
  const rest = [...eligible.values()]
    .filter((x) => !chosen.includes(x.node))
    .sort((a, b) => a.load - b.load || spread(c.key, a.node).localeCompare(spread(c.key, b.node)));
  for (const x of rest) {
    if (chosen.length >= c.copies) break;
    chosen.push(x.node);
  }
  return chosen;
}
