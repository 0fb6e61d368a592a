import type { V1CertificateSigningRequest, V1Pod } from '@kubernetes/client-node';
import { HELPER_SIGNER_NAME } from '../../api/constants.js';
import type { ParsedRequest } from '../../tls/pki.js';
import { sameIP } from '../../runtime/ip-address.js';

/** What the API server records of a requester with a bound ServiceAccount token (its Pod). */
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';

const ALLOWED_USAGES = new Set(['digital signature', 'key encipherment', 'server auth']);
const ALLOWED_KEYS = new Set(['ECDSA P-256', 'ECDSA P-384']);

export type ReviewVerdict = { approve: true } | { approve: false; reason: string; message: string };

export interface ReviewContext {
  /** `system:serviceaccount:<namespace>:<helper ServiceAccount>` */
  helperUser: string;
  operatorNamespace: string;
  /** The Pod named in the request's user extra, from the informer cache. */
  pod: V1Pod | undefined;
  isHelperPod: (pod: V1Pod) => boolean;
}

export function csrPhase(csr: V1CertificateSigningRequest): 'Pending' | 'Approved' | 'Issued' | 'Finished' {
  const conds = csr.status?.conditions ?? [];
  if (conds.some((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True'))
    return 'Finished';
  if (csr.status?.certificate) return 'Issued';
  if (conds.some((c) => c.type === 'Approved' && c.status === 'True')) return 'Approved';
  return 'Pending';
}

export function isHelperRequest(csr: V1CertificateSigningRequest): boolean {
  return csr.spec?.signerName === HELPER_SIGNER_NAME;
}

/**
 * Whether to sign a helper's serving certificate request (pure): only a helper Pod of the operator's own
 * namespace, authenticated with its Pod-bound token, for exactly its own Pod IP, with a key of the kind helpers
 * make. Anything else is denied with a message that says what is allowed.
 */
export function reviewHelperRequest(
  csr: V1CertificateSigningRequest,
  req: ParsedRequest,
  ctx: ReviewContext,
): ReviewVerdict {
  const deny = (reason: string, message: string): ReviewVerdict => ({ approve: false, reason, message });
  const spec = csr.spec;
  if (spec.username !== ctx.helperUser)
    return deny('NotAHelper', `requested by ${spec.username ?? '(nobody)'}; only ${ctx.helperUser} may`);
  const podName = spec.extra?.[POD_NAME_EXTRA]?.[0];
  const podUID = spec.extra?.[POD_UID_EXTRA]?.[0];
  if (!podName || !podUID)
    return deny('NoPodIdentity', 'the requester is not a Pod: a helper must use its Pod-bound token');
  const pod = ctx.pod;
  if (!pod || pod.metadata?.uid !== podUID || pod.metadata?.namespace !== ctx.operatorNamespace)
    return deny('UnknownPod', `Pod ${ctx.operatorNamespace}/${podName} (${podUID}) is not known`);
  if (!ctx.isHelperPod(pod)) return deny('NotAHelper', `Pod ${podName} is not a helper Pod`);
  const podIP = pod.status?.podIP;
  if (!podIP) return deny('NoPodIP', `Pod ${podName} has no IP yet`);
  const usages = spec.usages ?? [];
  const bad = usages.filter((u) => !ALLOWED_USAGES.has(u));
  if (!usages.includes('server auth') || bad.length > 0)
    return deny(
      'BadUsages',
      `usages ${JSON.stringify(usages)}; allowed: "server auth" with "digital signature" and "key encipherment"`,
    );
  if (!req.signatureValid) return deny('BadSignature', 'the request is not signed by its own key');
  if (!ALLOWED_KEYS.has(req.keyAlgorithm))
    return deny('BadKey', `key ${req.keyAlgorithm}; allowed: ${[...ALLOWED_KEYS].join(', ')}`);
  if (req.otherNames.length > 0 || req.ips.length !== 1 || !sameIP(req.ips[0], podIP))
    return deny(
      'BadNames',
      `names ${JSON.stringify([...req.ips, ...req.otherNames])}; allowed: the Pod's own IP ${podIP}, nothing else`,
    );
  return { approve: true };
}
