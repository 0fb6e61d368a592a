import type { V1Pod } from '@kubernetes/client-node';

/** Where a Pod is probed: its liveness probe's httpGet if it has one, else the state path (pure). */
export function probeTarget(
  pod: V1Pod,
  spec: { port: number; path: string },
): { port: number; path: string } {
  const fallback = { port: spec.port, path: spec.path };
  for (const c of pod.spec?.containers ?? []) {
    const h = c.livenessProbe?.httpGet;
    if (!h) continue;
    let port = typeof h.port === 'number' ? h.port : Number(h.port);
    if (!Number.isInteger(port)) port = c.ports?.find((p) => p.name === h.port)?.containerPort ?? spec.port;
    // What the helper's API accepts; a probe it cannot express falls back to the state path.
    if (!Number.isInteger(port) || port < 1 || port > 65535 || !/^\/[^\s#]{0,1023}$/.test(h.path ?? '/'))
      return fallback;
    return { port, path: h.path ?? '/' };
  }
  return fallback;
}
