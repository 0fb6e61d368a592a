import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface ProbeChecks {
  /** The process can make progress; false makes the kubelet restart it. */
  healthy: () => boolean;
  /** Why the process is not ready yet, or undefined when it is. */
  notReadyBecause: () => string | undefined;
}

/** `/healthz`, `/readyz` and `/metrics`, the same for every entry point. */
export function registerProbes(app: FastifyInstance, registry: Registry, checks: ProbeChecks): void {
  app.get('/healthz', async (_req, reply) => (checks.healthy() ? 'ok' : reply.code(500).send('unhealthy')));
  app.get('/readyz', async (_req, reply) => {
    const why = checks.notReadyBecause();
    return why === undefined ? 'ok' : reply.code(503).send(`not ready: ${why}`);
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
