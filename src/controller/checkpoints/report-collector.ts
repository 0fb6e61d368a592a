import type { PodFault, PullReport } from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { backoffDelay } from '../../runtime/backoff.js';
import type { HelperEndpoint } from '../kube/cluster-view.js';
import type { HelperClient } from '../kube/helper-client.js';
import { systemClock, type Clock } from '../kube/clock.js';

export interface ReportCollectorDeps {
  helpers: Pick<HelperClient, 'reports'>;
  endpoints: () => Map<string, HelperEndpoint>;
  /** Reports of a node's helper, in the order its pulls finished. */
  apply: (node: string, reports: readonly PullReport[]) => void;
  /** Pods the node's helper saw fail their probes. */
  faults: (node: string, faults: readonly PodFault[]) => void;
  /** The node's helper restarted: it lost its assignments. */
  helperRestarted: (node: string) => void;
  log: Logger;
  /** Longest a poll waits for reports. */
  waitMs?: number;
  /** Ends every poll (leadership lost, shutdown). */
  signal?: AbortSignal;
  clock?: Clock;
}

interface Poll {
  url: string;
  abort: AbortController;
}

const RETRY = { baseMs: 250, maxMs: 5000 };

/**
 * Long-polls every helper for the reports of its pulls: one open request per node, answered once a batch is
 * due, so what the leader does per period grows with nodes, not with Pods.
 */
export class ReportCollector {
  private polls = new Map<string, Poll>();

  constructor(private readonly d: ReportCollectorDeps) {
    d.signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  /** Starts polling new helpers and stops polling those gone (or moved to another address). */
  sync(): void {
    if (this.d.signal?.aborted) return;
    const endpoints = this.d.endpoints();
    for (const [node, poll] of this.polls) {
      const ep = endpoints.get(node);
      if (!ep || ep.url !== poll.url) {
        poll.abort.abort();
        this.polls.delete(node);
      }
    }
    for (const [node, ep] of endpoints) {
      if (this.polls.has(node) || !ep.ready) continue;
      const poll = { url: ep.url, abort: new AbortController() };
      this.polls.set(node, poll);
      void this.loop(node, poll).catch((err: unknown) =>
        this.d.log.error('report poll crashed', { node, error: errorMessage(err) }),
      );
    }
  }

  private stop(): void {
    for (const poll of this.polls.values()) poll.abort.abort();
    this.polls.clear();
  }

  private async loop(node: string, poll: Poll): Promise<void> {
    const signal = poll.abort.signal;
    let boot: string | undefined;
    let cursor = 0;
    let failures = 0;
    while (!signal.aborted) {
      try {
        // The first call only learns where the helper's reports stand: what came before is in its inventory.
        const batch = await this.d.helpers.reports(
          { url: poll.url, node },
          cursor,
          boot,
          boot ? (this.d.waitMs ?? 20_000) : 0,
          signal,
        );
        if (boot !== undefined && batch.boot !== boot) {
          this.d.log.info('helper restarted; sending its assignments again', { node });
          this.d.helperRestarted(node);
        }
        const first = boot === undefined;
        boot = batch.boot;
        cursor = batch.cursor;
        if (failures > 0) this.d.log.info('helper reports reachable again', { node });
        failures = 0;
        if (batch.missed) this.d.log.warn('missed pull reports of a helper', { node, missed: batch.missed });
        if (!first && batch.reports.length > 0) this.d.apply(node, batch.reports);
        // Faults from before this leader may be stale (the helper repeats a fault that lasts).
        if (!first && batch.faults?.length) this.d.faults(node, batch.faults);
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        if (failures === 1)
          this.d.log.warn('cannot read helper reports; retrying', { node, error: errorMessage(err) });
        await (this.d.clock ?? systemClock).sleep(backoffDelay(failures, RETRY), signal);
      }
    }
  }
}
