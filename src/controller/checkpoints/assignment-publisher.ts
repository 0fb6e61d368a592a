import type { PullAssignment } from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import type { HelperEndpoint } from '../kube/cluster-view.js';
import type { HelperClient } from '../kube/helper-client.js';
import { WorkQueue } from '../kube/workqueue.js';

export interface AssignmentPublisherDeps {
  helpers: Pick<HelperClient, 'assign'>;
  /** The helpers by node. */
  endpoints: () => Map<string, HelperEndpoint>;
  /** What each node's helper should pull now. */
  build: () => Map<string, PullAssignment[]>;
  log: Logger;
  /** Changes within this window go out together. */
  debounceMs?: number;
  /** Rebuilt this often even without a known change (restore states, targets); only changes are sent. */
  resyncMs?: number;
  /** Sent again this often even if unchanged, in case a helper lost them unnoticed. */
  refreshMs?: number;
  /** Ends publishing (leadership lost, shutdown): the helpers keep their last sets. */
  signal?: AbortSignal;
}

const PUBLISH = 'publish';
const REFRESH = 'refresh';

/**
 * Keeps every helper's assignment set equal to what the controller decided. A set is sent only when it
 * changed (or a helper restarted), so steady state costs one rebuild per resync and no request at all.
 * Two keys of one work queue: `publish` (after a change, debounced, and every resync) and `refresh` (forgets
 * what was sent, so every set goes out again).
 */
export class AssignmentPublisher {
  private sent = new Map<string, string>();
  private failing = new Set<string>();
  private readonly queue: WorkQueue;

  constructor(private readonly d: AssignmentPublisherDeps) {
    this.queue = new WorkQueue(
      async (key) => {
        if (key === REFRESH) {
          this.sent.clear();
          this.queue.add(PUBLISH);
          return { requeueAfterMs: d.refreshMs ?? 60_000 };
        }
        await this.sendChanged();
        return { requeueAfterMs: d.resyncMs ?? 1000 };
      },
      { concurrency: 2, signal: d.signal },
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
    this.poke();
  }

  private async sendChanged(): Promise<void> {
    const wanted = this.d.build();
    const endpoints = this.d.endpoints();
    for (const node of this.sent.keys()) if (!endpoints.has(node)) this.sent.delete(node);
    await Promise.all(
      [...endpoints].map(async ([node, ep]) => {
        if (!ep.ready) return;
        const pods = wanted.get(node) ?? [];
        const body = JSON.stringify(pods);
        if (this.sent.get(node) === body) return;
        try {
          await this.d.helpers.assign(ep.url, { pods });
          this.sent.set(node, body);
          if (this.failing.delete(node)) this.d.log.info('assignments sent again', { node });
        } catch (err) {
          this.sent.delete(node);
          if (!this.failing.has(node))
            this.d.log.warn('could not send assignments to a helper; retrying', {
              node,
              error: errorMessage(err),
            });
          this.failing.add(node);
        }
      }),
    );
  }
}
