import type { PullAssignment } from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import type { HelperEndpoint } from '../kube/cluster-view.js';
import type { HelperClient } from '../kube/helper-client.js';

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
}

/**
 * Keeps every helper's assignment set equal to what the controller decided. A set is sent only when it
 * changed (or a helper restarted), so steady state costs one rebuild per resync and no request at all.
 */
export class AssignmentPublisher {
  private sent = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private intervals: NodeJS.Timeout[] = [];
  private publishing?: Promise<void>;
  private again = false;
  private failing = new Set<string>();

  constructor(private readonly d: AssignmentPublisherDeps) {}

  start(): void {
    this.intervals.push(setInterval(() => this.poke(), this.d.resyncMs ?? 1000));
    this.intervals.push(setInterval(() => this.sent.clear(), this.d.refreshMs ?? 60_000));
    for (const t of this.intervals) t.unref();
    this.poke();
  }

  stop(): void {
    for (const t of this.intervals) clearInterval(t);
    clearTimeout(this.timer);
    this.intervals = [];
  }

  /** Something changed: publish soon. */
  poke(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publish();
    }, this.d.debounceMs ?? 50);
    this.timer.unref();
  }

  /** The node's helper restarted (its assignments are gone): send them again. */
  forget(node: string): void {
    this.sent.delete(node);
    this.poke();
  }

  /** Sends every changed set; one publish at a time, a change meanwhile publishes again after it. */
  async publish(): Promise<void> {
    if (this.publishing) {
      this.again = true;
      return this.publishing;
    }
    this.publishing = this.sendChanged().finally(() => (this.publishing = undefined));
    await this.publishing;
    if (this.again) {
      this.again = false;
      await this.publish();
    }
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
