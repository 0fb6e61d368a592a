// Argo CD in the local cluster (`up --argocd`): its CRDs and config objects in the cluster, and its
// application controller, repo server and Redis as local processes pointed at the cluster's API server, as
// `argocd-application-controller --kubeconfig` supports. The destination https://kubernetes.default.svc
// ("in-cluster") is this cluster: ARGOCD_FAKE_IN_CLUSTER builds it from KUBECONFIG instead of a Pod's token.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse, stringify } from 'yaml';
import { argocdBinDir, argocdCrdFiles, ensureArgoCd } from './argocd-build.js';
import { freePort } from './controlplane.js';
import { clusterDir, kubeconfigPath, repoRoot } from './paths.js';
import { alive, readPid, sleep, spawnDetached, stopPid } from './processes.js';

export const ARGOCD_NAMESPACE = 'argocd';
export const argocdDir = join(clusterDir, 'argocd');
const statePath = join(argocdDir, 'state.json');

const PROCESSES = ['redis', 'repo-server', 'application-controller'] as const;
type ArgoProcess = (typeof PROCESSES)[number];

export interface ArgoCdState {
  namespace: string;
  redisPort: number;
  repoServerPort: number;
  repoServerMetricsPort: number;
  controllerMetricsPort: number;
  /** Where the repo server clones to; tests find Argo CD's view of a repository here. */
  tmpDir: string;
  logs: Record<ArgoProcess, string>;
}

type Log = (line: string) => void;

const pidFile = (p: ArgoProcess): string => join(argocdDir, `${p}.pid`);
const logFile = (p: ArgoProcess): string => join(argocdDir, 'logs', `${p}.log`);

function kubectl(args: string[], input?: string): string {
  return execFileSync('kubectl', ['--kubeconfig', kubeconfigPath, ...args], {
    encoding: 'utf8',
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
}

export function readArgoCdState(): ArgoCdState | undefined {
  if (!existsSync(statePath)) return undefined;
  return JSON.parse(readFileSync(statePath, 'utf8')) as ArgoCdState;
}

export function argoCdAlive(): boolean {
  return PROCESSES.every((p) => alive(readPid(pidFile(p))));
}

/** argocd-cm with this project's health checks (examples/argocd/argocd-cm-health.yaml) merged in. */
export function argocdConfig(): string {
  const docs = parseAllDocuments(
    readFileSync(join(repoRoot, 'tools', 'localcluster', 'argocd-config', 'config.yaml'), 'utf8'),
  ).map((d) => d.toJSON() as { kind: string; metadata: { name: string }; data?: Record<string, string> });
  const health = parse(
    readFileSync(join(repoRoot, 'examples', 'argocd', 'argocd-cm-health.yaml'), 'utf8'),
  ) as {
    data: Record<string, string>;
  };
  const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'argocd-cm');
  if (!cm) throw new Error('argocd-config/config.yaml has no argocd-cm');
  cm.data = { ...cm.data, ...health.data };
  return docs.map((d) => stringify(d)).join('---\n');
}

async function waitHealthy(
  what: string,
  url: string,
  pid: number,
  log: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(pid)) throw new Error(`${what} exited; its log: ${log}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`${what} not healthy at ${url} after ${timeoutMs / 1000}s; log: ${log}`);
    await sleep(100);
  }
}

async function waitRedis(port: number, pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!alive(pid)) throw new Error(`redis-server exited; its log: ${logFile('redis')}`);
    try {
      if (
        execFileSync('redis-cli', ['-p', String(port), 'ping'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }).trim() === 'PONG'
      )
        return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new Error(`redis-server did not answer on port ${port}; log: ${logFile('redis')}`);
}

/** Starts one Argo CD binary (by its command name) and waits until its health endpoint answers. */
async function startProcess(
  command: string,
  p: ArgoProcess,
  args: string[],
  env: NodeJS.ProcessEnv,
  healthUrl: string,
): Promise<void> {
  const pid = spawnDetached(join(argocdBinDir(), command), args, logFile(p), pidFile(p), {
    env,
    cwd: argocdDir,
  });
  await waitHealthy(command, healthUrl, pid, logFile(p));
}

/** Applies Argo CD's CRDs and config objects; server-side because the ApplicationSet CRD is ~1.5 MB. */
function installObjects(): void {
  kubectl([
    'apply',
    '--server-side',
    '--field-manager=localcluster',
    ...argocdCrdFiles().flatMap((f) => ['-f', f]),
  ]);
  // `kubectl wait` fails at once while a new CRD has no conditions yet.
  for (let i = 0; ; i++) {
    try {
      kubectl([
        'wait',
        '--for=condition=Established',
        '--timeout=30s',
        'crd/applications.argoproj.io',
        'crd/appprojects.argoproj.io',
      ]);
      break;
    } catch (err) {
      if (i > 60) throw err;
      execFileSync('sleep', ['0.5']);
    }
  }
  kubectl(['apply', '--server-side', '--field-manager=localcluster', '-f', '-'], argocdConfig());
  try {
    kubectl(['-n', ARGOCD_NAMESPACE, 'get', 'secret', 'argocd-secret']);
  } catch {
    kubectl(
      ['apply', '-f', '-'],
      stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: 'argocd-secret',
          namespace: ARGOCD_NAMESPACE,
          labels: { 'app.kubernetes.io/name': 'argocd-secret', 'app.kubernetes.io/part-of': 'argocd' },
        },
        stringData: { 'server.secretkey': randomBytes(32).toString('base64') },
      }),
    );
  }
}

/**
 * Builds Argo CD on first use, installs its objects and starts its processes unless they run. Idempotent;
 * `down` stops them with the cluster.
 */
export async function startArgoCd(log: Log = console.log): Promise<ArgoCdState> {
  const running = readArgoCdState();
  if (running && argoCdAlive()) {
    log('localcluster: Argo CD already running');
    return running;
  }
  await stopArgoCd();
  await ensureArgoCd(log);
  const started = Date.now();
  installObjects();
  const dirs = ['tmp', 'tls', 'ssh', 'gpg', 'logs'];
  for (const d of dirs) mkdirSync(join(argocdDir, d), { recursive: true });
  const state: ArgoCdState = {
    namespace: ARGOCD_NAMESPACE,
    redisPort: await freePort(),
    repoServerPort: await freePort(),
    repoServerMetricsPort: await freePort(),
    // The controller's metrics server has no address flag and listens on every address.
    controllerMetricsPort: await freePort('0.0.0.0'),
    tmpDir: join(argocdDir, 'tmp'),
    logs: {
      redis: logFile('redis'),
      'repo-server': logFile('repo-server'),
      'application-controller': logFile('application-controller'),
    },
  };
  writeFileSync(statePath, JSON.stringify(state, null, 2));
  const bin = argocdBinDir();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The repo server runs kustomize, git and its wrapper scripts from PATH, and clones into TMPDIR.
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    TMPDIR: state.tmpDir,
    // Upstream's defaults are fixed paths (/app/config/..., /tmp/reposerver-ask-pass.sock).
    ARGOCD_TLS_DATA_PATH: join(argocdDir, 'tls'),
    ARGOCD_SSH_DATA_PATH: join(argocdDir, 'ssh'),
    ARGOCD_GNUPGHOME: join(argocdDir, 'gpg'),
    ARGOCD_GPG_ENABLED: 'false',
    ARGOCD_ASK_PASS_SOCK: join(argocdDir, 'askpass.sock'),
    KUBECONFIG: kubeconfigPath,
    ARGOCD_FAKE_IN_CLUSTER: 'true',
  };
  const redis = spawnDetached(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(state.redisPort),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      argocdDir,
    ],
    logFile('redis'),
    pidFile('redis'),
  );
  await waitRedis(state.redisPort, redis);
  const redisAddress = `127.0.0.1:${state.redisPort}`;
  await startProcess(
    'argocd-repo-server',
    'repo-server',
    [
      '--address',
      '127.0.0.1',
      '--port',
      String(state.repoServerPort),
      '--metrics-address',
      '127.0.0.1',
      '--metrics-port',
      String(state.repoServerMetricsPort),
      '--redis',
      redisAddress,
      // Only this machine's loopback carries it; `--disable-tls` is refused unless the client CA is unset.
      '--disable-tls',
      '--client-ca-path',
      '',
      '--loglevel',
      'info',
      '--logformat',
      'text',
    ],
    env,
    `http://127.0.0.1:${state.repoServerMetricsPort}/healthz?full=true`,
  );
  await startProcess(
    'argocd-application-controller',
    'application-controller',
    [
      '--kubeconfig',
      kubeconfigPath,
      '--namespace',
      ARGOCD_NAMESPACE,
      '--redis',
      redisAddress,
      '--repo-server',
      `127.0.0.1:${state.repoServerPort}`,
      '--repo-server-plaintext',
      '--metrics-port',
      String(state.controllerMetricsPort),
      // Upstream's 3 min resync is for many Applications; tests want drift and health seen in seconds.
      '--app-resync',
      '10',
      '--app-resync-jitter',
      '0',
      // Per-resource health (the Lua check's status and message) in the Application's .status.resources.
      '--persist-resource-health',
      '--self-heal-timeout-seconds',
      '2',
      '--loglevel',
      'info',
      '--logformat',
      'text',
    ],
    env,
    `http://127.0.0.1:${state.controllerMetricsPort}/healthz`,
  );
  log(
    `localcluster: Argo CD running in ${((Date.now() - started) / 1000).toFixed(1)}s (namespace ${ARGOCD_NAMESPACE}; logs in ${join(argocdDir, 'logs')})`,
  );
  return state;
}

/** Stops Argo CD's processes; its objects go with the cluster. */
export async function stopArgoCd(): Promise<void> {
  for (const p of [...PROCESSES].reverse()) await stopPid(readPid(pidFile(p)));
}
