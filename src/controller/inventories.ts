import type { Logger } from '../runtime/logger.js';
import type { CheckpointBook } from './checkpoints/checkpoint-book.js';
import type { ClusterView } from './kube/cluster-view.js';
import type { HelperClient, HelperTarget } from './kube/helper-client.js';
import { systemClock, type Clock } from './kube/clock.js';

/** How often inventories that could not be read are tried again. */
export const INVENTORY_RETRY_MS = 2000;

export interface InventoryReaderDeps {
  book: Pick<CheckpointBook, 'learnInventory'>;
  view: Pick<ClusterView, 'helpers' | 'usableHelpers' | 'nodeReady'>;
  helpers: Pick<HelperClient, 'inventory'>;
  log: Logger;
  /** A helper silent to this replica's probes (most likely lost with its node). */
  isSuspect: (node: string) => boolean;
  clock?: Clock;
}

/**
 * Reads what the helpers hold into the checkpoint book: every helper at a takeover (the book is all a new
 * leader knows of the copies), a helper that became Ready, one Pod's generations before a restore, and again
 * every few seconds the inventories that could not be read.
 */
export class InventoryReader {
  /** Nodes whose helper inventory could not be read: read again by `retryUnread`. */
  private unread = new Set<string>();

  constructor(private readonly d: InventoryReaderDeps) {}

  /** Reads every helper's inventory (a takeover). */
  async learnAll(): Promise<void> {
    await Promise.all(
      [...this.d.view.helpers()].map(async ([node, ep]) => {
        // Silent to this replica's probes while it stood by: most likely lost with its node (a new leader is
        // often elected because of that, and the API shows a lost node NotReady only after its grace
        // period). Not waited for: the Pods of that node are deleted only after the first reconcile.
        if (this.d.isSuspect(node)) {
          this.d.log.info('helper silent: its inventory is read once it is ready', { node });
          this.unread.add(node);
          return;
        }
        // A helper shown not Ready, or on a NotReady node: one short try, not 16 s of a failover. An
        // inventory not read is read again every few seconds once its helper is ready (`retryUnread`).
        if (ep.ready && this.d.view.nodeReady(node)) await this.learn(ep);
        else await this.learn(ep, 1, 1000);
      }),
    );
  }

  /** Reads one helper's inventory; a helper that does not answer is left for `retryUnread`. */
  async learn(helper: HelperTarget, attempts = 3, timeoutMs?: number): Promise<void> {
    const { node } = helper;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const inv = await this.d.helpers.inventory(helper, undefined, timeoutMs);
        this.d.book.learnInventory(node, inv.blobs);
        this.unread.delete(node);
        return;
      } catch (err) {
        if (attempt === attempts) {
          this.d.log.warn('could not read a helper inventory; again once it is ready', {
            node,
            error: String(err),
          });
          this.unread.add(node);
        } else await (this.d.clock ?? systemClock).sleep(500 * attempt);
      }
    }
  }

  /** Reads again the inventories that could not be read, of helpers Ready now. */
  async retryUnread(): Promise<void> {
    await Promise.all(
      [...this.unread].map(async (node) => {
        const ep = this.d.view.helpers().get(node);
        if (!ep) this.unread.delete(node); // no helper there any more: nothing to read
        if (ep?.ready) await this.learn(ep, 1, 2000);
      }),
    );
  }

  /** Reads one Pod's generations from every usable helper (briefly: a failover waits for it). */
  async refresh(podUID: string): Promise<void> {
    await Promise.all(
      [...this.d.view.usableHelpers()].map(async ([node, ep]) => {
        const inv = await this.d.helpers.inventory(ep, podUID, 1000).catch(() => undefined);
        if (inv) this.d.book.learnInventory(node, inv.blobs);
      }),
    );
  }
}
