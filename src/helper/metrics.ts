import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PullReport } from '../api/index.js';
import { registerBuildInfo } from '../runtime/build-info.js';
import type { BlobStore } from './blob-store.js';
import type { NodePuller } from './node-puller.js';

/** The helper's Prometheus metrics (on `:9500/metrics`). */
export function helperMetrics(store: BlobStore, puller?: NodePuller) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerBuildInfo(registry, 'pullstate_helper_build_info');
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
  new Gauge({
    name: 'pullstate_helper_namespace_stored_bytes',
    help: 'Bytes of state stored on this node, per namespace (each has a share: --namespace-quota-bytes).',
    labelNames: ['namespace'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [namespace, bytes] of store.usedBytesByNamespace()) this.set({ namespace }, bytes);
    },
  });
  new Gauge({
    name: 'pullstate_helper_uploads_in_flight',
    help: 'Copies being received from other helpers now (at most --max-uploads).',
    registers: [registry],
    collect() {
      this.set(store.memory().uploads);
    },
  });
  new Gauge({
    name: 'pullstate_helper_cache_bytes',
    help: 'Bytes of states held in memory: cached copies and uploads in flight (at most --cache-bytes).',
    registers: [registry],
    collect() {
      const m = store.memory();
      this.set(m.cachedBytes + m.keptInFlightBytes);
    },
  });
  const uploadsRefused = new Counter({
    name: 'pullstate_helper_uploads_refused_total',
    help: 'Copies this helper refused, by namespace and reason (NamespaceShareExceeded, QuotaExceeded, Busy, NamespaceBusy, TooLarge, NotNewer, NotHeld, Invalid).',
    labelNames: ['namespace', 'reason'],
    registers: [registry],
  });
  const pulls = new Counter({
    name: 'pullstate_helper_pulls_total',
    help: "Pulls of this node's Pods, by namespace and result (Succeeded, Failed, Restarted).",
    labelNames: ['namespace', 'result'],
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
    pulls.inc({
      namespace: r.namespace,
      result: r.ok ? 'Succeeded' : r.reason === 'Restarted' ? 'Restarted' : 'Failed',
    });
    if (r.ok) {
      pullSeconds.observe(r.durationMs / 1000);
      pullBytes.inc(r.sizeBytes);
    }
  };
  return { registry, requests, restoreSeconds, observePull, podFaults, uploadsRefused };
}

export type HelperMetrics = ReturnType<typeof helperMetrics>;
