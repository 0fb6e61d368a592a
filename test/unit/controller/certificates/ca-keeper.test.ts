// Who may write the helper CA: the leader replaces one near its end and publishes it; a standby only reads it
// (or creates it where none exists, on a first install). Scripted Secret and ConfigMap calls.
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { createCertificateAuthority, type CertificateAuthority } from '../../../../src/tls/pki.js';
import {
  CA_VALIDITY_MS,
  ensureCertificateAuthority,
  readCertificateAuthority,
} from '../../../../src/controller/certificates/ca-keeper.js';
import { createLogger } from '../../../../src/runtime/logger.js';

const log = createLogger('test', 'error');
const DAY = 86_400_000;

function fakeApi(secret?: CertificateAuthority) {
  const writes: string[] = [];
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let stored: V1Secret | undefined = secret && {
    metadata: { resourceVersion: '1' },
    data: { 'tls.crt': b64(secret.certPem), 'tls.key': b64(secret.keyPem) },
  };
  const notFound = () => Object.assign(new Error('not found'), { code: 404 });
  const core = {
    readNamespacedSecret: async () => {
      if (!stored) throw notFound();
      return stored;
    },
    createNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      writes.push('create secret');
      return (stored = body);
    },
    replaceNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      writes.push('replace secret');
      return (stored = body);
    },
    readNamespacedConfigMap: async () => {
      throw notFound();
    },
    createNamespacedConfigMap: async ({ body }: { body: V1ConfigMap }) => {
      writes.push('publish');
      return body;
    },
    replaceNamespacedConfigMap: async ({ body }: { body: V1ConfigMap }) => {
      writes.push('publish');
      return body;
    },
  };
  const kc = { makeApiClient: () => core };
  return { kc, writes };
}

describe('the helper CA', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  let ending: CertificateAuthority;
  beforeAll(async () => {
    // Made ten years less 10 days before now: 10 days left, inside the 30 days before its end.
    ending = await createCertificateAuthority(
      'old',
      new Date(now.getTime() - CA_VALIDITY_MS + 10 * DAY),
      CA_VALIDITY_MS,
    );
  });

  it('a standby reads a CA near its end as it is, and writes nothing', async () => {
    const { kc, writes } = fakeApi(ending);
    const ca = await readCertificateAuthority(kc, 'ns', log, now);
    expect(ca.certPem).toBe(ending.certPem);
    expect(writes).toEqual([]);
  });

  it('the leader replaces a CA near its end and publishes the new one', async () => {
    const { kc, writes } = fakeApi(ending);
    const ca = await ensureCertificateAuthority(kc, 'ns', log, now);
    expect(ca.certPem).not.toBe(ending.certPem);
    expect(writes).toEqual(['replace secret', 'publish']);
  });

  it('a standby of a first install creates the CA, and does not publish it', async () => {
    const { kc, writes } = fakeApi();
    await readCertificateAuthority(kc, 'ns', log, now);
    expect(writes).toEqual(['create secret']);
  });
});
