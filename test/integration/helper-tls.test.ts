// The helper API over TLS on real nodes: certificates issued in the cluster through the CSR API, verified by
// every client, rotated before they expire without a failed checkpoint; plain HTTP to the API port refused.
import { connect, type PeerCertificate } from 'node:tls';
import { request as httpRequest } from 'node:http';
import type { V1Pod } from '@kubernetes/client-node';
import { CertificatesV1Api } from '@kubernetes/client-node';
import { createFixtures } from '../../harness/fixture-app.js';
import { helperCa, helperFetch } from '../../harness/helper-https.js';
import { HELPER_SIGNER_NAME, OPERATOR_NAMESPACE } from '../../src/api/index.js';
import { cluster, core, createNamespace, eventually, kc } from './cluster.js';
import {
  controllerHelperToken,
  helperPods,
  helperRolloutDone,
  installOperator,
  kubectl,
  leader,
  leaderLog,
  policy,
  protectedStateApp,
  scaleControllers,
} from './operator.js';

const ns = 'it-helper-tls';
const certificates = kc.makeApiClient(CertificatesV1Api);

/** The certificate a helper presents on its API port, and whether it verifies against `ca`. */
function peerCertificate(
  ip: string,
  ca?: string,
): Promise<{ cert: PeerCertificate; authorized: boolean; error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: ip, port: 9500, ...(ca ? { ca } : {}), rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate(true);
      resolve({
        cert,
        authorized: socket.authorized,
        ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}),
      });
      socket.end();
    });
    socket.once('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
  });
}

/** A plain-HTTP request to the API port: what it gets back, if anything. */
function plainHttp(ip: string): Promise<string> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: ip, port: 9500, path: '/v1/blobs', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += String(c)));
      res.on('end', () => resolve(`HTTP ${res.statusCode}: ${body}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`error: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.end();
  });
}

async function failedPulls(ip: string): Promise<number> {
  const text = await (await fetch(`http://${ip}:9501/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(
    /^pullstate_helper_pulls_total\{namespace="[^"]*",result="([^"]+)"\} (\d+)/gm,
  ))
    if (m[1] !== 'Succeeded') n += Number(m[2]);
  return n;
}

async function restartHelpers(): Promise<V1Pod[]> {
  const before = new Set((await helperPods()).map((p) => p.metadata!.uid));
  await kubectl('rollout', 'restart', '-n', OPERATOR_NAMESPACE, 'daemonset/pull-state-helper');
  await helperRolloutDone();
  const nodes = (await core.listNode()).items.length;
  return eventually(
    'every helper replaced and Ready',
    async () => {
      const now = await helperPods();
      return now.length === nodes && now.every((p) => !before.has(p.metadata!.uid)) ? now : undefined;
    },
    120_000,
  );
}

async function setCertSeconds(seconds: number | undefined): Promise<void> {
  const env = seconds === undefined ? 'HELPER_CERT_SECONDS-' : `HELPER_CERT_SECONDS=${seconds}`;
  await kubectl('set', 'env', '-n', OPERATOR_NAMESPACE, 'deployment/pull-state-controller', env);
  await kubectl(
    'rollout',
    'status',
    '-n',
    OPERATOR_NAMESPACE,
    'deployment/pull-state-controller',
    '--timeout=180s',
  );
  // The new leader is one of the new replicas: wait until it leads (the old one released the Lease).
  await eventually(
    'a new leader',
    async () => {
      const names = (
        await core.listNamespacedPod({
          namespace: OPERATOR_NAMESPACE,
          labelSelector: 'app.kubernetes.io/component=controller',
        })
      ).items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .map((p) => p.metadata!.name!);
      const l = await leader();
      return l && names.includes(l) ? l : undefined;
    },
    90_000,
  );
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await createFixtures(core, ns);
});

/** Asks, as the test's admin identity, for a helper serving certificate for `ip`; returns the CSR's name. */
async function requestHelperCertificate(cn: string, ip: string, generateName: string): Promise<string> {
  const { createServingRequest, generateKeyPair } = await import('../../src/tls/pki.js');
  const pem = await createServingRequest(await generateKeyPair(), cn, [ip]);
  const created = await certificates.createCertificateSigningRequest({
    body: {
      metadata: { generateName },
      spec: {
        request: Buffer.from(pem).toString('base64'),
        signerName: HELPER_SIGNER_NAME,
        usages: ['digital signature', 'server auth'],
      },
    },
  });
  return created.metadata!.name!;
}

describe('helper API over TLS', () => {
  it('serves a certificate from the operator CA for its own Pod IP, issued through a CSR', async () => {
    const ca = await helperCa(kc);
    for (const h of await helperPods()) {
      const ip = h.status!.podIP!;
      const { cert, authorized, error } = await peerCertificate(ip, ca);
      expect({ ip, authorized, error }).toEqual({ ip, authorized: true });
      expect(cert.subjectaltname).toBe(`IP Address:${ip}`);
      expect(cert.issuer.CN).toBe('pull-state-operator helper CA');
      // A client that trusts only the usual public CAs refuses it.
      expect((await peerCertificate(ip)).authorized).toBe(false);
    }
    const csrs = (await certificates.listCertificateSigningRequest()).items.filter(
      (c) => c.spec.signerName === HELPER_SIGNER_NAME && c.status?.certificate,
    );
    expect(csrs.length).toBeGreaterThanOrEqual((await helperPods()).length);
    for (const c of csrs)
      expect(c.spec.username).toBe(`system:serviceaccount:${OPERATOR_NAMESPACE}:pull-state-helper`);
  });

  it('refuses plain HTTP on the API port, and keeps /healthz and /metrics plain on 9501', async () => {
    const [h] = await helperPods();
    const node = h!.spec!.nodeName!;
    const ip = h!.status!.podIP!;
    const answer = await plainHttp(ip);
    expect(answer).not.toMatch(/blobs/);
    expect(answer).toMatch(/^(error: (ECONNRESET|EPIPE|HPE_\w+)|HTTP 400)/);
    expect(await (await fetch(`http://${ip}:9501/healthz`)).text()).toBe('ok');
    expect(await (await fetch(`http://${ip}:9501/metrics`)).text()).toMatch(/pullstate_helper_/);
    // The API itself over HTTPS with the helper-audience token.
    const res = await helperFetch(kc, `https://${ip}:9500/v1/blobs`, {
      headers: { authorization: `Bearer ${await controllerHelperToken(node)}` },
    });
    expect(res.status).toBe(200);
  });

  it('denies a certificate request that is not from a helper Pod, saying why', async () => {
    // The test's admin identity asks for a helper certificate: the signer must deny it.
    const name = await requestHelperCertificate('impostor', '10.244.1.1', 'impostor-');
    try {
      const denied = await eventually('the request decided', async () => {
        const c = await certificates.readCertificateSigningRequest({ name });
        return c.status?.conditions?.find((x) => x.type === 'Denied' || x.type === 'Approved');
      });
      expect(denied).toMatchObject({ type: 'Denied', reason: 'NotAHelper' });
      expect(denied.message).toMatch(
        /only system:serviceaccount:pull-state-operator-system:pull-state-helper may/,
      );
      expect((await certificates.readCertificateSigningRequest({ name })).status?.certificate).toBeFalsy();
    } finally {
      await certificates.deleteCertificateSigningRequest({ name }).catch(() => undefined);
    }
  });

  it('does not sign a request an admin approved before the signer saw it when it fails the review', async () => {
    // With no controller running, the admin approves a request naming a foreign IP: the signer must review
    // it anyway when it starts, and leave it unsigned with a Failed condition and a Warning Event.
    await scaleControllers(0);
    const name = await requestHelperCertificate('foreign', '10.244.9.9', 'pre-approved-');
    try {
      const fresh = await certificates.readCertificateSigningRequest({ name });
      fresh.status = {
        conditions: [
          {
            type: 'Approved',
            status: 'True',
            reason: 'AdminApproved',
            message: 'approved by hand in a test',
          },
        ],
      };
      await certificates.replaceCertificateSigningRequestApproval({ name, body: fresh });
      await scaleControllers(2);
      const failed = await eventually('the approved request refused by the signer', async () => {
        const c = await certificates.readCertificateSigningRequest({ name });
        return c.status?.conditions?.find((x) => x.type === 'Failed');
      });
      expect(failed).toMatchObject({ status: 'True', reason: 'NotAHelper' });
      expect(failed.message).toMatch(/^approved, but not signed: /);
      expect((await certificates.readCertificateSigningRequest({ name })).status?.certificate).toBeFalsy();
      const events = await eventually('a Warning Event on the request', async () => {
        const list = await core.listNamespacedEvent({
          namespace: 'default',
          fieldSelector: `involvedObject.name=${name},type=Warning`,
        });
        return list.items.length > 0 ? list.items : undefined;
      });
      expect(events[0]!.reason).toBe('NotAHelper');
    } finally {
      await scaleControllers(2);
      await certificates.deleteCertificateSigningRequest({ name }).catch(() => undefined);
    }
  });

  it('a helper restarted while no controller leads serves at once with the certificate it kept', async () => {
    const ca = await helperCa(kc);
    const [h] = await helperPods();
    const ip = h!.status!.podIP!;
    const before = await peerCertificate(ip, ca);
    try {
      await scaleControllers(0);
      await cluster('fault', 'crash', `${OPERATOR_NAMESPACE}/${h!.metadata!.name}`);
      await eventually(
        'the helper restarted and Ready without a controller',
        async () => {
          const p = await core.readNamespacedPod({ name: h!.metadata!.name!, namespace: OPERATOR_NAMESPACE });
          const c = p.status?.containerStatuses?.[0];
          return (c?.restartCount ?? 0) > (h!.status!.containerStatuses?.[0]?.restartCount ?? 0) && c?.ready
            ? true
            : undefined;
        },
        60_000,
      );
      const after = await peerCertificate(ip, ca);
      expect(after.authorized).toBe(true);
      expect(after.cert.serialNumber).toBe(before.cert.serialNumber);
    } finally {
      await scaleControllers(2);
    }
  });

  it('rotates certificates past their rotation point without a failed checkpoint', async () => {
    await setCertSeconds(30);
    try {
      const helpers = await restartHelpers();
      await protectedStateApp(ns, 'app', 2);
      await eventually(
        'both Pods checkpointed',
        async () => (await policy(ns, 'app')).status?.checkpointSummary?.current === 2 || undefined,
        90_000,
      );
      const ca = await helperCa(kc);
      const ips = helpers.map((h) => h.status!.podIP!);
      const serials = async () =>
        Promise.all(ips.map(async (ip) => (await peerCertificate(ip, ca)).cert.serialNumber));
      const failedBefore = await Promise.all(ips.map(failedPulls));
      const first = await serials();
      // The Pods of this run only: a policy re-created under the same name inherits older runs' orphans.
      const sequenceOf = async () =>
        Math.min(
          ...((await policy(ns, 'app')).status?.checkpoints ?? [])
            .filter((c) => !c.orphaned)
            .map((c) => c.sequence),
        );
      const seqBefore = await sequenceOf();
      // A 30 s certificate is renewed at 20 s: within 45 s every helper serves a new one, at least once.
      await new Promise((r) => setTimeout(r, 45_000));
      const second = await serials();
      for (let i = 0; i < ips.length; i++) expect(second[i]).not.toBe(first[i]);
      for (const ip of ips) {
        const { cert, authorized } = await peerCertificate(ip, ca);
        expect(authorized).toBe(true);
        const lifetime = Date.parse(cert.valid_to) - Date.now();
        expect(lifetime).toBeLessThanOrEqual(31_000);
      }
      expect(await Promise.all(ips.map(failedPulls))).toEqual(failedBefore);
      // Checkpoints went on the whole time (about one per second per Pod).
      expect((await sequenceOf()) - seqBefore).toBeGreaterThan(30_000);
      const p = await policy(ns, 'app');
      expect(p.status?.checkpointSummary?.failing ?? 0).toBe(0);
      expect(p.status?.conditions?.find((c) => c.type === 'Degraded')?.status).toBe('False');
      // Every issue and renewal signed once: a request queued again by its own approval was signed twice,
      // and the API refused the second certificate (422) with a warning per helper.
      expect(await leaderLog('may not modify existing certificate content')).toBe('');
    } finally {
      await setCertSeconds(undefined);
      await restartHelpers();
    }
    // Two controller rollouts and two helper rollouts, each a few seconds to a minute on a loaded machine.
  }, 480_000);
});

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});
