import type { V1Pod } from '@kubernetes/client-node';
import { appContainer } from '../kube/app-container.js';

/**
 * Where a Pod is probed: the app container's liveness probe's httpGet if it has one, else the state path
 * (pure). Never a sidecar's: a log shipper failing its own liveness probe must not get the app's Pod deleted.
 */
export function probeTarget(
  pod: V1Pod,
  spec: { port: number; path: string; container?: string },
): { port: number; path: string } {
  const fallback = { port: spec.port, path: spec.path };
  const { name } = appContainer(pod, spec);
  for (const c of (pod.spec?.containers ?? []).filter((x) => x.name === name)) {
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
