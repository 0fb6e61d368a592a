import { request } from 'node:http';
import { quotedText } from '../runtime/quoted-text.js';
import type { Readable } from 'node:stream';
import { INSTANCE_HEADER, INSTANCE_PATTERN, type PushResult } from '../api/index.js';
import { pipeline } from 'node:stream/promises';
import { contentTypeOr } from '../runtime/header-value.js';
import { requestPath } from '../runtime/request-path.js';
import { hostPort } from '../runtime/ip-address.js';

const CONNECT_TIMEOUT_MS = 300;

export interface PushTarget {
  podIP: string;
  port: number;
  path: string;
  timeoutMs: number;
}

/**
 * POSTs a stored state into a Pod's restore endpoint with its original content type. Never throws, nor
 * rejects: the controller decides from `reason` whether to retry (Unreachable and Timeout usually mean the
 * app is not listening yet). A push that cannot even be sent (a restore path with a control character, a
 * port out of range) fails as Rejected without a status, naming what is wrong.
 */
export async function pushState(
  target: PushTarget,
  body: Readable,
  meta: { contentType: string; sizeBytes: number },
): Promise<PushResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const notSent = (message: string): PushResult => {
    body.destroy();
    return { result: 'Failed', reason: 'Rejected', message, durationMs: elapsed() };
  };
  // The restore path is the tenant's (the policy's restorePath): sent as the kubelet would send it.
  const path = requestPath(target.path);
  if (!path.ok) return notSent(`restorePath: ${path.problem}`);
  return new Promise<PushResult>((resolve) => {
    let req: ReturnType<typeof request>;
    try {
      req = request({
        host: target.podIP,
        port: target.port,
        path: path.path,
        method: 'POST',
        // The app chose its content type when it was pulled; one that is no media type goes as plain bytes.
        headers: {
          'content-type': contentTypeOr(meta.contentType),
          'content-length': meta.sizeBytes,
        },
        timeout: target.timeoutMs,
      });
    } catch (err) {
      return resolve(
        notSent(`cannot send to ${hostPort(target.podIP, target.port)}: ${(err as Error).message}`),
      );
    }
    let settled = false;
    const done = (r: PushResult) => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    // A Pod whose network is not up yet drops SYNs: give up on the connect early so the caller retries soon.
    req.on('socket', (socket) => {
      if (!socket.connecting) return; // a kept-alive connection
      const connectTimer = setTimeout(
        () => {
          req.destroy();
          done({
            result: 'Failed',
            reason: 'Unreachable',
            message: `could not connect within ${CONNECT_TIMEOUT_MS} ms`,
            durationMs: elapsed(),
          });
        },
        Math.min(CONNECT_TIMEOUT_MS, target.timeoutMs),
      );
      socket.once('connect', () => clearTimeout(connectTimer));
      socket.once('close', () => clearTimeout(connectTimer));
    });
    req.on('timeout', () => {
      req.destroy();
      done({
        result: 'Failed',
        reason: 'Timeout',
        message: `no answer within ${target.timeoutMs} ms`,
        durationMs: elapsed(),
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      body.destroy();
      done({
        result: 'Failed',
        reason: 'Unreachable',
        message: `${err.code ?? ''} ${err.message}`.trim(),
        durationMs: elapsed(),
      });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (c: Buffer) => {
        if (kept < 512) chunks.push(c);
        kept += c.length;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const instance = res.headers[INSTANCE_HEADER];
        if (status >= 200 && status < 300)
          done({
            result: 'Succeeded',
            status,
            durationMs: elapsed(),
            ...(typeof instance === 'string' && INSTANCE_PATTERN.test(instance) ? { instance } : {}),
          });
        else {
          const text = quotedText(
            Buffer.concat(chunks).subarray(0, 512).toString('utf8').trim(),
            512,
            kept > 512,
          );
          done({
            result: 'Failed',
            reason: 'Rejected',
            status,
            message: `the Pod answered ${status}${text ? `: ${text}` : ''}`,
            durationMs: elapsed(),
          });
        }
      });
      res.on('error', () => undefined);
    });
    pipeline(body, req).catch(() => undefined);
  });
}
