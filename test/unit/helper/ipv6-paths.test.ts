// The address paths of an IPv6 cluster on real sockets (this machine's [::1]): a helper serving HTTPS with a
// certificate for its IPv6 address, the controller's client reaching it by the URL built from the Pod, a pull
// from an app and a restore into it. The local cluster is IPv4; these are the same code paths.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { HelperClient } from '../../../src/controller/kube/helper-client.js';
import { helperEndpoint } from '../../../src/controller/kube/cluster-view.js';
import { BlobStore } from '../../../src/helper/blob-store.js';
import { pullState } from '../../../src/helper/pull-state.js';
import { buildHelperServer } from '../../../src/helper/server.js';
import { httpURL } from '../../../src/runtime/ip-address.js';
import { createLogger } from '../../../src/runtime/logger.js';
import {
  createCertificateAuthority,
  createServingRequest,
  generateKeyPair,
  parseRequest,
  privateKeyPem,
  signServingCertificate,
} from '../../../src/tls/pki.js';

const uid = '0f4c2a1e-1111-2222-3333-444455556666';
let dir: string;
let helper: ReturnType<typeof buildHelperServer>;
let helperPort: number;
let caPem: string;
let app: Server;
let appPort: number;
let received: string[];
let client: HelperClient;

beforeAll(async () => {
  const ca = await createCertificateAuthority('test CA', new Date(), 3_600_000);
  caPem = ca.certPem;
  const keys = await generateKeyPair();
  // Spelled long on purpose: the certificate names the address, not one way of writing it.
  const request = await parseRequest(await createServingRequest(keys, 'helper', ['0:0:0:0:0:0:0:1']));
  const cert = await signServingCertificate(
    ca,
    request,
    new Date(Date.now() - 60_000),
    new Date(Date.now() + 3_600_000),
  );
  dir = await mkdtemp(join(tmpdir(), 'helper-v6-'));
  helper = buildHelperServer({
    store: await BlobStore.open(dir, { maxBlobBytes: 1000, quotaBytes: 10_000 }),
    tls: { key: await privateKeyPem(keys.privateKey), cert },
    allowLoopbackTargets: true,
    nodeName: 'n1',
    nodeIP: 'fd00::fe',
    log: createLogger('test', 'error'),
    peerUser: 'peer',
    review: async (a) =>
      a === 'Bearer good'
        ? { ok: true, user: 'controller' }
        : { ok: false, status: 401, message: 'no token' },
  });
  await helper.listen({ host: '::1', port: 0 });
  helperPort = (helper.server.address() as AddressInfo).port;
  received = [];
  app = createServer((req, res) => {
    if (req.method === 'GET') return res.writeHead(200, { 'pull-state-instance': 'p1' }).end('{"count":41}');
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(body);
      res.writeHead(200, { 'pull-state-instance': 'p2' }).end('{}');
    });
  });
  await new Promise<void>((r) => app.listen(0, '::1', r));
  appPort = (app.address() as AddressInfo).port;
  client = new HelperClient({ header: async () => 'Bearer good' }, caPem);
});

afterAll(async () => {
  await client.close();
  await helper.close();
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** The helper as the controller's informer shows it: a Pod with an IPv6 address and its ports. */
function helperPod(): V1Pod {
  return {
    metadata: { name: 'helper-x', namespace: 'ops' },
    spec: {
      nodeName: 'n1',
      containers: [{ name: 'helper', ports: [{ name: 'api', containerPort: helperPort }] }],
    },
    status: { podIP: '::1', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

describe('an IPv6 cluster, on real sockets', () => {
  it('pulls from an app at an IPv6 address into a helper at one, over TLS checked against its IPv6 name', async () => {
    const outcome = await pullState({
      source: httpURL('http', '::1', appPort, '/state'),
      timeoutMs: 2000,
      maxBytes: 1000,
      targets: [{ node: 'n1', url: httpURL('https', '::1', helperPort) }],
      blob: { namespace: 'apps', policy: 'p', policyUID: 'u', pod: 'c-0', podUID: uid, sequence: 1 },
      authorization: { n1: 'Bearer good' },
      peerAgent: new HttpsAgent({ ca: caPem }),
    });
    expect(outcome).toMatchObject({ ok: true, instance: 'p1' });
  });

  it("reaches the helper by the URL built from its Pod, and restores into an app's IPv6 address", async () => {
    const endpoint = helperEndpoint(helperPod())!;
    expect(endpoint.url).toBe(`https://[::1]:${helperPort}`);
    const inventory = await client.inventory(endpoint);
    expect(inventory.blobs.map((b) => [b.podUID, b.sequence])).toEqual([[uid, 1]]);
    const answer = await client.restore(endpoint, 'apps', uid, {
      podIP: '::1',
      port: appPort,
      path: '/state',
      timeoutMs: 2000,
    });
    expect(answer).toMatchObject({ result: 'Succeeded', sequence: 1, instance: 'p2' });
    expect(received).toEqual(['{"count":41}']);
  });

  it('refuses a certificate for another IPv6 address', async () => {
    const other = new HelperClient({ header: async () => 'Bearer good' }, caPem);
    try {
      // The same helper reached by its IPv4 loopback: the certificate names ::1 only.
      await expect(other.inventory({ node: 'n1', url: `https://127.0.0.1:${helperPort}` })).rejects.toThrow();
    } finally {
      await other.close();
    }
  });
});
