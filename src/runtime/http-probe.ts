import { request } from 'node:http';
import { requestPath } from './request-path.js';

/**
 * What one probe saw. `error`: an answer with another status than 2xx or 3xx; `failed`: no answer, but the
 * host is there (it refused or reset the connection, or took it and said nothing in time); `unreachable`: no
 * connection at all within the timeout, or the network says the host is gone. Only the last says anything
 * about the node: a starting app refuses, a lost node stays silent.
 *
 * `misconfigured`: the probe could not even be sent (a path with a control character, a port out of range,
 * no address): it was never on the wire, so it says nothing about the Pod or its node. Callers must count it
 * as no evidence, never as a failure: a tenant's odd liveness path must not get its Pod, or a node, given up.
 */
export type ProbeOutcome = 'ok' | 'error' | 'failed' | 'unreachable' | 'misconfigured';

/** Errors of a connection that never reached the host. */
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

const validPort = (port: number) => Number.isInteger(port) && port >= 1 && port <= 65535;

/**
 * One HTTP probe as the kubelet does it (a 2xx or 3xx answer within the timeout), with why it failed. Never
 * rejects: the path comes from a tenant's Pod spec, and node's `request()` throws at once on what it cannot
 * send; a throw here once reached no handler and took the whole helper down.
 */
export function probe(ip: string, port: number, path: string, timeoutMs: number): Promise<ProbeOutcome> {
  const target = requestPath(path);
  // An empty host would be localhost: the prober's own node, not the Pod.
  if (!target.ok || !validPort(port) || !ip) return Promise.resolve('misconfigured');
  return new Promise((resolve) => {
    let connected = false;
    let timedOut = false;
    let req: ReturnType<typeof request>;
    try {
      req = request({ host: ip, port, path: target.path, timeout: timeoutMs, agent: false }, (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400 ? 'ok' : 'error');
      });
    } catch {
      return resolve('misconfigured');
    }
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('timeout', () => {
      timedOut = true;
      req.destroy();
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve((timedOut && !connected) || UNREACHABLE.has(err.code ?? '') ? 'unreachable' : 'failed'),
    );
    req.end();
  });
}
