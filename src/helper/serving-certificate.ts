import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CertificatesV1Api,
  type KubeConfig,
  type V1CertificateSigningRequest,
} from '@kubernetes/client-node';
import { HELPER_SIGNER_NAME } from '../api/constants.js';
import { errorMessage, type Logger } from '../runtime/logger.js';
import {
  certificateInfo,
  createServingRequest,
  generateKeyPair,
  privateKeyPem,
  renewalTime,
  type CertificateInfo,
} from '../tls/pki.js';

export interface ServingCredentials {
  keyPem: string;
  certPem: string;
  info: CertificateInfo;
  receivedAt: number;
}

export interface ServingCertificateOptions {
  kc: KubeConfig;
  nodeName: string;
  podIP: string;
  log: Logger;
  /** A renewed certificate; the server swaps it in for new connections. */
  onRenewed: (c: ServingCredentials) => void;
  /** How often a pending request is looked at. */
  pollMs?: number;
  /** A request not signed within this long is replaced by a new one. */
  requestTimeoutMs?: number;
  /**
   * Where the key and certificate are kept (mode 0600, on the node's state disk), so a restarted helper
   * serves at once, even while no controller leads to sign a new one.
   */
  keepDir?: string;
  /** The CA a kept certificate must be signed by (the current one). */
  caPem?: () => string | undefined;
}

const WAIT_LOG_MS = 30_000;

/**
 * This helper's serving certificate for its Pod IP, from a CertificateSigningRequest that the leading
 * controller signs with the operator's CA. The private key is made here and never leaves the helper (it is
 * kept, with the certificate, in the state directory of its node). The
 * certificate is renewed two thirds into its validity; until a renewal is signed the old one keeps serving.
 */
export class ServingCertificate {
  private readonly api: CertificatesV1Api;
  private timer?: NodeJS.Timeout;
  private readonly abort = new AbortController();
  current?: ServingCredentials;

  constructor(private readonly o: ServingCertificateOptions) {
    this.api = o.kc.makeApiClient(CertificatesV1Api);
  }

  /** The first certificate: a kept one still good, or else a new one, however long that takes. */
  async obtain(): Promise<ServingCredentials> {
    const kept = await this.loadKept();
    if (kept) {
      this.current = kept;
      this.o.log.info('serving certificate kept from before the restart', {
        serial: kept.info.serial,
        notAfter: kept.info.notAfter.toISOString(),
      });
      this.scheduleRenewal();
      return kept;
    }
    for (let attempt = 1; ; attempt++) {
      if (this.abort.signal.aborted) throw new Error('stopped');
      try {
        this.current = await this.request();
        await this.keep(this.current);
        this.scheduleRenewal();
        return this.current;
      } catch (err) {
        if (this.abort.signal.aborted) throw err;
        const retryInMs = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
        this.o.log.warn('no serving certificate yet', { error: errorMessage(err), retryInMs });
        await sleep(retryInMs);
      }
    }
  }

  stop(): void {
    this.abort.abort();
    clearTimeout(this.timer);
  }

  private scheduleRenewal(delayMs?: number): void {
    clearTimeout(this.timer);
    // From when it arrived, not its notBefore: signers backdate certificates for clock skew, which would
    // put a short certificate's renewal time in the past.
    const { info, receivedAt } = this.current!;
    const from = new Date(Math.max(info.notBefore.getTime(), receivedAt));
    const due =
      delayMs ??
      Math.max(1000, renewalTime({ notBefore: from, notAfter: info.notAfter }).getTime() - Date.now());
    this.timer = setTimeout(() => void this.renew(), Math.min(due, 2 ** 31 - 1));
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    try {
      const fresh = await this.request();
      this.current = fresh;
      await this.keep(fresh);
      this.o.log.info('serving certificate renewed', {
        serial: fresh.info.serial,
        notAfter: fresh.info.notAfter.toISOString(),
      });
      this.o.onRenewed(fresh);
      this.scheduleRenewal();
    } catch (err) {
      if (this.abort.signal.aborted) return;
      const left = this.current!.info.notAfter.getTime() - Date.now();
      const retryInMs = Math.max(1000, Math.min(30_000, left / 10));
      this.o.log.warn('serving certificate renewal failed; the current one keeps serving', {
        error: errorMessage(err),
        expiresInMs: left,
        retryInMs,
      });
      this.scheduleRenewal(retryInMs);
    }
  }

  /** A kept key and certificate, if they are for this Pod IP, from the current CA, and not due for renewal. */
  private async loadKept(): Promise<ServingCredentials | undefined> {
    const dir = this.o.keepDir;
    const ca = this.o.caPem?.();
    if (!dir || !ca) return undefined;
    try {
      const [keyPem, certPem] = await Promise.all([
        readFile(join(dir, 'serving.key'), 'utf8'),
        readFile(join(dir, 'serving.crt'), 'utf8'),
      ]);
      const cert = new X509Certificate(certPem);
      const info = certificateInfo(certPem);
      const good =
        // One name, this Pod's IP (`checkIP` compares IPv6 addresses by value, not by spelling).
        cert.subjectAltName?.startsWith('IP Address:') === true &&
        !cert.subjectAltName.includes(',') &&
        cert.checkIP(this.o.podIP) !== undefined &&
        cert.verify(new X509Certificate(ca).publicKey) &&
        renewalTime(info).getTime() > Date.now();
      return good ? { keyPem, certPem, info, receivedAt: info.notBefore.getTime() } : undefined;
    } catch {
      return undefined; // none kept, or unreadable: ask for a new one
    }
  }

  private async keep(c: ServingCredentials): Promise<void> {
    const dir = this.o.keepDir;
    if (!dir) return;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const [name, pem] of [
        ['serving.key', c.keyPem],
        ['serving.crt', c.certPem],
      ] as const) {
        await writeFile(join(dir, `${name}.tmp`), pem, { mode: 0o600 });
        await rename(join(dir, `${name}.tmp`), join(dir, name));
      }
    } catch (err) {
      this.o.log.warn('could not keep the serving certificate on disk', { error: errorMessage(err) });
    }
  }

  /** One request: a new key, a CSR object, then wait for the certificate (or a denial). */
  private async request(): Promise<ServingCredentials> {
    const keys = await generateKeyPair();
    const pem = await createServingRequest(keys, `pull-state-helper ${this.o.nodeName}`, [this.o.podIP]);
    const created = await this.api.createCertificateSigningRequest({
      body: {
        metadata: { generateName: `pull-state-helper-${this.o.nodeName}-`.slice(0, 200) },
        spec: {
          request: Buffer.from(pem).toString('base64'),
          signerName: HELPER_SIGNER_NAME,
          usages: ['digital signature', 'server auth'],
        },
      },
    });
    const name = created.metadata!.name!;
    const started = Date.now();
    let lastLog = started;
    for (;;) {
      await sleep(this.o.pollMs ?? 500);
      if (this.abort.signal.aborted) throw new Error('stopped');
      const csr = await this.api.readCertificateSigningRequest({ name });
      const done = outcome(csr);
      if (done.certificate) {
        const certPem = Buffer.from(done.certificate, 'base64').toString('utf8');
        return {
          keyPem: await privateKeyPem(keys.privateKey),
          certPem,
          info: certificateInfo(certPem),
          receivedAt: Date.now(),
        };
      }
      if (done.refused) throw new Error(`certificate request ${name} ${done.refused}`);
      const waited = Date.now() - started;
      if (waited > (this.o.requestTimeoutMs ?? 300_000))
        throw new Error(`certificate request ${name} not signed within ${Math.round(waited / 1000)} s`);
      if (Date.now() - lastLog > WAIT_LOG_MS) {
        lastLog = Date.now();
        this.o.log.info('waiting for the controller to sign the serving certificate', { csr: name });
      }
    }
  }
}

function outcome(csr: V1CertificateSigningRequest): { certificate?: string; refused?: string } {
  for (const c of csr.status?.conditions ?? []) {
    if ((c.type === 'Denied' || c.type === 'Failed') && c.status === 'True')
      return { refused: `was ${c.type.toLowerCase()}: ${c.reason ?? ''} ${c.message ?? ''}`.trim() };
  }
  return csr.status?.certificate ? { certificate: csr.status.certificate } : {};
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
