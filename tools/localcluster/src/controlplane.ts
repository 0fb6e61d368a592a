import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { SERVICE_CIDR } from './addressing.js';
import { binaryPath, type Binary } from './build.js';
import { alive, readPid, spawnDetached, stopPid } from './processes.js';

export interface ControlPlaneOptions {
  dir: string;
  /** Address the API server binds to; Pods must reach it (the bridge IP). */
  address: string;
  nodeMonitorGracePeriodSeconds: number;
  tolerationSeconds: number;
  log: (line: string) => void;
  /**
   * 'apiserver': etcd and kube-apiserver only (the API-server test tier: no controllers, scheduler or
   * nodes). Default 'all'.
   */
  components?: 'all' | 'apiserver';
  /**
   * Where the binaries are run from (default: the cache). The API-server tier runs them through links in
   * its own directory, so the cluster's `down`, which kills whatever runs from the cache, leaves it alone.
   */
  binDir?: string;
}

export interface ControlPlane {
  server: string;
  caFile: string;
  token: string;
  /** The CA the kubelets trust for the API server's client certificate. */
  kubeletClientCa: string;
}

export const CONTROL_PLANE_PROCESSES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
] as const satisfies readonly Binary[];
type Component = (typeof CONTROL_PLANE_PROCESSES)[number];

const pidFile = (dir: string, c: Component) => join(dir, 'pids', `${c}.pid`);

/** Starts a component detached from the CLI, logging to `<dir>/<name>.log`. */
function start(
  { dir, binDir }: Pick<ControlPlaneOptions, 'dir' | 'binDir'>,
  c: Component,
  args: string[],
): number {
  mkdirSync(join(dir, 'pids'), { recursive: true });
  const binary = binDir ? join(binDir, c) : binaryPath(c);
  return spawnDetached(binary, args, join(dir, `${c}.log`), pidFile(dir, c));
}

export function controlPlaneAlive(dir: string): Component[] {
  return CONTROL_PLANE_PROCESSES.filter((c) => alive(readPid(pidFile(dir, c))));
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      srv.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  pid?: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pid !== undefined && !alive(pid)) throw new Error(`${what}: process exited; see its log`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready after ${timeoutMs / 1000}s`);
}

function httpOk(url: string, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https') ? request : httpRequest)(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export function kubeconfigYaml(server: string, ca: Buffer, token: string, user = 'admin'): string {
  return `apiVersion: v1
kind: Config
clusters:
  - name: localcluster
    cluster:
      server: ${server}
      certificate-authority-data: ${ca.toString('base64')}
users:
  - name: ${user}
    user:
      token: ${token}
contexts:
  - name: localcluster
    context:
      cluster: localcluster
      user: ${user}
current-context: localcluster
`;
}

/**
 * The API server's client certificate for the kubelets (logs, exec, attach, port-forward), as kubeadm's
 * apiserver-kubelet-client: the kubelets run without anonymous access, and authorize it through the API
 * server (webhook), where system:masters may do anything.
 */
function kubeletClientCertificate(pki: string): { ca: string; cert: string; key: string } {
  const ca = join(pki, 'kubelet-client-ca.crt');
  const caKey = join(pki, 'kubelet-client-ca.key');
  const cert = join(pki, 'apiserver-kubelet-client.crt');
  const key = join(pki, 'apiserver-kubelet-client.key');
  const csr = join(pki, 'apiserver-kubelet-client.csr');
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '3650',
    '-subj',
    '/CN=localcluster-kubelet-client-ca',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    '/O=system:masters/CN=kube-apiserver-kubelet-client',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '3650',
  );
  return { ca, cert, key };
}

/**
 * Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler, each waiting for the last (only the
 * first two with `components: 'apiserver'`).
 */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const pki = join(o.dir, 'pki');
  rmSync(join(o.dir, 'etcd'), { recursive: true, force: true });
  mkdirSync(pki, { recursive: true });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = join(pki, 'sa.key');
  writeFileSync(saKey, privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const token = randomBytes(24).toString('hex');
  const kubeletClient = kubeletClientCertificate(pki);
  const tokens = join(pki, 'tokens.csv');
  writeFileSync(tokens, `${token},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });

  const etcdPort = await freePort();
  const peerPort = await freePort();
  o.log('localcluster: starting etcd');
  const etcd = start(o, 'etcd', [
    '--name=local',
    `--data-dir=${join(o.dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=local=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync',
    '--logger=zap',
    '--log-level=warn',
  ]);
  await waitFor('etcd', () => httpOk(`http://127.0.0.1:${etcdPort}/health`), 30_000, etcd);

  const apiPort = await freePort(o.address);
  const server = `https://${o.address}:${apiPort}`;
  o.log(`localcluster: starting kube-apiserver on ${server}`);
  const apiserver = start(o, 'kube-apiserver', [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--bind-address=${o.address}`,
    `--advertise-address=${o.address}`,
    `--secure-port=${apiPort}`,
    `--cert-dir=${pki}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    `--service-account-issuer=${server}`,
    `--service-account-key-file=${saKey}`,
    `--service-account-signing-key-file=${saKey}`,
    `--token-auth-file=${tokens}`,
    '--authorization-mode=RBAC',
    // Node names resolve nowhere on this machine: dial kubelets at their InternalIP, as kind's nodes do.
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    `--kubelet-client-certificate=${kubeletClient.cert}`,
    `--kubelet-client-key=${kubeletClient.key}`,
    '--allow-privileged=true',
    `--default-not-ready-toleration-seconds=${o.tolerationSeconds}`,
    `--default-unreachable-toleration-seconds=${o.tolerationSeconds}`,
    '--profiling=false',
    '--v=1',
  ]);
  const caFile = join(pki, 'apiserver.crt');
  await waitFor(
    'kube-apiserver',
    async () => httpOk(`${server}/readyz`, readFileSync(caFile)),
    90_000,
    apiserver,
  );

  const kubeconfig = join(o.dir, 'admin.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server, readFileSync(caFile), token), { mode: 0o600 });
  if (o.components === 'apiserver') return { server, caFile, token, kubeletClientCa: kubeletClient.ca };
  o.log('localcluster: starting kube-controller-manager and kube-scheduler');
  start(o, 'kube-controller-manager', [
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--controllers=*',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${saKey}`,
    `--root-ca-file=${caFile}`,
    '--node-monitor-period=1s',
    `--node-monitor-grace-period=${o.nodeMonitorGracePeriodSeconds}s`,
    '--secure-port=0',
    '--v=1',
  ]);
  start(o, 'kube-scheduler', [
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--secure-port=0',
    '--v=1',
  ]);
  return { server, caFile, token, kubeletClientCa: kubeletClient.ca };
}

export async function stopControlPlane(dir: string): Promise<void> {
  // Reverse order: clients of the API server first, etcd last.
  for (const c of [...CONTROL_PLANE_PROCESSES].reverse()) await stopPid(readPid(pidFile(dir, c)), 5000);
}
