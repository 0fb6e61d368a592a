import { CoreV1Api } from '@kubernetes/client-node';
import {
  CA_CONFIGMAP_KEY,
  CA_CONFIGMAP_NAME,
  CA_SECRET_NAME,
  LABELS,
  MANAGED_BY_VALUE,
} from '../../api/constants.js';
import { statusCode } from '../../kube/api-error.js';
import type { Logger } from '../../runtime/logger.js';
import { certificateInfo, createCertificateAuthority, type CertificateAuthority } from '../../tls/pki.js';

/** The CA lives ten years: it signs only short-lived helper certificates, which rotate on their own. */
export const CA_VALIDITY_MS = 10 * 365 * 86_400_000;
/** A CA this close to its end is replaced (its helpers renew their certificates from the new one). */
const CA_RENEW_BEFORE_MS = 30 * 86_400_000;

const labels = { [LABELS.name]: MANAGED_BY_VALUE };

/** The Secret and ConfigMap calls the CA keeper makes. */
export type CaApi = Pick<
  CoreV1Api,
  | 'readNamespacedSecret'
  | 'createNamespacedSecret'
  | 'replaceNamespacedSecret'
  | 'readNamespacedConfigMap'
  | 'createNamespacedConfigMap'
  | 'replaceNamespacedConfigMap'
>;

/** Where the CA keeper gets its API calls: a KubeConfig, or scripted calls in a test. */
export interface CaApiClients {
  makeApiClient(api: typeof CoreV1Api): CaApi;
}

/**
 * The operator's CA, kept in one Secret of its namespace that only the controller may read (RBAC by
 * resourceName), made on first use. Its certificate is published in a ConfigMap for everyone who calls a
 * helper. Every replica that becomes leader runs this, so a lost Secret or ConfigMap is made again.
 */
export async function ensureCertificateAuthority(
  kc: CaApiClients,
  namespace: string,
  log: Logger,
  now = new Date(),
): Promise<CertificateAuthority> {
  const core = kc.makeApiClient(CoreV1Api);
  const ca = await readOrCreateCa(core, namespace, log, now, true);
  await publishCertificate(core, namespace, ca.certPem, log);
  return ca;
}

/**
 * The CA as a standby may know it: read, or created only where none exists yet (a first install, where both
 * replicas start at once; the slower one uses the faster one's). A standby never replaces one (near its end,
 * or unreadable) nor publishes it: the leader signs with the CA it read, and a standby that swapped it would
 * make every certificate the leader signs from then on unverifiable. The leader does both when it takes over.
 */
export async function readCertificateAuthority(
  kc: CaApiClients,
  namespace: string,
  log: Logger,
  now = new Date(),
): Promise<CertificateAuthority> {
  return readOrCreateCa(kc.makeApiClient(CoreV1Api), namespace, log, now, false);
}

function decode(data: Record<string, string> | undefined, key: string): string | undefined {
  const v = data?.[key];
  return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

async function readOrCreateCa(
  core: CaApi,
  namespace: string,
  log: Logger,
  now: Date,
  mayReplace: boolean,
): Promise<CertificateAuthority> {
  for (let attempt = 0; attempt < 3; attempt++) {
    let current: { resourceVersion?: string; ca?: CertificateAuthority } | undefined;
    try {
      const s = await core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace });
      const certPem = decode(s.data, 'tls.crt');
      const keyPem = decode(s.data, 'tls.key');
      current = {
        ...(s.metadata?.resourceVersion ? { resourceVersion: s.metadata.resourceVersion } : {}),
        ...(certPem && keyPem ? { ca: { certPem, keyPem } } : {}),
      };
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    if (current?.ca && usable(current.ca, now)) return current.ca;
    if (current && !mayReplace) {
      if (current.ca) return current.ca;
      throw new Error(`the Secret ${namespace}/${CA_SECRET_NAME} holds no CA; the leader makes it again`);
    }
    const ca = await createCertificateAuthority('pull-state-operator helper CA', now, CA_VALIDITY_MS);
    const body = {
      metadata: {
        name: CA_SECRET_NAME,
        namespace,
        labels,
        ...(current?.resourceVersion ? { resourceVersion: current.resourceVersion } : {}),
      },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from(ca.certPem).toString('base64'),
        'tls.key': Buffer.from(ca.keyPem).toString('base64'),
      },
    };
    try {
      if (current) await core.replaceNamespacedSecret({ name: CA_SECRET_NAME, namespace, body });
      else await core.createNamespacedSecret({ namespace, body });
      log.info(current ? 'helper CA replaced' : 'helper CA created', {
        secret: `${namespace}/${CA_SECRET_NAME}`,
        notAfter: certificateInfo(ca.certPem).notAfter.toISOString(),
      });
      return ca;
    } catch (err) {
      // Another replica wrote it first: use theirs.
      if (statusCode(err) !== 409) throw err;
    }
  }
  throw new Error(`could not create or read the Secret ${namespace}/${CA_SECRET_NAME}`);
}

function usable(ca: CertificateAuthority, now: Date): boolean {
  try {
    return certificateInfo(ca.certPem).notAfter.getTime() - now.getTime() > CA_RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

async function publishCertificate(core: CaApi, namespace: string, certPem: string, log: Logger) {
  const body = {
    metadata: { name: CA_CONFIGMAP_NAME, namespace, labels },
    data: { [CA_CONFIGMAP_KEY]: certPem },
  };
  try {
    const cm = await core.readNamespacedConfigMap({ name: CA_CONFIGMAP_NAME, namespace });
    if (cm.data?.[CA_CONFIGMAP_KEY] === certPem) return;
    await core.replaceNamespacedConfigMap({ name: CA_CONFIGMAP_NAME, namespace, body });
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
    await core.createNamespacedConfigMap({ namespace, body });
  }
  log.info('helper CA certificate published', { configMap: `${namespace}/${CA_CONFIGMAP_NAME}` });
}
