import { request } from 'node:https';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  certificateInfo,
  createCertificateAuthority,
  createServingRequest,
  generateKeyPair,
  parseRequest,
  privateKeyPem,
  renewalTime,
  signServingCertificate,
} from '../../../src/tls/pki.js';

function get(port: number, ca: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host, port, ca, path: '/' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += String(c)));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

describe('the helper PKI', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('signs a serving certificate for the requested IP that a client trusting only the CA accepts', async () => {
    const now = new Date();
    const ca = await createCertificateAuthority('test CA', now, 86_400_000);
    const keys = await generateKeyPair();
    const req = await parseRequest(await createServingRequest(keys, 'helper', ['127.0.0.1']));
    expect(req).toMatchObject({
      commonName: 'helper',
      ips: ['127.0.0.1'],
      otherNames: [],
      signatureValid: true,
    });
    expect(req.keyAlgorithm).toBe('ECDSA P-256');
    const cert = await signServingCertificate(ca, req, now, new Date(now.getTime() + 60_000));
    server = createServer({ key: await privateKeyPem(keys.privateKey), cert }, (_q, r) => r.end('hello'));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    expect(await get(port, ca.certPem)).toBe('hello');
    // Another CA's client refuses it, and so does a client that reaches it under a name it does not carry.
    const other = await createCertificateAuthority('other CA', now, 86_400_000);
    await expect(get(port, other.certPem)).rejects.toThrow(/self-signed|unable to verify|certificate/);
    await expect(get(port, ca.certPem, 'localhost')).rejects.toThrow(
      /altnames|does not match|not in the cert/i,
    );
  });

  it('reports validity and serial, and renews two thirds into the validity', async () => {
    const now = new Date('2026-12-01T00:00:00Z');
    const ca = await createCertificateAuthority('test CA', now, 3 * 3600_000);
    const info = certificateInfo(ca.certPem);
    expect(info.serial).toMatch(/^[0-9A-F]+$/);
    expect(info.notAfter.toISOString()).toBe('2026-12-01T03:00:00.000Z');
    expect(renewalTime({ notBefore: now, notAfter: new Date('2026-12-01T03:00:00Z') }).toISOString()).toBe(
      '2026-12-01T02:00:00.000Z',
    );
  });

  it('detects a request whose signature does not match its key', async () => {
    const pem = await createServingRequest(await generateKeyPair(), 'helper', ['10.0.0.1']);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] = der[der.length - 5]! ^ 0xff; // inside the signature
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const parsed = await parseRequest(tampered).catch(() => undefined);
    // Either it does not parse at all or its signature is invalid: never a valid request.
    expect(parsed?.signatureValid ?? false).toBe(false);
  });
});
