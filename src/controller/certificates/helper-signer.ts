import {
  CertificatesV1Api,
  type KubeConfig,
  type V1CertificateSigningRequest,
  type V1CertificateSigningRequestCondition,
  type V1Pod,
} from '@kubernetes/client-node';
import { statusCode } from '../../kube/api-error.js';
import type { Logger } from '../../runtime/logger.js';
import { errorMessage } from '../../runtime/logger.js';
import { parseRequest, signServingCertificate, type CertificateAuthority } from '../../tls/pki.js';
import type { EventRecorder } from '../kube/events.js';
import { Informer } from '../kube/informer.js';
import { WorkQueue } from '../kube/workqueue.js';
import { POD_NAME_EXTRA, csrPhase, isHelperRequest, reviewHelperRequest } from './csr-review.js';
import { systemClock, type Clock } from '../kube/clock.js';

export interface HelperSignerOptions {
  kc: KubeConfig;
  ca: CertificateAuthority;
  operatorNamespace: string;
  helperUser: string;
  pod: (namespace: string, name: string) => V1Pod | undefined;
  isHelperPod: (pod: V1Pod) => boolean;
  /** Longest validity of a certificate; a request's `expirationSeconds` may ask for less. */
  validityMs: number;
  log: Logger;
  /** Warning Events on requests approved by someone else that fail the review (left unsigned). */
  events?: Pick<EventRecorder, 'record'>;
  clock?: Clock;
  /** The leadership term: a signing in progress is work in flight until it ends. */
  signal?: AbortSignal;
}

/** Backdating absorbs clock skew between nodes, as kube-controller-manager's signer does. */
const BACKDATE_MS = 5 * 60_000;

/**
 * The signer of `pullstate.hitachienergy.com/helper-serving`: approves the helpers' serving certificate
 * requests that pass the review, denies the others, and signs the approved ones with the operator's CA.
 * Runs in the leader only; each request is one work-queue key, retried with backoff.
 */
export class HelperCertificateSigner {
  private readonly api: CertificatesV1Api;
  private readonly csrs: Informer<V1CertificateSigningRequest>;
  private readonly queue: WorkQueue;
  private readonly clock: Clock;

  constructor(private readonly o: HelperSignerOptions) {
    this.api = o.kc.makeApiClient(CertificatesV1Api);
    this.clock = o.clock ?? systemClock;
    this.csrs = new Informer<V1CertificateSigningRequest>({
      name: 'certificatesigningrequests',
      kc: o.kc,
      path: '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      list: () => this.api.listCertificateSigningRequest(),
      log: o.log,
    });
    this.queue = new WorkQueue((name) => this.handle(name), {
      concurrency: 2,
      paused: true,
      signal: o.signal,
      clock: o.clock,
      onError: (key, err, retryInMs) =>
        o.log.warn('signing a helper certificate failed', { csr: key, error: errorMessage(err), retryInMs }),
    });
    this.csrs.onChange((csr, kind) => {
      if (
        kind !== 'delete' &&
        isHelperRequest(csr) &&
        csrPhase(csr) !== 'Issued' &&
        csrPhase(csr) !== 'Finished'
      )
        this.queue.add(csr.metadata!.name!);
    });
  }

  async start(): Promise<void> {
    await this.csrs.start();
    this.queue.resume();
  }

  async stop(): Promise<void> {
    this.queue.stop();
    await this.csrs.stop();
  }

  /** A helper Pod became known: requests that waited for it are looked at again. */
  podChanged(): void {
    for (const csr of this.csrs.list())
      if (isHelperRequest(csr) && csrPhase(csr) === 'Pending') this.queue.add(csr.metadata!.name!);
  }

  private async handle(name: string): Promise<void> {
    const csr = this.csrs.get(name);
    if (!csr || !isHelperRequest(csr)) return;
    const phase = csrPhase(csr);
    if (phase === 'Issued' || phase === 'Finished') return;
    const req = await parseRequest(Buffer.from(csr.spec.request, 'base64').toString('utf8')).catch(
      (err: unknown) => err as Error,
    );
    if (req instanceof Error)
      return this.decide(csr, 'Denied', 'Malformed', `not a PKCS#10 request: ${req.message}`);
    // Reviewed whoever approved it: an approval by someone else (an admin, another approver) is no reason to
    // put the operator's CA behind a name the request has no right to.
    const podName = csr.spec.extra?.[POD_NAME_EXTRA]?.[0];
    const pod = podName ? this.o.pod(this.o.operatorNamespace, podName) : undefined;
    const verdict = reviewHelperRequest(csr, req, {
      helperUser: this.o.helperUser,
      operatorNamespace: this.o.operatorNamespace,
      pod,
      isHelperPod: this.o.isHelperPod,
    });
    // The Pod may not be in the cache yet (a helper asks within a second of starting): wait for it.
    if (
      !verdict.approve &&
      verdict.reason === 'UnknownPod' &&
      csrAgeMs(csr, new Date(this.clock.now())) < 60_000
    )
      throw new Error(`waiting for the requesting Pod ${podName ?? ''} to appear`);
    if (!verdict.approve) {
      this.o.log.warn('helper certificate request refused', {
        csr: name,
        phase,
        reason: verdict.reason,
        message: verdict.message,
      });
      if (phase === 'Pending') return this.decide(csr, 'Denied', verdict.reason, verdict.message);
      return this.refuseApproved(csr, verdict.reason, verdict.message);
    }
    if (phase === 'Pending')
      await this.decide(csr, 'Approved', 'HelperServingCertificate', 'a helper Pod asks for its own IP');
    const now = new Date(this.clock.now());
    const requested = csr.spec.expirationSeconds ? csr.spec.expirationSeconds * 1000 : Infinity;
    const notAfter = new Date(now.getTime() + Math.min(this.o.validityMs, requested));
    // From the API, not the cache: an event of the approval queued this request again while it was being
    // signed, and the cache may not show the certificate yet (the API refuses to replace one: 422).
    const fresh = await this.api.readCertificateSigningRequest({ name });
    // Signed already, or another request of the same name now (deleted and created again meanwhile).
    if (fresh.status?.certificate || fresh.metadata?.uid !== csr.metadata?.uid) return;
    const pem = await signServingCertificate(this.o.ca, req, new Date(now.getTime() - BACKDATE_MS), notAfter);
    fresh.status = { ...fresh.status, certificate: Buffer.from(pem).toString('base64') };
    await this.api.replaceCertificateSigningRequestStatus({ name, body: fresh });
    this.o.log.info('helper certificate issued', {
      csr: name,
      pod: csr.spec.extra?.[POD_NAME_EXTRA]?.[0],
      ips: req.ips,
      notAfter: notAfter.toISOString(),
    });
  }

  /**
   * An approved request that fails the review is left unsigned with a `Failed` condition (the signer's way
   * to end a request it will not issue) and a Warning Event, so it is not looked at again.
   */
  private async refuseApproved(csr: V1CertificateSigningRequest, reason: string, why: string): Promise<void> {
    const name = csr.metadata!.name!;
    const message = `approved, but not signed: ${why}`;
    const fresh = await this.api.readCertificateSigningRequest({ name });
    const condition: V1CertificateSigningRequestCondition = {
      type: 'Failed',
      status: 'True',
      reason,
      message,
      lastUpdateTime: new Date(this.clock.now()),
    };
    fresh.status = { ...fresh.status, conditions: [...(fresh.status?.conditions ?? []), condition] };
    await this.api.replaceCertificateSigningRequestStatus({ name, body: fresh });
    this.o.events?.record(
      {
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        name,
        uid: csr.metadata?.uid,
      },
      'Warning',
      reason,
      message,
    );
  }

  private async decide(
    csr: V1CertificateSigningRequest,
    type: 'Approved' | 'Denied',
    reason: string,
    message: string,
  ): Promise<void> {
    const name = csr.metadata!.name!;
    const fresh = await this.api.readCertificateSigningRequest({ name });
    const condition: V1CertificateSigningRequestCondition = {
      type,
      status: 'True',
      reason,
      message,
      lastUpdateTime: new Date(this.clock.now()),
    };
    fresh.status = { ...fresh.status, conditions: [...(fresh.status?.conditions ?? []), condition] };
    try {
      await this.api.replaceCertificateSigningRequestApproval({ name, body: fresh });
    } catch (err) {
      // Someone decided first (a previous leader): the next informer event says what.
      if (statusCode(err) !== 409) throw err;
      throw new Error(`request ${name} changed while it was being ${type.toLowerCase()}`);
    }
    if (type === 'Approved') {
      // Sign from the approved object: the informer may not have seen the approval yet.
      const approved = await this.api.readCertificateSigningRequest({ name });
      if (csrPhase(approved) !== 'Approved')
        throw new Error(`request ${name} is not approved after approval`);
    }
  }
}

function csrAgeMs(csr: V1CertificateSigningRequest, now: Date): number {
  const created = csr.metadata?.creationTimestamp;
  return created ? now.getTime() - new Date(created).getTime() : 0;
}
