// `npm run bench [-- --quick] [-- --trials N] [-- --only a,b]`: measures the operator on the local cluster.
// Figures are medians over N trials; JSON goes to .local/bench/latest.json, a markdown table to stdout.
import { execFileSync } from 'node:child_process';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Watch,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import {
  GROUP,
  HELPER_API,
  helperAudience,
  HELPER_HEALTH_PORT,
  OPERATOR_NAMESPACE,
  PLURAL,
  READINESS_GATE,
  VERSION,
  type PullReport,
} from '../src/api/index.js';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../src/cli/flags.js';
import {
  failoverTrial,
  injectFault,
  isReady,
  nodesHealed,
  readyPod,
  stats,
  type Fault as TrialFault,
} from '../harness/failover.js';
import { appDeployment } from '../harness/deployment.js';
import { placeBesideLeader } from '../harness/leader-placement.js';
import { createFixtures, fixturePod } from '../harness/fixture-app.js';
import { eventually } from '../harness/poll.js';
import { helperFetch } from '../harness/helper-https.js';
import {
  createCertificateAuthority,
  createServingRequest,
  generateKeyPair,
  parseRequest,
  privateKeyPem,
  signServingCertificate,
} from '../src/tls/pki.js';
import { COUNT_APP_IMAGE } from '../harness/images.js';

const FLAGS = {
  quick: { kind: 'bool', default: false, help: '3 trials per scenario instead of 10' },
  trials: { kind: 'int', min: 1, max: 1000, default: 10, help: 'trials per scenario' },
  only: {
    kind: 'string',
    default: 'race,checkpoint,failover,baseline,scale',
    pattern: {
      test: /^(race|checkpoint|failover|baseline|scale)(,(race|checkpoint|failover|baseline|scale))*$/,
      allowed: 'a comma list of race, checkpoint, failover, baseline, scale',
    },
    help: 'scenarios to run',
  },
  'scale-sizes': {
    kind: 'string',
    default: '1024,1048576',
    pattern: { test: /^\d+(,\d+)*$/, allowed: 'a comma list of state sizes in bytes' },
    help: 'state sizes of the scale scenario',
  },
  faults: {
    kind: 'string',
    default: 'crash,delete,partition,leader-partition',
    pattern: {
      test: /^(crash|delete|partition|leader-partition)(,(crash|delete|partition|leader-partition))*$/,
      allowed: 'a comma list of crash, delete, partition, leader-partition',
    },
    help: "faults of the failover and baseline scenarios (leader-partition: the app's node is the controller leader's; operator only)",
  },
  'baseline-partition-trials': {
    kind: 'int',
    min: 1,
    max: 1000,
    default: 3,
    help: 'partition trials without the operator (each waits ~5 min for Kubernetes to evict the Pod)',
  },
} satisfies FlagSpecs;

/** A trial's fault; leader-partition is a partition of the node the controller leader and the app share. */
type Fault = TrialFault | 'leader-partition';
const FAULTS: Fault[] = ['crash', 'delete', 'partition', 'leader-partition'];

// Clients are made in main(), once the local cluster (and so its kubeconfig) is up.
let core: CoreV1Api;
let appsApi: AppsV1Api;
let custom: CustomObjectsApi;
let kubeconfig: KubeConfig;
const NS = 'bench';
const LATEST = '.local/bench/latest.json';
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
}
const median = (xs: number[]) => quantile(xs, 0.5);

const kubectl = (...args: string[]) =>
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', ...args], { encoding: 'utf8' });

const until = <T>(what: string, f: () => Promise<T | undefined | false>, ms = 120_000) =>
  eventually(what, f, ms);

function deployment(
  name: string,
  opts: { image: string; command?: string[]; gate: boolean; replicas?: number; env?: Record<string, string> },
): V1Deployment {
  return appDeployment(name, NS, opts.replicas ?? 1, {
    terminationGracePeriodSeconds: 10,
    ...(opts.gate ? { readinessGates: [{ conditionType: READINESS_GATE }] } : {}),
    containers: [
      {
        name: 'app',
        image: opts.image,
        ...(opts.command ? { command: opts.command } : {}),
        env: Object.entries(opts.env ?? {}).map(([name, value]) => ({ name, value })),
        readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
      },
    ],
  });
}

async function policy(name: string, spec: Record<string, unknown>): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'PullStatePolicy',
      metadata: { name },
      spec: { selector: { matchLabels: { app: name } }, ...spec },
    },
  });
}

async function fresh(): Promise<void> {
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await until('old bench namespace gone', async () =>
    core.readNamespace({ name: NS }).then(
      () => false,
      () => true,
    ),
  );
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await until('default ServiceAccount', () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: NS }),
  );
}

const COUNT_IMAGE = COUNT_APP_IMAGE;

/**
 * The raw baseline of a checkpoint: GET the state from the Pod and stream it into a plain HTTP server on
 * another node that writes and fsyncs it (test/fixtures/raw-sink.mjs). The least any checkpoint can cost.
 * With `tls`, the same into the sink's HTTPS port: what the copy costs once it is encrypted, as the helpers'
 * copies are.
 */
function rawCopy(source: string, sink: string, tls?: HttpsAgent): Promise<number> {
  const started = performance.now();
  const send = tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const get = httpRequest(source, { agent: rawAgent }, (res) => {
      const put = send(sink, { method: 'PUT', agent: tls ?? rawAgent }, (answer) => {
        answer.resume();
        answer.on('end', () =>
          answer.statusCode === 201
            ? resolve(Math.round((performance.now() - started) * 10) / 10)
            : reject(new Error(`raw sink answered ${answer.statusCode}`)),
        );
      });
      put.on('error', reject);
      put.on('socket', (socket) => socket.setNoDelay(true));
      res.pipe(put);
    });
    get.on('error', reject);
    get.end();
  });
}
const rawAgent = new HttpAgent({ keepAlive: true });

/**
 * A raw sink Pod on `node`, its data on the node's disk (emptyDir), and its URLs once it answers: plain, and
 * HTTPS with a certificate for its IP from a CA of the benchmark's own (the agent trusts only that CA).
 */
async function rawSink(node: string): Promise<{ url: string; tlsUrl: string; tls: HttpsAgent }> {
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'raw-sink', labels: { app: 'raw-sink' } },
      spec: {
        ...fixturePod(
          'raw-sink.mjs',
          {
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
            readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
          },
          { volumes: [{ name: 'data', emptyDir: {} }] },
        ),
        nodeName: node,
      },
    },
  });
  const pod = await until('raw sink Ready', () => readyPod(NS, 'app=raw-sink'));
  const ip = pod.status!.podIP!;
  const now = new Date();
  const ca = await createCertificateAuthority('bench raw sink CA', now, 3_600_000);
  const keys = await generateKeyPair();
  const cert = await signServingCertificate(
    ca,
    await parseRequest(await createServingRequest(keys, 'raw-sink', [ip])),
    new Date(now.getTime() - 60_000),
    new Date(now.getTime() + 3_600_000),
  );
  const res = await fetch(`http://${ip}:8080/tls`, {
    method: 'POST',
    body: JSON.stringify({ cert, key: await privateKeyPem(keys.privateKey) }),
  });
  if (res.status !== 204)
    throw new Error(`raw sink refused its certificate: ${res.status} ${await res.text()}`);
  return {
    url: `http://${ip}:8080`,
    tlsUrl: `https://${ip}:8443`,
    tls: new HttpsAgent({ keepAlive: true, ca: ca.certPem }),
  };
}

async function checkpointLatency(trials: number) {
  // The controller's identity, for the audience of one helper's node (what the controller sends it).
  const tokens = new Map<string, string>();
  const tokenFor = async (node: string) => {
    if (!tokens.has(node))
      tokens.set(
        node,
        (
          await core.createNamespacedServiceAccountToken({
            name: 'pull-state-controller',
            namespace: OPERATOR_NAMESPACE,
            body: { spec: { audiences: [helperAudience(node)] } },
          })
        ).status!.token,
      );
    return tokens.get(node)!;
  };
  await createFixtures(core, NS);
  const out: Record<
    string,
    { p50Ms: number; p90Ms: number; rawP50Ms: number; ratio: number; rawTlsP50Ms: number; ratioTls: number }
  > = {};
  for (const [label, bytes] of [
    ['1KiB', 1024],
    ['1MiB', 1024 ** 2],
    ['16MiB', 16 * 1024 ** 2],
  ] as const) {
    const name = `size-${label.toLowerCase()}`;
    await appsApi.createNamespacedDeployment({
      namespace: NS,
      body: deployment(name, {
        image: COUNT_IMAGE,
        gate: false,
        env: { STATE_PADDING_BYTES: String(bytes) },
      }),
    });
    // A policy, so the helpers hold the Pod's copies (they refuse copies of Pods the operator does not
    // protect); its own pulls come once within seconds, then hourly, so they rarely meet a measured one.
    await policy(name, { intervalSeconds: 3600, maxStateBytes: 64 * 1024 ** 2 });
    const policyUID = (
      (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        name,
      })) as { metadata: { uid: string } }
    ).metadata.uid;
    const pod = await until(`${name} Ready`, () => readyPod(NS, `app=${name}`));
    const helpers = (
      await core.listNamespacedPod({
        namespace: OPERATOR_NAMESPACE,
        labelSelector: 'app.kubernetes.io/component=helper',
      })
    ).items;
    const target = helpers.find((h) => h.spec?.nodeName !== pod.spec?.nodeName)!;
    const puller = helpers.find((h) => h.spec?.nodeName === pod.spec?.nodeName)!;
    const sink = await rawSink(target.spec!.nodeName!);
    const source = `http://${pod.status!.podIP}:8080/state`;
    const times: number[] = [];
    const raw: number[] = [];
    const rawTls: number[] = [];
    // What the operator does every interval: the helper of the Pod's node GETs the state and streams it to
    // the helper of another node (a one-off pull through its API; the duration is the helper's own figure).
    // The first pulls (connections, JIT warm-up) are not measured. Operator and raw copies alternate, so
    // both meet the same machine load.
    const warmUp = 10;
    const heldBy = Date.now() + 60_000;
    for (let i = 0; i < warmUp + Math.max(trials * 5, 30); i++) {
      const res = await helperFetch(kubeconfig, `https://${puller.status!.podIP}:9500${HELPER_API}/pulls`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await tokenFor(puller.spec!.nodeName!)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          namespace: NS,
          policy: name,
          policyUID,
          pod: pod.metadata!.name!,
          podUID: pod.metadata!.uid!,
          podIP: pod.status!.podIP!,
          port: 8080,
          path: '/state',
          intervalMs: 1000,
          timeoutMs: 30_000,
          maxBytes: 64 * 1024 ** 2,
          restartCount: 0,
          targets: [{ node: target.spec!.nodeName!, url: `https://${target.status!.podIP}:9500` }],
          lastSequence: 0,
        }),
      });
      if (!res.ok) throw new Error(`helper answered ${res.status}: ${await res.text()}`);
      const r = (await res.json()) as PullReport;
      // Until the controller has told the target to hold the new Pod, the target refuses its copies.
      if (!r.ok && i < warmUp && Date.now() < heldBy && /NotHeld/.test(r.message)) {
        i--;
        await new Promise((res) => setTimeout(res, 500));
        continue;
      }
      if (!r.ok) throw new Error(`pull failed: ${r.message}`);
      const rawMs = await rawCopy(source, `${sink.url}/copy-${i % 3}`);
      const rawTlsMs = await rawCopy(source, `${sink.tlsUrl}/tls-${i % 3}`, sink.tls);
      if (i >= warmUp) {
        times.push(r.durationMs);
        raw.push(rawMs);
        rawTls.push(rawTlsMs);
      }
    }
    const p50Ms = median(times);
    const rawP50Ms = median(raw);
    const rawTlsP50Ms = median(rawTls);
    out[label] = {
      p50Ms,
      p90Ms: quantile(times, 0.9),
      rawP50Ms,
      ratio: Math.round((p50Ms / rawP50Ms) * 100) / 100,
      rawTlsP50Ms,
      ratioTls: Math.round((p50Ms / rawTlsP50Ms) * 100) / 100,
    };
    sink.tls.destroy();
    log(
      `checkpoint ${label}: p50 ${p50Ms} ms, raw baseline p50 ${rawP50Ms} ms (x${out[label].ratio}), raw over TLS ${rawTlsP50Ms} ms (x${out[label].ratioTls})`,
    );
    await appsApi.deleteNamespacedDeployment({ name, namespace: NS });
    await core.deleteNamespacedPod({ name: 'raw-sink', namespace: NS, gracePeriodSeconds: 0 });
    await until('raw sink gone', async () => !(await readyPod(NS, 'app=raw-sink')));
    await sleep(1000);
  }
  return out;
}

async function failover(
  trials: number,
  withOperator: boolean,
  faults: readonly Fault[],
  partitionTrials = trials,
) {
  const name = withOperator ? 'count' : 'plain';
  await appsApi.createNamespacedDeployment({
    namespace: NS,
    body: deployment(name, { image: COUNT_IMAGE, gate: withOperator }),
  });
  if (withOperator) await policy(name, { mode: 'http-sf', intervalSeconds: 1 });
  const results: Record<Fault, { ms: number[]; lost: number[] }> = {
    crash: { ms: [], lost: [] },
    delete: { ms: [], lost: [] },
    partition: { ms: [], lost: [] },
    'leader-partition': { ms: [], lost: [] },
  };
  for (const fault of faults) {
    // Without the operator there is no leader: plain Kubernetes has nothing to place.
    if (fault === 'leader-partition' && !withOperator) continue;
    const partition = fault === 'partition' || fault === 'leader-partition';
    for (let i = 0; i < (partition ? partitionTrials : trials); i++) {
      if (fault === 'leader-partition') await placeBesideLeader(kubeconfig, NS, name, `app=${name}`, log);
      const pod = await until(`${name} Ready`, () => readyPod(NS, `app=${name}`), 300_000);
      await sleep(2500); // at least one checkpoint of this Pod
      const r = await failoverTrial(NS, `app=${name}`, partition ? 'partition' : fault, {
        timeoutMs: withOperator ? 120_000 : 400_000,
        plain: !withOperator,
      });
      results[fault].ms.push(r.faultToReadyMs);
      results[fault].lost.push(r.lostUpdates);
      log(
        `${withOperator ? 'operator' : 'baseline'} ${fault} #${i + 1}: ready after ${r.faultToReadyMs} ms, lost ${r.lostUpdates} updates (pod ${pod.metadata!.name} -> ${r.podAfter})`,
      );
      // The kubelet backs off restarting a container that keeps crashing (1 s doubling here, 10 s in
      // Kubernetes): crash trials on one Pod would measure that back-off. Each trial gets a fresh Pod.
      if (fault === 'crash') {
        await core.deleteNamespacedPod({ name: r.podAfter, namespace: NS });
        await until('the crashed Pod replaced', async () => {
          const p = await readyPod(NS, `app=${name}`);
          return p && p.metadata!.name !== r.podAfter;
        });
      }
      if (partition) await until('all nodes Ready and unfenced', nodesHealed);
    }
  }
  await appsApi.deleteNamespacedDeployment({ name, namespace: NS });
  return results;
}

/**
 * The real kubelet's restart race for the count app, and Pod start-up: for each sample a fresh Pod (so the
 * restart back-off does not count) is created and timed to Ready, then its container is SIGKILLed and two
 * moments are taken: when the new process first answers, and when a watch sees restartCount go up.
 * windowMs > 0 means the app answered before the API showed the restart.
 */
async function restartRace(samples: number) {
  const results: { createToReadyMs: number; appAnswersMs: number; apiRestartMs: number; windowMs: number }[] =
    [];
  const kc = new KubeConfig();
  kc.loadFromFile('.local/kubeconfig');
  for (let i = 0; i < samples; i++) {
    const name = `race-${i}`;
    const t0 = performance.now();
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name, namespace: NS },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'app',
              image: COUNT_IMAGE,
              readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    });
    const pod = await until(
      `${name} Ready`,
      async () => {
        const p = await core.readNamespacedPod({ name, namespace: NS });
        return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
      },
      60_000,
    );
    const createToReadyMs = Math.round(performance.now() - t0);
    await sleep(2000);
    const ip = pod.status!.podIP!;
    const before = (await stats(ip, 1000))?.count ?? 0;
    let apiAt = 0;
    const watch = await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/pods`,
      { fieldSelector: `metadata.name=${name}` },
      (_type: string, obj: V1Pod) => {
        if (!apiAt && (obj.status?.containerStatuses?.[0]?.restartCount ?? 0) > 0) apiAt = performance.now();
      },
      () => undefined,
    );
    await sleep(300);
    const k0 = performance.now();
    await injectFault('crash', `${NS}/${name}`);
    let answerAt = 0;
    while (!answerAt && performance.now() - k0 < 60_000) {
      const s = await stats(ip, 100);
      if (s && s.count < before) answerAt = performance.now();
      else await sleep(5);
    }
    while (!apiAt && performance.now() - k0 < 60_000) await sleep(5);
    watch.abort();
    const r = {
      createToReadyMs,
      appAnswersMs: Math.round(answerAt - k0),
      apiRestartMs: Math.round(apiAt - k0),
      windowMs: Math.round(apiAt - answerAt),
    };
    log(`race ${i + 1}/${samples}: ${JSON.stringify(r)}`);
    results.push(r);
    await core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 });
  }
  return results;
}

/** Prometheus text: the value of a sample line `name{labels} value`. */
interface ScaleResult {
  pods: number;
  stateBytes: number;
  loadAverage: number;
  cores: number;
  rssMiB: number;
  helperCoresMax: number;
  helperRssMiBMax: number;
  checkpointP50Ms: number;
  checkpointP99Ms: number;
  statusWritesPerPolicyPerMinute: number;
  pullsPerSecond: number;
  failedPullsPerSecond: number;
}

/** The operator's Pods with their restart counts, and the leader: changes when any of them restarts. */
function operatorProcesses(): string {
  const pods = kubectl(
    'get',
    'pods',
    '-n',
    OPERATOR_NAMESPACE,
    '-o',
    'jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount},{end}',
  );
  const leader = kubectl(
    'get',
    'lease',
    '-n',
    OPERATOR_NAMESPACE,
    'pull-state-operator-leader',
    '-o',
    'jsonpath={.spec.holderIdentity}',
  );
  return `${pods}|${leader}`;
}

function metric(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

/** A quantile of a histogram over the interval between two scrapes (the bucket's upper bound). */
function histogramQuantile(a: string, b: string, name: string, q: number): number {
  const buckets = (text: string) =>
    [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm'))].map((m) => ({
      le: m[1] === '+Inf' ? Infinity : Number(m[1]),
      n: Number(m[2]),
    }));
  const before = buckets(a);
  const after = buckets(b).map((x, i) => ({ le: x.le, n: x.n - (before[i]?.n ?? 0) }));
  const total = after[after.length - 1]?.n ?? 0;
  return after.find((x) => x.n >= q * total)?.le ?? NaN;
}

async function scale(pods: number, stateBytes: number) {
  // A name of its own per run: a policy created again under an earlier run's name would take over that run's
  // copies (still within their retention) and restore them into these Pods.
  const name = `many-${stateBytes}-${Date.now().toString(36)}`;
  await createFixtures(core, NS);
  await appsApi.createNamespacedDeployment({
    namespace: NS,
    body: appDeployment(
      name,
      NS,
      pods,
      fixturePod('state-app.mjs', {
        env: [{ name: 'STATE_BYTES', value: String(stateBytes) }],
        // The kubelet's default period: 100 readiness probes a second (with their timeouts under load) kept
        // 92 of 100 Pods not Ready for minutes on 2 cores. The operator's pulls run at 1 s whatever this is.
        readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10, timeoutSeconds: 5 },
      }),
    ),
  });
  await policy(name, { mode: 'http', intervalSeconds: 1 });
  await until(
    `${pods} Pods checkpointed`,
    async () => {
      const p = (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        name,
      })) as { status?: { checkpointSummary?: { pods?: number; withoutCheckpoint?: number } } };
      // Every Pod checkpointed once; whether later pulls keep up is what the run measures.
      const sum = p.status?.checkpointSummary;
      return (sum?.pods ?? 0) >= pods && sum?.withoutCheckpoint === 0;
    },
    600_000,
  );
  // Starting 100 app processes saturates a 2-core machine for a while: measure once every Pod is Ready and
  // the load has settled, and again if the leader changed or an operator process restarted meanwhile.
  await until(
    `${pods} Pods Ready`,
    async () =>
      (await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` })).items.filter(isReady)
        .length >= pods,
    600_000,
  );
  await until('load settled', async () => loadavg()[0]! < cpus().length * 4, 300_000).catch(() =>
    log(`load still ${loadavg()[0]!.toFixed(1)} after 5 min; measuring anyway`),
  );
  let result: ScaleResult | undefined;
  for (let attempt = 1; attempt <= 3 && !result; attempt++) {
    const before = operatorProcesses();
    const lease = kubectl(
      'get',
      'lease',
      '-n',
      OPERATOR_NAMESPACE,
      'pull-state-operator-leader',
      '-o',
      'jsonpath={.spec.holderIdentity}',
    );
    const ip = kubectl('get', 'pod', '-n', OPERATOR_NAMESPACE, lease, '-o', 'jsonpath={.status.podIP}');
    const helperIPs = (
      await core.listNamespacedPod({
        namespace: OPERATOR_NAMESPACE,
        labelSelector: 'app.kubernetes.io/component=helper',
      })
    ).items.map((h) => h.status!.podIP!);
    const scrape = async (host: string, port: number) =>
      (await fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const sample = async () => ({
      controller: await scrape(ip, 9090),
      helpers: await Promise.all(helperIPs.map((h) => scrape(h, HELPER_HEALTH_PORT))),
    });
    const a = await sample();
    const t0 = Date.now();
    await sleep(60_000);
    const b = await sample();
    if (operatorProcesses() !== before) {
      log(
        `scale: an operator process restarted or the leader changed during the window (attempt ${attempt}); again`,
      );
      continue;
    }
    const secs = (Date.now() - t0) / 1000;
    const cores = (x: string, y: string) =>
      (metric(y, 'process_cpu_seconds_total') - metric(x, 'process_cpu_seconds_total')) / secs;
    const helperCores = a.helpers.map((h, i) => cores(h, b.helpers[i]!));
    // A series a process never incremented is absent: it counts as 0.
    const rate = (text: string, from: string, to: string) =>
      ((metric(to, text) || 0) - (metric(from, text) || 0)) / secs;
    const helperRate = (text: string) =>
      a.helpers.reduce((sum, h, i) => sum + rate(text, h, b.helpers[i]!), 0);
    result = {
      pods,
      stateBytes,
      loadAverage: Math.round(loadavg()[0]! * 10) / 10,
      cores: cores(a.controller, b.controller),
      rssMiB: Math.round(metric(b.controller, 'process_resident_memory_bytes') / 1024 ** 2),
      helperCoresMax: Math.max(...helperCores),
      helperRssMiBMax: Math.max(
        ...b.helpers.map((h) => Math.round(metric(h, 'process_resident_memory_bytes') / 1024 ** 2)),
      ),
      checkpointP50Ms:
        histogramQuantile(a.controller, b.controller, 'pullstate_pull_duration_seconds', 0.5) * 1000,
      checkpointP99Ms:
        histogramQuantile(a.controller, b.controller, 'pullstate_pull_duration_seconds', 0.99) * 1000,
      statusWritesPerPolicyPerMinute: rate('pullstate_status_writes_total', a.controller, b.controller) * 60,
      pullsPerSecond: helperRate('pullstate_helper_pulls_total\\{result="Succeeded"\\}'),
      failedPullsPerSecond: helperRate('pullstate_helper_pulls_total\\{result="failure"\\}'),
    };
  }
  if (!result) throw new Error('scale: no quiet 60 s window in 3 attempts');
  log(`scale: ${JSON.stringify(result)}`);
  await appsApi.deleteNamespacedDeployment({ name, namespace: NS });
  await until(
    'scale Pods gone',
    async () =>
      (await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` })).items.length === 0,
    300_000,
  );
  return result;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help'))
    return void process.stdout.write(
      helpText(
        'npm run bench -- [flags]',
        'Benchmarks on the local cluster (started if needed): checkpoint latency, failover vs plain Kubernetes, scale.',
        FLAGS,
      ),
    );
  const flags = parseFlags(args, FLAGS);
  const trials = flags.quick ? 3 : flags.trials;
  const only = new Set(flags.only.split(','));
  const faults = flags.faults.split(',') as Fault[];
  log('starting the local cluster and installing the operator');
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const kc = new KubeConfig();
  kc.loadFromFile('.local/kubeconfig');
  kubeconfig = kc;
  core = kc.makeApiClient(CoreV1Api);
  appsApi = kc.makeApiClient(AppsV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  kubectl('apply', '--server-side', '--force-conflicts', '-k', '.');
  await until(
    'operator Ready',
    async () =>
      kubectl('get', 'pods', '-n', OPERATOR_NAMESPACE, '--no-headers')
        .split('\n')
        .filter((l) => / 1\/1 /.test(l)).length >= 5,
  );
  await fresh();
  const date = new Date().toISOString();
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}`;
  const out: Record<string, unknown> = { date, machine, trials };
  if (only.has('race')) out.race = await restartRace(5);
  if (only.has('checkpoint')) out.checkpoint = await checkpointLatency(trials);
  if (only.has('failover')) out.failover = await failover(trials, true, faults);
  if (only.has('baseline'))
    out.baseline = await failover(
      trials,
      false,
      faults,
      Math.min(trials, flags['baseline-partition-trials']),
    );
  if (only.has('scale')) {
    const pods = flags.quick ? 30 : 100;
    const results: ScaleResult[] = [];
    for (const size of flags['scale-sizes'].split(',').map(Number)) results.push(await scale(pods, size));
    out.scale = results;
  }
  // A run of some scenarios keeps the others' figures from the previous run, marked with that run's date.
  const previous = existsSync(LATEST)
    ? (JSON.parse(readFileSync(LATEST, 'utf8')) as Record<string, unknown>)
    : {};
  const carriedOver: Record<string, unknown> = {};
  for (const key of ['race', 'checkpoint', 'failover', 'baseline', 'scale'])
    if (!only.has(key) && previous[key] !== undefined) {
      out[key] = previous[key];
      carriedOver[key] =
        (previous.carriedOver as Record<string, unknown> | undefined)?.[key] ?? previous.date;
    }
  if (Object.keys(carriedOver).length) out.carriedOver = carriedOver;
  const f = out.failover as Awaited<ReturnType<typeof failover>> | undefined;
  const base = out.baseline as Awaited<ReturnType<typeof failover>> | undefined;
  const cp = out.checkpoint as Awaited<ReturnType<typeof checkpointLatency>> | undefined;
  Object.assign(out, {
    crashFailoverP50Ms: f && median(f.crash.ms),
    deleteFailoverP50Ms: f && median(f.delete.ms),
    partitionFailoverP50Ms: f && median(f.partition.ms),
    leaderPartitionFailoverP50Ms: f && median(f['leader-partition']?.ms ?? []),
    maxLostUpdates: f && Math.max(0, ...FAULTS.flatMap((k) => f[k]?.lost ?? [])),
    checkpoint1MiBP50Ms: cp?.['1MiB']?.p50Ms,
    baselineCrashP50Ms: base && median(base.crash.ms),
    baselineDeleteP50Ms: base && median(base.delete.ms),
    baselinePartitionP50Ms: base && median(base.partition.ms),
  });
  mkdirSync('.local/bench', { recursive: true });
  writeFileSync(LATEST, JSON.stringify(out, null, 2));
  const rows: string[] = [
    '| scenario | with operator (p50) | lost updates (max) | plain Kubernetes (p50) | state kept (plain) |',
    '|---|---|---|---|---|',
  ];
  for (const fault of FAULTS) {
    if (!f && !base) break;
    // Results kept from a run before this fault existed have no entry for it.
    const mine = f?.[fault]?.ms ?? [];
    const plain = base?.[fault]?.ms ?? [];
    if (!mine.length && !plain.length) continue;
    rows.push(
      `| ${fault} → Ready | ${mine.length ? `${median(mine)} ms (max ${Math.max(...mine)} ms)` : '-'} | ${mine.length ? Math.max(...f![fault].lost) : '-'} | ${plain.length ? `${median(plain)} ms` : '-'} | none |`,
    );
  }
  if (cp)
    for (const [k, v] of Object.entries(cp))
      rows.push(
        `| checkpoint ${k} | ${v.p50Ms} ms (p90 ${v.p90Ms} ms; raw baseline ${v.rawP50Ms} ms, ×${v.ratio}; raw over TLS ${v.rawTlsP50Ms ?? '-'} ms, ×${v.ratioTls ?? '-'}) | | | |`,
      );
  const race = out.race as Awaited<ReturnType<typeof restartRace>> | undefined;
  if (race) {
    rows.push(`| Pod create → Ready (count app) | ${median(race.map((r) => r.createToReadyMs))} ms | | | |`);
    rows.push(
      `| SIGKILL → app answers again | ${median(race.map((r) => r.appAnswersMs))} ms | | | |`,
      `| SIGKILL → restartCount in a watch | ${median(race.map((r) => r.apiRestartMs))} ms | | | |`,
      `| restart race windows (API − app; > 0: app first) | ${race.map((r) => r.windowMs).join(', ')} ms | | | |`,
    );
  }
  const scales = out.scale as Awaited<ReturnType<typeof scale>>[] | undefined;
  for (const sc of Array.isArray(scales) ? scales : []) {
    const what = `${sc.pods} Pods × ${sc.stateBytes >= 1024 ** 2 ? `${sc.stateBytes / 1024 ** 2} MiB` : `${sc.stateBytes / 1024} KiB`} at 1 s`;
    rows.push(`| controller CPU / RSS, ${what} | ${sc.cores.toFixed(3)} cores / ${sc.rssMiB} MiB | | | |`);
    rows.push(
      `| busiest helper CPU / RSS, ${what} | ${sc.helperCoresMax.toFixed(3)} cores / ${sc.helperRssMiBMax} MiB | | | |`,
    );
    rows.push(
      `| checkpoint p50 / p99 (histogram bucket), ${what} | ${sc.checkpointP50Ms} / ${sc.checkpointP99Ms} ms | | | |`,
    );
    rows.push(
      `| pulls per second (good / failed), status writes per policy per minute, ${what} | ${sc.pullsPerSecond.toFixed(1)} / ${sc.failedPullsPerSecond.toFixed(1)}, ${sc.statusWritesPerPolicyPerMinute.toFixed(1)} | | | |`,
    );
  }
  if (f && base) {
    writeFileSync('.local/bench/failover.svg', failoverChart(f, base));
    rows.push('', 'Chart: .local/bench/failover.svg');
  }
  process.stdout.write(
    `Benchmark ${date} on ${machine}, ${trials} trials${out.carriedOver ? ` (kept from earlier runs: ${JSON.stringify(out.carriedOver)})` : ''}\n\n${rows.join('\n')}\n\nJSON: ${LATEST}\n`,
  );
}

type FailoverResults = Awaited<ReturnType<typeof failover>>;

/** Every trial's fault-to-Ready time as a dot, per fault, with and without the operator (log scale). */
function failoverChart(f: FailoverResults, base: FailoverResults): string {
  const faults = FAULTS.filter((k) => f[k]?.ms.length || base[k]?.ms.length);
  const all = [...faults.flatMap((k) => f[k]?.ms ?? []), ...faults.flatMap((k) => base[k]?.ms ?? [])].filter(
    (x) => x > 0,
  );
  const lo = Math.log10(Math.max(100, Math.min(...all) / 1.5));
  const hi = Math.log10(Math.max(...all) * 1.5);
  const W = 720;
  const left = 170;
  const x = (ms: number) => left + ((Math.log10(Math.max(ms, 1)) - lo) / (hi - lo)) * (W - left - 20);
  const rows = faults.flatMap((k) => [
    { label: `${k}, operator`, ms: f[k]?.ms ?? [], color: '#1f77b4' },
    { label: `${k}, plain Kubernetes`, ms: base[k]?.ms ?? [], color: '#d62728' },
  ]);
  const H = 40 + rows.length * 28 + 40;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="20" font-size="14">Fault to Ready with state (ms, log scale), every trial; bar = median</text>`,
  ];
  rows.forEach((r, i) => {
    const y = 45 + i * 28;
    parts.push(`<text x="10" y="${y + 4}">${r.label}</text>`);
    parts.push(`<line x1="${left}" x2="${W - 20}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    for (const ms of r.ms)
      parts.push(`<circle cx="${x(ms).toFixed(1)}" cy="${y}" r="4" fill="${r.color}" fill-opacity="0.6"/>`);
    if (r.ms.length)
      parts.push(
        `<line x1="${x(median(r.ms)).toFixed(1)}" x2="${x(median(r.ms)).toFixed(1)}" y1="${y - 9}" y2="${y + 9}" stroke="#000" stroke-width="2"/>`,
      );
  });
  const axisY = 45 + rows.length * 28;
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const ms = 10 ** e;
    parts.push(
      `<line x1="${x(ms)}" x2="${x(ms)}" y1="35" y2="${axisY}" stroke="#ccc" stroke-dasharray="2,3"/>`,
    );
    parts.push(
      `<text x="${x(ms)}" y="${axisY + 16}" text-anchor="middle">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench: ${err instanceof UsageError ? 'error: ' : ''}${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(err instanceof UsageError ? 2 : 1);
});
