import { createHash } from 'node:crypto';
import type { CopyHold, PullAssignment } from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import type { HelperEndpoint } from '../kube/cluster-view.js';
import type { HelperClient } from '../kube/helper-client.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import type { Clock } from '../kube/clock.js';

export interface AssignmentPublisherDeps {
  helpers: Pick<HelperClient, 'assign' | 'holds'>;
  /** The helpers by node. */
  endpoints: () => Map<string, HelperEndpoint>;
  /** What each node's helper should pull now. */
  build: () => Map<string, PullAssignment[]>;
  /**
   * Every Pod whose copies the helpers may take, with its node (default: the Pods of `build`); each helper
   * gets all but its own node's.
   */
  holds?: () => Hold[];
  log: Logger;
  /** Changes within this window go out together. */
  debounceMs?: number;
  /** Rebuilt this often even without a known change (restore states, targets); only changes are sent. */
  resyncMs?: number;
  /** Sent again this often even if unchanged, in case a helper lost them unnoticed. */
  refreshMs?: number;
  /** Ends publishing (leadership lost, shutdown): the helpers keep their last sets. */
  signal?: AbortSignal;
  clock?: Clock;
}

const PUBLISH = 'publish';
const REFRESH = 'refresh';
const nodeKey = (node: string) => `node/${node}`;
/**
 * What makes a set worth sending. `lastSequence` rises with every pull, so a set compared with it changed
 * every second and every set went out every resync: O(Pods) bytes a second for nothing. A helper needs it
 * only to continue above it after a restart, and a restarted helper gets its whole set again (`forget`).
 */
const changeKey = (pods: PullAssignment[]) =>
  JSON.stringify(pods.map(({ lastSequence: _sequence, ...rest }) => rest));
/**
 * A Pod whose copies the helpers may take, from the helper of `node`. `selfHeld`: its policy lets that helper
 * keep the copy itself when no other node can (sameNodeCopy), also for its final pull, when the Pod is no
 * longer assigned.
 */
export type Hold = CopyHold & { selfHeld?: boolean };

/** The Pods of `wanted` with the node each is pulled on (pure; the holds when no other list is given). */
export function holdsOf(wanted: ReadonlyMap<string, PullAssignment[]>): Hold[] {
  const holds: Hold[] = [];
  for (const [node, pods] of wanted)
    for (const a of pods)
      holds.push({
        namespace: a.namespace,
        podUID: a.podUID,
        node,
        ...(a.targets.some((t) => t.node === node) ? { selfHeld: true } : {}),
      });
  return holds.sort((a, b) => (a.podUID < b.podUID ? -1 : a.podUID > b.podUID ? 1 : 0));
}

/** What the helper of `node` may take: every Pod of the other nodes, and its own node's it keeps itself. */
export function holdsFor(holds: readonly Hold[], node: string): CopyHold[] {
  return holds
    .filter((h) => h.node !== node || h.selfHeld === true)
    .map(({ namespace, podUID, node: from }) => ({ namespace, podUID, node: from }));
}

/** A send that failed is tried again this soon (the next resync would find it unsent anyway). */
const SEND_RETRY_MS = 1000;

/**
 * Keeps every helper's assignment set equal to what the controller decided. A set is sent only when it
 * changed (or a helper restarted), so steady state costs one rebuild per resync and no request at all; a new
 * `lastSequence` alone is no change.
 * Keys of one work queue: `publish` builds every set (after a change, debounced, and every resync) and
 * queues `node/<name>` for each set that changed; `node/<name>` sends one helper its newest set, so a helper
 * that hangs (its node just lost) delays only its own set, never the others'; `refresh` forgets what was
 * sent, so every set goes out again.
 */
export class AssignmentPublisher {
  private sent = new Map<string, string>();
  /** The holds digest each helper has. */
  private sentHolds = new Map<string, string>();
  /** What each node's helper should get and has not got yet (`assign`: its set; `holds`: its holds). */
  private pending = new Map<
    string,
    { url: string; pods: PullAssignment[]; body: string; assign?: true; holds?: CopyHold[]; holdsKey: string }
  >();
  /** Helpers that answered 404 to holds (older than them): asked again only after they restart. */
  private noHolds = new Set<string>();
  private failing = new Set<string>();
  private readonly queue: WorkQueue;

  constructor(private readonly d: AssignmentPublisherDeps) {
    this.queue = new WorkQueue(
      async (key) => {
        if (key === REFRESH) {
          this.sent.clear();
          this.sentHolds.clear();
          this.queue.add(PUBLISH);
          return { requeueAfterMs: d.refreshMs ?? 60_000 };
        }
        if (key === PUBLISH) {
          this.build();
          return { requeueAfterMs: d.resyncMs ?? 1000 };
        }
        return this.send(key.slice('node/'.length));
      },
      { concurrency: 8, signal: d.signal, clock: d.clock },
    );
  }

  /** Publishes now and keeps publishing until the signal aborts. */
  start(): void {
    this.queue.addAfter(REFRESH, this.d.refreshMs ?? 60_000);
    this.poke();
  }

  /** Something changed: publish soon. */
  poke(): void {
    this.queue.addAfter(PUBLISH, this.d.debounceMs ?? 50);
  }

  /** The node's helper restarted (its assignments are gone): send them again. */
  forget(node: string): void {
    this.sent.delete(node);
    this.sentHolds.delete(node);
    this.noHolds.delete(node);
    this.poke();
  }

  private build(): void {
    const wanted = this.d.build();
    const holds = this.d.holds ? this.d.holds() : holdsOf(wanted);
    // Compared as one digest: the per-node lists differ only by leaving out the node's own Pods.
    const holdsKey = createHash('sha256').update(JSON.stringify(holds)).digest('hex');
    const endpoints = this.d.endpoints();
    for (const node of this.sent.keys()) if (!endpoints.has(node)) this.sent.delete(node);
    for (const node of this.sentHolds.keys()) if (!endpoints.has(node)) this.sentHolds.delete(node);
    for (const node of this.pending.keys()) if (!endpoints.get(node)?.ready) this.pending.delete(node);
    for (const [node, ep] of endpoints) {
      if (!ep.ready) continue;
      const pods = wanted.get(node) ?? [];
      const body = changeKey(pods);
      // Each part goes out only when it changed for this node: a new Pod changes every helper's holds but
      // only its own node's assignments.
      const needAssign = this.sent.get(node) !== body;
      const needHolds = !this.noHolds.has(node) && this.sentHolds.get(node) !== holdsKey;
      if (!needAssign && !needHolds) {
        this.pending.delete(node);
        continue;
      }
      const p = this.pending.get(node);
      if (p && p.body === body && p.holdsKey === holdsKey) continue;
      this.pending.set(node, {
        url: ep.url,
        pods,
        body,
        ...(needAssign ? { assign: true } : {}),
        ...(needHolds ? { holds: holdsFor(holds, node), holdsKey } : { holdsKey }),
      });
      this.queue.add(nodeKey(node));
    }
  }

  private async send(node: string): Promise<ReconcileResult> {
    const p = this.pending.get(node);
    if (!p) return;
    try {
      // Holds first: the copies of a new Pod may be on their way from its node's helper soon after.
      if (p.holds) {
        if (await this.d.helpers.holds({ url: p.url, node }, { holds: p.holds }))
          this.sentHolds.set(node, p.holdsKey);
        else {
          this.noHolds.add(node);
          this.d.log.info('helper predates holds: it takes every copy its peers send until it is updated', {
            node,
          });
        }
      }
      if (p.assign) {
        await this.d.helpers.assign({ url: p.url, node }, { pods: p.pods });
        this.sent.set(node, p.body);
      }
      if (this.pending.get(node) === p) this.pending.delete(node);
      if (this.failing.delete(node)) this.d.log.info('assignments sent again', { node });
      // A newer set came while this one was on its way: it goes next (the queue runs this key again).
      return;
    } catch (err) {
      this.sent.delete(node);
      this.sentHolds.delete(node);
      if (!this.failing.has(node))
        this.d.log.warn('could not send assignments to a helper; retrying', {
          node,
          error: errorMessage(err),
        });
      this.failing.add(node);
      return { requeueAfterMs: SEND_RETRY_MS };
    }
  }
}
