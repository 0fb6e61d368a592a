import { PooledKubeConfig } from '../kube/pooled-kube-config.js';
import type { Server as TlsServer } from 'node:tls';
import { join } from 'node:path';
import Fastify from 'fastify';
import { HELPER_AUDIENCE, HELPER_HEALTH_PORT, helperAudience, OPERATOR_NAMESPACE } from '../api/constants.js';
import { registerProbes } from '../runtime/probes.js';
import { IP_ADDRESS, wildcardAddress } from '../runtime/ip-address.js';
import { PeerTrust } from './peer-trust.js';
import { ServingCertificate } from './serving-certificate.js';
import { UsageError, helpText, parseFlags, type FlagSpecs } from '../cli/flags.js';
import { createLogger } from '../runtime/logger.js';
import { onShutdown } from '../runtime/shutdown.js';
import { handleProcessErrors } from '../runtime/process-errors.js';
import { BlobStore, DEFAULT_GENERATIONS, DEFAULT_OLDER_COPY_MS } from './blob-store.js';
import { buildHelperServer } from './server.js';
import { TokenReviewer } from './token-reviewer.js';
import { helperCredentials } from '../kube/bearer-token.js';
import { NodePuller } from './node-puller.js';
import { PodProber } from './pod-prober.js';
import { helperMetrics } from './metrics.js';
import { pullState } from './pull-state.js';
import { ReportOutbox } from './report-outbox.js';

const GiB = 1024 ** 3;

export const HELPER_FLAGS = {
  port: {
    kind: 'int',
    min: 1,
    max: 65535,
    default: 9500,
    env: 'HELPER_PORT',
    help: 'port of the HTTPS API (the controller and other helpers call it)',
  },
  'health-port': {
    kind: 'int',
    min: 1,
    max: 65535,
    default: HELPER_HEALTH_PORT,
    env: 'HELPER_HEALTH_PORT',
    help: 'port of /healthz, /readyz and /metrics (plain HTTP: probes and Prometheus)',
  },
  'pod-ip': {
    kind: 'string',
    env: 'POD_IP',
    pattern: { test: IP_ADDRESS, allowed: 'an IPv4 or IPv6 address (the downward API status.podIP)' },
    help: "this helper Pod's IP, the one name in its serving certificate",
  },
  'node-ip': {
    kind: 'string',
    env: 'NODE_IP',
    pattern: { test: IP_ADDRESS, allowed: 'an IPv4 or IPv6 address (the downward API status.hostIP)' },
    help: "this node's IP: pulls and restores there are refused unless the Pod is a hostNetwork Pod its policy allows",
  },
  namespace: {
    kind: 'string',
    default: OPERATOR_NAMESPACE,
    env: 'POD_NAMESPACE',
    pattern: { test: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, allowed: 'a namespace name (DNS label)' },
    help: "the operator's namespace (where the controller publishes the helper CA)",
  },
  'state-dir': {
    kind: 'string',
    default: '/var/lib/pull-state',
    env: 'HELPER_STATE_DIR',
    help: 'directory holding the stored states',
  },
  'node-name': { kind: 'string', env: 'NODE_NAME', help: 'name of the node this helper runs on' },
  'max-blob-bytes': {
    kind: 'int',
    min: 1,
    max: 16 * GiB,
    default: GiB,
    env: 'HELPER_MAX_BLOB_BYTES',
    help: 'largest single state accepted',
  },
  'quota-bytes': {
    kind: 'int',
    min: 1,
    max: 1024 * GiB,
    default: 8 * GiB,
    env: 'HELPER_QUOTA_BYTES',
    help: 'total bytes stored on this node',
  },
  generations: {
    kind: 'int',
    min: 1,
    max: 100,
    default: DEFAULT_GENERATIONS,
    env: 'HELPER_GENERATIONS',
    help: 'copies kept per Pod (newest first); a restore after a restart seen late uses one from before it',
  },
  'older-copy-seconds': {
    kind: 'int',
    min: 0,
    max: 86_400,
    default: DEFAULT_OLDER_COPY_MS / 1000,
    env: 'HELPER_OLDER_COPY_SECONDS',
    help: 'also keep a copy at least this much older than the newest (for restarts seen late); 0: off',
  },
  'cache-bytes': {
    kind: 'int',
    min: 0,
    max: 64 * GiB,
    default: 256 * 1024 ** 2,
    env: 'HELPER_CACHE_BYTES',
    help: 'bytes of recent states kept in memory',
  },
  'namespace-quota-bytes': {
    kind: 'int',
    min: 0,
    max: 1024 * GiB,
    default: 0,
    env: 'HELPER_NAMESPACE_QUOTA_BYTES',
    help: "bytes the copies of one namespace may take on this node; 0: half of --quota-bytes, so one namespace never takes the others' space",
  },
  'max-uploads': {
    kind: 'int',
    min: 1,
    max: 4096,
    default: 32,
    env: 'HELPER_MAX_UPLOADS',
    help: 'copies received at once (each holds up to 1 MiB in memory); more are refused with 503 and retried at the next pull',
  },
  'max-uploads-per-namespace': {
    kind: 'int',
    min: 1,
    max: 4096,
    default: 8,
    env: 'HELPER_MAX_UPLOADS_PER_NAMESPACE',
    help: 'copies of one namespace received at once (of --max-uploads)',
  },
  'allowed-service-account': {
    kind: 'string',
    default: `${OPERATOR_NAMESPACE}:pull-state-controller`,
    env: 'HELPER_ALLOWED_SERVICE_ACCOUNT',
    pattern: { test: /^[a-z0-9-]+:[a-z0-9.-]+$/, allowed: '<namespace>:<serviceaccount>' },
    help: "the controller's identity: it may call the whole API",
  },
  'peer-service-account': {
    kind: 'string',
    default: `${OPERATOR_NAMESPACE}:pull-state-helper`,
    env: 'HELPER_PEER_SERVICE_ACCOUNT',
    pattern: { test: /^[a-z0-9-]+:[a-z0-9.-]+$/, allowed: '<namespace>:<serviceaccount>' },
    help: "the helpers' own identity: it may store copies, nothing else",
  },
  'pull-concurrency': {
    kind: 'int',
    min: 1,
    max: 1024,
    default: 32,
    env: 'HELPER_PULL_CONCURRENCY',
    help: "pulls of this node's Pods running at once",
  },
  'pull-concurrency-per-namespace': {
    kind: 'int',
    min: 1,
    max: 1024,
    default: 8,
    env: 'HELPER_PULL_CONCURRENCY_PER_NAMESPACE',
    help: 'pulls of one namespace running at once (of --pull-concurrency): an app that trickles its answer, or a namespace with many Pods, cannot take the slots of the others',
  },
  'report-batch-ms': {
    kind: 'int',
    min: 0,
    max: 10_000,
    default: 200,
    env: 'HELPER_REPORT_BATCH_MS',
    help: 'how long a routine pull report waits for others before the controller gets it',
  },
  'pod-name': { kind: 'string', default: '', env: 'POD_NAME', help: "this helper's Pod name" },
  'pod-uid': {
    kind: 'string',
    default: '',
    env: 'POD_UID',
    pattern: { test: /^[0-9a-f-]{36}$/, allowed: 'a Pod UID' },
    help: "this helper's Pod UID: the tokens it sends to the other helpers are bound to its Pod (so they name its node); required, with --pod-name, unless --token-audience is empty",
  },
  'token-audience': {
    kind: 'string',
    default: HELPER_AUDIENCE,
    env: 'HELPER_TOKEN_AUDIENCE',
    pattern: {
      test: /^\S{0,253}$/,
      allowed: "an audience without spaces, or empty for the API server's own",
    },
    help: `base of the helpers' token audiences: a caller's token must be for "<base>/node/<this node>" (checked by TokenReview), so a token sent to another helper is useless here; empty: the API server's own`,
  },
  'token-cache-seconds': {
    kind: 'int',
    min: 0,
    max: 3600,
    default: 30,
    env: 'HELPER_TOKEN_CACHE_SECONDS',
    help: 'how long a TokenReview answer is reused',
  },
  'token-grace-seconds': {
    kind: 'int',
    min: 0,
    max: 3600,
    default: 300,
    env: 'HELPER_TOKEN_GRACE_SECONDS',
    help: 'how long after its last successful TokenReview a token stays admitted while the API server cannot be reached (never past its expiry)',
  },
} satisfies FlagSpecs;

export const HELPER_HELP = helpText(
  'pull-state-operator helper [flags]',
  "Pulls the state of this node's protected Pods as the controller assigns them, streams the copies to the helpers of other nodes, stores the copies other helpers send, and pushes them into Pods on the controller's request (one per node, DaemonSet).",
  HELPER_FLAGS,
);

export async function runHelper(args: string[]): Promise<void> {
  const flags = parseFlags(args, HELPER_FLAGS, process.env);
  // Never a silent fallback to the kubeconfig's token: that one opens the API server, not just the helpers.
  if (flags['token-audience'] && (!flags['pod-name'] || !flags['pod-uid']))
    throw new UsageError(
      "--pod-name and --pod-uid (POD_NAME, POD_UID) are needed: the tokens sent to other helpers are bound to this Pod; outside a Pod, set --token-audience '' on every helper and --helper-token-audience '' on the controller",
    );
  const log = createLogger('helper');
  handleProcessErrors(log);
  const kc = new PooledKubeConfig();
  kc.loadFromDefault();
  const store = await BlobStore.open(flags['state-dir'], {
    maxBlobBytes: flags['max-blob-bytes'],
    quotaBytes: flags['quota-bytes'],
    generations: flags.generations,
    olderCopyMs: flags['older-copy-seconds'] * 1000,
    cacheBytes: flags['cache-bytes'],
    namespaceQuotaBytes: flags['namespace-quota-bytes'] || Math.floor(flags['quota-bytes'] / 2),
    maxUploads: flags['max-uploads'],
    maxUploadsPerNamespace: flags['max-uploads-per-namespace'],
  });
  if (store.droppedAtOpen.length > 0)
    log.warn(
      'dropped stored copies whose sequence is far in the future (planted, or from a clock far ahead)',
      {
        copies: store.droppedAtOpen.slice(0, 20),
        count: store.droppedAtOpen.length,
      },
    );
  const peerUser = `system:serviceaccount:${flags['peer-service-account']}`;
  const audienceBase = flags['token-audience'];
  const reviewer = new TokenReviewer(kc, {
    ...(audienceBase ? { audience: helperAudience(flags['node-name'], audienceBase) } : {}),
    allowedUsers: [`system:serviceaccount:${flags['allowed-service-account']}`, peerUser],
    cacheMs: flags['token-cache-seconds'] * 1000,
    graceMs: flags['token-grace-seconds'] * 1000,
  });
  const outbox = new ReportOutbox({ capacity: 10_000, batchMs: flags['report-batch-ms'] });
  const [peerNamespace, peerAccount] = flags['peer-service-account'].split(':') as [string, string];
  if (!audienceBase)
    log.warn("sending copies with the kubeconfig's token: only helpers without an audience accept it");
  const credentials = helperCredentials(
    kc,
    audienceBase,
    audienceBase
      ? {
          namespace: peerNamespace,
          serviceAccount: peerAccount,
          pod: { name: flags['pod-name'], uid: flags['pod-uid'] },
        }
      : undefined,
  );
  // The metrics read the puller's assignments; the puller reports into the metrics (once pulls run).
  const puller = new NodePuller({
    outbox,
    authorization: (node) => credentials.header(node),
    concurrency: flags['pull-concurrency'],
    perNamespace: flags['pull-concurrency-per-namespace'],
    log,
    pull: pullState,
    peerAgent: () => trust.agent(),
    observe: (r) => metrics.observePull(r),
  });
  const metrics = helperMetrics(store, puller);
  const prober = new PodProber({
    report: (fault) => {
      metrics.podFaults.inc();
      outbox.addFault(fault);
    },
    log,
  });
  // Probes and metrics first, on their own plain port: the kubelet sees the helper start and wait.
  let notReady: string | undefined = 'waiting for the helper CA';
  const health = Fastify({ logger: false });
  registerProbes(health, metrics.registry, { healthy: () => true, notReadyBecause: () => notReady });
  await health.listen({ host: wildcardAddress(flags['pod-ip']), port: flags['health-port'] });
  const trust = new PeerTrust(kc, flags.namespace, log);
  // Set once the first certificate is issued; renewals and the shutdown hook reach the server through it.
  const api: { app?: ReturnType<typeof buildHelperServer> } = {};
  const serving = new ServingCertificate({
    kc,
    nodeName: flags['node-name'] ?? 'unknown',
    podIP: flags['pod-ip'],
    keepDir: join(flags['state-dir'], 'tls'),
    caPem: () => trust.caPem(),
    log,
    // New connections get the renewed certificate; open ones keep theirs.
    onRenewed: (c) =>
      (api.app?.server as unknown as TlsServer | undefined)?.setSecureContext({
        key: c.keyPem,
        cert: c.certPem,
      }),
  });
  const starting = new AbortController();
  onShutdown(log, async () => {
    starting.abort();
    serving.stop();
    trust.stop();
    puller.stop();
    prober.stop();
    await api.app?.close();
    await health.close();
  });
  await trust.start(starting.signal);
  notReady = 'waiting for a serving certificate (the leading controller signs it)';
  const first = await serving.obtain();
  log.info('serving certificate issued', {
    serial: first.info.serial,
    notAfter: first.info.notAfter.toISOString(),
  });
  const app = buildHelperServer({
    tls: { key: first.keyPem, cert: first.certPem },
    store,
    nodeName: flags['node-name'],
    review: (a) => reviewer.review(a),
    puller,
    prober,
    outbox,
    metrics,
    peerUser,
    // The leader asks for a second opinion on a silent helper of another node before it fences that node.
    peerProbe: { healthPort: flags['health-port'], podIP: flags['pod-ip'] },
    nodeIP: flags['node-ip'],
    log,
  });
  api.app = app;
  await app.listen({ host: wildcardAddress(flags['pod-ip']), port: flags.port });
  notReady = undefined;
  log.info('helper started', {
    node: flags['node-name'],
    port: flags.port,
    healthPort: flags['health-port'],
    blobs: store.list().length,
    usedBytes: store.usedBytes(),
  });
}
