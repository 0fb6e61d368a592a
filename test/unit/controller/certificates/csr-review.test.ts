import type { V1CertificateSigningRequest, V1Pod } from '@kubernetes/client-node';
import { HELPER_SIGNER_NAME } from '../../../../src/api/constants.js';
import {
  POD_NAME_EXTRA,
  POD_UID_EXTRA,
  csrPhase,
  reviewHelperRequest,
  type ReviewContext,
} from '../../../../src/controller/certificates/csr-review.js';
import type { ParsedRequest } from '../../../../src/tls/pki.js';

const helperUser = 'system:serviceaccount:ops:pull-state-helper';
const helperPod: V1Pod = {
  metadata: { name: 'helper-a', namespace: 'ops', uid: 'u-1', labels: { role: 'helper' } },
  status: { podIP: '10.1.0.5' },
};

const csr = (over: Partial<V1CertificateSigningRequest['spec']> = {}): V1CertificateSigningRequest => ({
  metadata: { name: 'c1' },
  spec: {
    request: '',
    signerName: HELPER_SIGNER_NAME,
    username: helperUser,
    usages: ['digital signature', 'server auth'],
    extra: { [POD_NAME_EXTRA]: ['helper-a'], [POD_UID_EXTRA]: ['u-1'] },
    ...over,
  },
});

const req = (over: Partial<ParsedRequest> = {}): ParsedRequest =>
  ({
    commonName: 'pull-state-helper n1',
    ips: ['10.1.0.5'],
    otherNames: [],
    signatureValid: true,
    keyAlgorithm: 'ECDSA P-256',
    ...over,
  }) as ParsedRequest;

const ctx = (over: Partial<ReviewContext> = {}): ReviewContext => ({
  helperUser,
  operatorNamespace: 'ops',
  pod: helperPod,
  isHelperPod: (p) => p.metadata?.labels?.role === 'helper',
  ...over,
});

describe('reviewHelperRequest', () => {
  it('approves a helper Pod asking for its own IP with its Pod-bound token', () => {
    expect(reviewHelperRequest(csr(), req(), ctx())).toEqual({ approve: true });
  });

  it("approves an IPv6 helper Pod's own address however the request spells it, and no other", () => {
    const v6 = ctx({ pod: { ...helperPod, status: { podIP: 'fd00:10:244:1::5' } } });
    expect(reviewHelperRequest(csr(), req({ ips: ['FD00:10:244:1:0:0:0:5'] }), v6)).toEqual({
      approve: true,
    });
    expect(reviewHelperRequest(csr(), req({ ips: ['fd00:10:244:1::6'] }), v6)).toMatchObject({
      approve: false,
    });
  });

  it.each<[string, V1CertificateSigningRequest, ParsedRequest, ReviewContext, RegExp]>([
    [
      'another identity',
      csr({ username: 'system:serviceaccount:ops:default' }),
      req(),
      ctx(),
      /only system:serviceaccount:ops:pull-state-helper may/,
    ],
    ['no Pod identity', csr({ extra: {} }), req(), ctx(), /Pod-bound token/],
    ['an unknown Pod', csr(), req(), ctx({ pod: undefined }), /ops\/helper-a \(u-1\) is not known/],
    [
      'a Pod of the same name but another uid',
      csr({ extra: { [POD_NAME_EXTRA]: ['helper-a'], [POD_UID_EXTRA]: ['u-2'] } }),
      req(),
      ctx(),
      /is not known/,
    ],
    ['a Pod that is no helper', csr(), req(), ctx({ isHelperPod: () => false }), /is not a helper Pod/],
    [
      'another IP',
      csr(),
      req({ ips: ['10.1.0.6'] }),
      ctx(),
      /allowed: the Pod's own IP 10.1.0.5, nothing else/,
    ],
    [
      'an extra DNS name',
      csr(),
      req({ otherNames: ['dns:kubernetes.default'] }),
      ctx(),
      /dns:kubernetes.default/,
    ],
    ['two IPs', csr(), req({ ips: ['10.1.0.5', '10.1.0.6'] }), ctx(), /nothing else/],
    [
      'client auth',
      csr({ usages: ['digital signature', 'client auth'] }),
      req(),
      ctx(),
      /allowed: "server auth"/,
    ],
    ['a bad signature', csr(), req({ signatureValid: false }), ctx(), /not signed by its own key/],
    [
      'an RSA key',
      csr(),
      req({ keyAlgorithm: 'RSASSA-PKCS1-v1_5' }),
      ctx(),
      /allowed: ECDSA P-256, ECDSA P-384/,
    ],
  ])('denies %s, saying what is allowed', (_what, c, r, x, message) => {
    const v = reviewHelperRequest(c, r, x);
    expect(v.approve).toBe(false);
    expect(!v.approve && v.message).toMatch(message);
  });
});

describe('csrPhase', () => {
  it('follows conditions and the certificate', () => {
    const base = csr();
    expect(csrPhase(base)).toBe('Pending');
    expect(csrPhase({ ...base, status: { conditions: [{ type: 'Approved', status: 'True' }] } })).toBe(
      'Approved',
    );
    expect(
      csrPhase({
        ...base,
        status: { conditions: [{ type: 'Approved', status: 'True' }], certificate: 'eA==' },
      }),
    ).toBe('Issued');
    expect(csrPhase({ ...base, status: { conditions: [{ type: 'Denied', status: 'True' }] } })).toBe(
      'Finished',
    );
  });
});
