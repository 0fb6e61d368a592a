import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PullReport } from '../api/index.js';
import type { BlobStore } from './blob-store.js';
import type { NodePuller } from './node-puller.js';

/** The helper's Prometheus metrics (on `:9500/metrics`). */
export function helperMetrics(store: BlobStore, puller?: NodePuller) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'pullstate_helper_requests_total',
    help: 'Helper API requests by route and HTTP status code.',
    labelNames: ['route', 'code'],
    registers: [registry],
  });
  const restoreSeconds = new Histogram({
    name: 'pullstate_helper_restore_duration_seconds',
    help: 'Time to push a stored state into a Pod, by result.',
    labelNames: ['result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Gauge({
    name: 'pullstate_helper_blobs',
    help: 'State copies stored on this node.',
    registers: [registry],
    collect() {
      this.set(store.list().length);
    },
  });
  new Gauge({
    name: 'pullstate_helper_stored_bytes',
    help: 'Bytes of state stored on this node.',
    registers: [registry],
    collect() {
      this.set(store.usedBytes());
    },
  });
  const pulls = new Counter({
    name: 'pullstate_helper_pulls_total',
    help: "Pulls of this node's Pods, by result (success, failure, restarted).",
    labelNames: ['result'],
    registers: [registry],
  });
  const pullSeconds = new Histogram({
    name: 'pullstate_helper_pull_duration_seconds',
    help: 'Time from the GET to the copies stored on the target helpers (successful pulls).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const pullBytes = new Counter({
    name: 'pullstate_helper_pulled_bytes_total',
    help: "Bytes of state pulled from this node's Pods.",
    registers: [registry],
  });
  const podFaults = new Counter({
    name: 'pullstate_helper_pod_faults_total',
    help: 'Pods of this node reported as failed (their probes failed failureThreshold times in a row).',
    registers: [registry],
  });
  new Gauge({
    name: 'pullstate_helper_assigned_pods',
    help: 'Pods this helper pulls on its own timer.',
    registers: [registry],
    collect() {
      this.set(puller?.assignments().length ?? 0);
    },
  });
  const observePull = (r: PullReport) => {
    pulls.inc({ result: r.ok ? 'success' : r.reason === 'Restarted' ? 'restarted' : 'failure' });
    if (r.ok) {
      pullSeconds.observe(r.durationMs / 1000);
      pullBytes.inc(r.sizeBytes);
    }
  };
  return { registry, requests, restoreSeconds, observePull, podFaults };
}

export type HelperMetrics = ReturnType<typeof helperMetrics>;
