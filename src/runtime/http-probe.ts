import { request } from 'node:http';

/**
 * What one probe saw. `error`: an answer with another status than 2xx or 3xx; `failed`: no answer, but the
 * host is there (it refused or reset the connection, or took it and said nothing in time); `unreachable`: no
 * connection at all within the timeout, or the network says the host is gone. Only the last says anything
 * about the node: a starting app refuses, a lost node stays silent.
 */
export type ProbeOutcome = 'ok' | 'error' | 'failed' | 'unreachable';

/** Errors of a connection that never reached the host. */
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/** One HTTP probe as the kubelet does it (a 2xx or 3xx answer within the timeout), with why it failed. */
export function probe(ip: string, port: number, path: string, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let connected = false;
    let timedOut = false;
    const req = request({ host: ip, port, path, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400 ? 'ok' : 'error');
    });
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

/** One HTTP probe as the kubelet does it: a 2xx or 3xx answer within the timeout. */
export async function probeOnce(ip: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return (await probe(ip, port, path, timeoutMs)) === 'ok';
}
