import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { binaryPath } from './build.js';
import { startLogged, stopProcess, type Managed, type PidFile } from './processes.js';

export interface ControlPlaneOptions {
  dir: string;
  /** Address the API server binds to; Pods must reach it (the bridge IP). */
  address: string;
  nodeMonitorGracePeriodSeconds: number;
  tolerationSeconds: number;
  pids: PidFile;
  log: (line: string) => void;
}

export interface ControlPlane {
  server: string;
  caFile: string;
  token: string;
  processes: Managed[];
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
  proc?: Managed,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.child.exitCode !== null)
      throw new Error(`${what}: process exited with ${proc.child.exitCode}`);
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

/** Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler, each waiting for the last. */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const pki = join(o.dir, 'pki');
  rmSync(join(o.dir, 'etcd'), { recursive: true, force: true });
  mkdirSync(pki, { recursive: true });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = join(pki, 'sa.key');
  writeFileSync(saKey, privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const token = randomBytes(24).toString('hex');
  const tokens = join(pki, 'tokens.csv');
  writeFileSync(tokens, `${token},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  const processes: Managed[] = [];
  const started = (p: Managed) => (processes.push(p), o.pids.add(p.child.pid), p);

  const etcdPort = await freePort();
  const peerPort = await freePort();
  o.log('localcluster: starting etcd');
  const etcd = started(
    startLogged(
      'etcd',
      binaryPath('etcd'),
      [
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
      ],
      join(o.dir, 'etcd.log'),
    ),
  );
  await waitFor('etcd', () => httpOk(`http://127.0.0.1:${etcdPort}/health`), 30_000, etcd);

  const apiPort = await freePort(o.address);
  const server = `https://${o.address}:${apiPort}`;
  o.log(`localcluster: starting kube-apiserver on ${server}`);
  const apiserver = started(
    startLogged(
      'kube-apiserver',
      binaryPath('kube-apiserver'),
      [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        `--bind-address=${o.address}`,
        `--advertise-address=${o.address}`,
        `--secure-port=${apiPort}`,
        `--cert-dir=${pki}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        `--service-account-issuer=${server}`,
        `--service-account-key-file=${saKey}`,
        `--service-account-signing-key-file=${saKey}`,
        `--token-auth-file=${tokens}`,
        '--authorization-mode=RBAC',
        '--allow-privileged=true',
        '--endpoint-reconciler-type=none',
        `--default-not-ready-toleration-seconds=${o.tolerationSeconds}`,
        `--default-unreachable-toleration-seconds=${o.tolerationSeconds}`,
        '--profiling=false',
        '--v=1',
      ],
      join(o.dir, 'kube-apiserver.log'),
    ),
  );
  const caFile = join(pki, 'apiserver.crt');
  await waitFor(
    'kube-apiserver',
    async () => httpOk(`${server}/readyz`, readFileSync(caFile)),
    90_000,
    apiserver,
  );

  const kubeconfig = join(o.dir, 'admin.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server, readFileSync(caFile), token), { mode: 0o600 });
  o.log('localcluster: starting kube-controller-manager and kube-scheduler');
  started(
    startLogged(
      'kube-controller-manager',
      binaryPath('kube-controller-manager'),
      [
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
      ],
      join(o.dir, 'kube-controller-manager.log'),
    ),
  );
  started(
    startLogged(
      'kube-scheduler',
      binaryPath('kube-scheduler'),
      [`--kubeconfig=${kubeconfig}`, '--leader-elect=false', '--secure-port=0', '--v=1'],
      join(o.dir, 'kube-scheduler.log'),
    ),
  );
  return { server, caFile, token, processes };
}

export async function stopControlPlane(cp: ControlPlane): Promise<void> {
  // Reverse order: clients of the API server first, etcd last.
  for (const p of [...cp.processes].reverse()) await stopProcess(p, 5000);
}
