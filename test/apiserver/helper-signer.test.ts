// The helpers' serving certificates through a real API server: the controller's signer in this process
// approves, denies and signs CertificateSigningRequests; the requester is the helper's own code
// (ServingCertificate) with a Pod-bound ServiceAccount token the API server issued, as a helper Pod has.
import { X509Certificate } from 'node:crypto';
import {
  CertificatesV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1CertificateSigningRequest,
} from '@kubernetes/client-node';
import { HELPER_SIGNER_NAME } from '../../src/api/index.js';
import { ServingCertificate } from '../../src/helper/serving-certificate.js';
import { createServingRequest, generateKeyPair } from '../../src/tls/pki.js';
import {
  certificates,
  condition,
  core,
  eventually,
  helperLabels,
  kc,
  log,
  namespace,
  readyNode,
  runningPod,
  startController,
  type Controller,
} from './env.js';

const HELPER_SA = 'pull-state-helper';
const HELPER_IP = '10.250.2.5';
let controller: Controller;
let operatorNs: string;
/** Clients with the helper Pod's own bound token. */
let helperKc: KubeConfig;

async function csrRequest(ips: string[]): Promise<string> {
  const pem = await createServingRequest(await generateKeyPair(), 'pull-state-helper test', ips);
  return Buffer.from(pem).toString('base64');
}

async function decided(name: string): Promise<V1CertificateSigningRequest> {
  return eventually(
    `CSR ${name} decided`,
    async () => {
      const csr = await certificates.readCertificateSigningRequest({ name });
      return csr.status?.conditions?.some((c) => c.type === 'Denied' || c.type === 'Approved')
        ? csr
        : undefined;
    },
    20_000,
  );
}

/** A KubeConfig for the tier's API server that authenticates with `token`. */
function withToken(token: string): KubeConfig {
  const cluster = kc.getCurrentCluster()!;
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'helper', token }],
    contexts: [{ name: 'helper', cluster: cluster.name, user: 'helper' }],
    currentContext: 'helper',
  });
  return out;
}

beforeAll(async () => {
  operatorNs = await namespace('operator');
  controller = await startController(operatorNs);
  await readyNode('signer-node');
  await core.createNamespacedServiceAccount({
    namespace: operatorNs,
    body: { metadata: { name: HELPER_SA } },
  });
  // What the helpers' RBAC grants them for their certificates (manifests/).
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: `${operatorNs}-helper-csr` },
      rules: [
        {
          apiGroups: ['certificates.k8s.io'],
          resources: ['certificatesigningrequests'],
          verbs: ['create', 'get', 'list', 'watch'],
        },
      ],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `${operatorNs}-helper-csr` },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: `${operatorNs}-helper-csr`,
      },
      subjects: [{ kind: 'ServiceAccount', name: HELPER_SA, namespace: operatorNs }],
    },
  });
  const pod = await runningPod(operatorNs, 'helper-signer-node', {
    node: 'signer-node',
    ip: HELPER_IP,
    labels: helperLabels,
    serviceAccount: HELPER_SA,
  });
  // The projected token a kubelet would mount: bound to the helper Pod (the API server adds its name and
  // uid to the requester's user info, which the signer reviews).
  const token = await core.createNamespacedServiceAccountToken({
    namespace: operatorNs,
    name: HELPER_SA,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! },
      },
    },
  });
  helperKc = withToken(token.status!.token);
});

afterAll(async () => {
  await controller?.stop();
});

test('a request for the helper signer from anyone but a helper is denied with a reason', async () => {
  const created = await certificates.createCertificateSigningRequest({
    body: {
      metadata: { generateName: 'not-a-helper-' },
      spec: {
        request: await csrRequest([HELPER_IP]),
        signerName: HELPER_SIGNER_NAME,
        usages: ['digital signature', 'server auth'],
      },
    },
  });
  const csr = await decided(created.metadata!.name!);
  expect(condition(csr.status!.conditions, 'Approved')).toBeUndefined();
  expect(condition(csr.status!.conditions, 'Denied')).toMatchObject({
    status: 'True',
    reason: 'NotAHelper',
    message: `requested by admin; only system:serviceaccount:${operatorNs}:${HELPER_SA} may`,
  });
  expect(csr.status!.certificate).toBeUndefined();
});

test("the helper's own request is approved and signed: a certificate for exactly its Pod IP", async () => {
  const serving = new ServingCertificate({
    kc: helperKc,
    nodeName: 'signer-node',
    podIP: HELPER_IP,
    log,
    onRenewed: () => undefined,
    pollMs: 100,
    requestTimeoutMs: 20_000,
  });
  try {
    const got = await serving.obtain();
    const cert = new X509Certificate(got.certPem);
    expect(cert.subjectAltName).toBe(`IP Address:${HELPER_IP}`);
    expect(cert.verify(new X509Certificate(controller.ca.certPem).publicKey)).toBe(true);
    expect(cert.checkIP(HELPER_IP)).toBe(HELPER_IP);
    const mine = (await certificates.listCertificateSigningRequest()).items.filter((c) =>
      c.metadata!.name!.startsWith('pull-state-helper-signer-node-'),
    );
    expect(mine).toHaveLength(1);
    expect(mine[0]!.spec.username).toBe(`system:serviceaccount:${operatorNs}:${HELPER_SA}`);
    expect(condition(mine[0]!.status!.conditions, 'Approved')).toMatchObject({
      status: 'True',
      reason: 'HelperServingCertificate',
    });
  } finally {
    serving.stop();
  }
});

test('the helper asking for an address that is not its Pod IP is denied', async () => {
  const helperCerts = helperKc.makeApiClient(CertificatesV1Api);
  const created = await helperCerts.createCertificateSigningRequest({
    body: {
      metadata: { generateName: 'other-ip-' },
      spec: {
        request: await csrRequest(['10.250.2.99']),
        signerName: HELPER_SIGNER_NAME,
        usages: ['digital signature', 'server auth'],
      },
    },
  });
  const csr = await decided(created.metadata!.name!);
  expect(condition(csr.status!.conditions, 'Denied')).toMatchObject({
    reason: 'BadNames',
    message: `names ["10.250.2.99"]; allowed: the Pod's own IP ${HELPER_IP}, nothing else`,
  });
  expect(csr.status!.certificate).toBeUndefined();
});

test('a helper ServiceAccount token not bound to a Pod is denied: no Pod identity', async () => {
  const unbound = await core.createNamespacedServiceAccountToken({
    namespace: operatorNs,
    name: HELPER_SA,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const api = withToken(unbound.status!.token).makeApiClient(CertificatesV1Api);
  const created = await api.createCertificateSigningRequest({
    body: {
      metadata: { generateName: 'unbound-' },
      spec: {
        request: await csrRequest([HELPER_IP]),
        signerName: HELPER_SIGNER_NAME,
        usages: ['digital signature', 'server auth'],
      },
    },
  });
  const csr = await decided(created.metadata!.name!);
  expect(condition(csr.status!.conditions, 'Denied')).toMatchObject({ reason: 'NoPodIdentity' });
});
