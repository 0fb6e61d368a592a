// The checkpoint scenario's yardstick: the same copy without the operator, plain and over TLS.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readyPod } from '../harness/failover.js';
import { fixturePod } from '../harness/fixture-app.js';
import {
  createCertificateAuthority,
  createServingRequest,
  generateKeyPair,
  parseRequest,
  privateKeyPem,
  signServingCertificate,
} from '../src/tls/pki.js';
import { NS, until, type BenchContext } from './cluster.js';

const rawAgent = new HttpAgent({ keepAlive: true });

/**
 * The raw baseline of a checkpoint: GET the state from the Pod and stream it into a plain HTTP server on
 * another node that writes and fsyncs it (test/fixtures/raw-sink.mjs). The least any checkpoint can cost.
 * With `tls`, the same into the sink's HTTPS port: what the copy costs once it is encrypted, as the helpers'
 * copies are.
 */
export function rawCopy(source: string, sink: string, tls?: HttpsAgent): Promise<number> {
  const started = performance.now();
  const send = tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const get = httpRequest(source, { agent: rawAgent }, (res) => {
      const put = send(sink, { method: 'PUT', agent: tls ?? rawAgent }, (answer) => {
        answer.resume();
        answer.on('end', () =>
          answer.statusCode === 201
            ? resolve(Math.round((performance.now() - started) * 10) / 10)
            : reject(new Error(`raw sink answered ${answer.statusCode}`)),
        );
      });
      put.on('error', reject);
      put.on('socket', (socket) => socket.setNoDelay(true));
      res.pipe(put);
    });
    get.on('error', reject);
    get.end();
  });
}

/**
 * A raw sink Pod on `node`, its data on the node's disk (emptyDir), and its URLs once it answers: plain, and
 * HTTPS with a certificate for its IP from a CA of the benchmark's own (the agent trusts only that CA).
 */
export async function rawSink(
  { core }: BenchContext,
  node: string,
): Promise<{ url: string; tlsUrl: string; tls: HttpsAgent }> {
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'raw-sink', labels: { app: 'raw-sink' } },
      spec: {
        ...fixturePod(
          'raw-sink.mjs',
          {
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
            readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
          },
          { volumes: [{ name: 'data', emptyDir: {} }] },
        ),
        nodeName: node,
      },
    },
  });
  const pod = await until('raw sink Ready', () => readyPod(NS, 'app=raw-sink'));
  const ip = pod.status!.podIP!;
  const now = new Date();
  const ca = await createCertificateAuthority('bench raw sink CA', now, 3_600_000);
  const keys = await generateKeyPair();
  const cert = await signServingCertificate(
    ca,
    await parseRequest(await createServingRequest(keys, 'raw-sink', [ip])),
    new Date(now.getTime() - 60_000),
    new Date(now.getTime() + 3_600_000),
  );
  const res = await fetch(`http://${ip}:8080/tls`, {
    method: 'POST',
    body: JSON.stringify({ cert, key: await privateKeyPem(keys.privateKey) }),
  });
  if (res.status !== 204)
    throw new Error(`raw sink refused its certificate: ${res.status} ${await res.text()}`);
  return {
    url: `http://${ip}:8080`,
    tlsUrl: `https://${ip}:8443`,
    tls: new HttpsAgent({ keepAlive: true, ca: ca.certPem }),
  };
}
