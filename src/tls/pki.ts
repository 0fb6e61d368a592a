// The operator's own small PKI: a CA the controller keeps, serving certificates for the helpers issued from
// certificate signing requests. ECDSA P-256 throughout: keys in a few milliseconds, short certificates.
// tsyringe (inside @peculiar/x509) needs the Reflect metadata API before it loads.
import 'reflect-metadata';
import { webcrypto, randomBytes, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;

x509.cryptoProvider.set(webcrypto as never);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export async function generateKeyPair(): Promise<KeyPair> {
  return await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

export async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('no PEM block in the private key');
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive, as RFC 5280 requires
  return bytes.toString('hex');
}

/** A self-signed CA that may sign end-entity certificates only (path length 0). */
export async function createCertificateAuthority(
  commonName: string,
  now: Date,
  validityMs: number,
): Promise<CertificateAuthority> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + validityMs),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A PKCS#10 request for a serving certificate for these IP addresses, signed with `keys`. */
export async function createServingRequest(
  keys: KeyPair,
  commonName: string,
  ips: string[],
): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [new x509.SubjectAlternativeNameExtension(ips.map((value) => ({ type: 'ip', value })))],
  });
  return csr.toString('pem');
}

export interface ParsedRequest {
  commonName: string;
  ips: string[];
  /** Other subject alternative names (DNS, email, URI): a helper asks for none. */
  otherNames: string[];
  /** The request is signed by the key it carries. */
  signatureValid: boolean;
  keyAlgorithm: string;
  request: x509.Pkcs10CertificateRequest;
}

export async function parseRequest(pem: string): Promise<ParsedRequest> {
  const request = new x509.Pkcs10CertificateRequest(pem);
  const san = request.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  const cn = request.subjectName.getField('CN')[0] ?? '';
  const alg = request.publicKey.algorithm as { name: string; namedCurve?: string };
  return {
    commonName: cn,
    ips: names.filter((n) => n.type === 'ip').map((n) => n.value),
    otherNames: names.filter((n) => n.type !== 'ip').map((n) => `${n.type}:${n.value}`),
    signatureValid: await request.verify(),
    keyAlgorithm: alg.namedCurve ? `${alg.name} ${alg.namedCurve}` : alg.name,
    request,
  };
}

/** Signs a serving certificate (server auth, the request's IP addresses only) with the CA. */
export async function signServingCertificate(
  ca: CertificateAuthority,
  req: ParsedRequest,
  notBefore: Date,
  notAfter: Date,
): Promise<string> {
  const issuer = new x509.X509Certificate(ca.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: req.request.subject,
    issuer: issuer.subject,
    notBefore,
    notAfter,
    signingKey: await importPrivateKey(ca.keyPem),
    publicKey: req.request.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.SubjectAlternativeNameExtension(req.ips.map((value) => ({ type: 'ip', value }))),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ],
  });
  return cert.toString('pem');
}

export interface CertificateInfo {
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** The validity and serial of the first certificate in a PEM bundle. */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = new X509Certificate(pem);
  return { serial: cert.serialNumber, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** When a certificate is due for renewal: two thirds into its validity, as kubelet-style rotation does. */
export function renewalTime(info: Pick<CertificateInfo, 'notBefore' | 'notAfter'>): Date {
  const start = info.notBefore.getTime();
  return new Date(start + ((info.notAfter.getTime() - start) * 2) / 3);
}
