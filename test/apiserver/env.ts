// What the API-server tier's tests share: clients of the tier's kube-apiserver (global-setup.ts starts it),
// objects made the way the kubelet and the scheduler would leave them (there are none), and the controller's
// Manager run in-process with a fake helper client (helpers are processes on nodes; there are no nodes).
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CertificatesV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  type V1PodStatus,
} from '@kubernetes/client-node';
import {
  GROUP,
  HELPER_COMPONENT,
  LABELS,
  MANAGED_BY_VALUE,
  PLURAL,
  READINESS_GATE,
  RESTORE_PLURAL,
  VERSION,
  type IPullStatePolicy,
  type IPullStateRestore,
  type PullStatePolicySpec,
} from '../../src/api/index.js';
import type {
  AssignmentSet,
  BlobMeta,
  HoldSet,
  Inventory,
  PullAssignment,
  PullReport,
  ReportBatch,
  RestoreRequest,
} from '../../src/api/helper-api.js';
import { Manager } from '../../src/controller/manager.js';
import { createControllerMetrics } from '../../src/controller/metrics.js';
import type { HelperTarget, RestoreAnswer } from '../../src/controller/kube/helper-client.js';
import { KubeconfigCredentials } from '../../src/kube/bearer-token.js';
import { createLogger } from '../../src/runtime/logger.js';
import { createCertificateAuthority, type CertificateAuthority } from '../../src/tls/pki.js';
import { eventually } from '../../harness/poll.js';
import { KUBECONFIG } from './paths.js';

export { eventually };

export const kc = new KubeConfig();
kc.loadFromFile(KUBECONFIG);
export const core = kc.makeApiClient(CoreV1Api);
export const custom = kc.makeApiClient(CustomObjectsApi);
export const certificates = kc.makeApiClient(CertificatesV1Api);
/** The controller's logs: errors only, unless LOG_LEVEL says otherwise. */
export const log = createLogger('controller', process.env.LOG_LEVEL ?? 'error');

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const suffix = () => randomBytes(3).toString('hex');

/** A fresh namespace with its `default` ServiceAccount (no controller-manager makes it here). */
export async function namespace(prefix: string): Promise<string> {
  const name = `${prefix}-${suffix()}`;
  await core.createNamespace({ body: { metadata: { name } } });
  await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
  return name;
}

/** A Node as a kubelet would register it, Ready (no node controller here turns it NotReady). */
export async function readyNode(name: string): Promise<void> {
  await core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name } } } });
  const now = new Date();
  await core.patchNodeStatus(
    {
      name,
      body: {
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'kubelet is posting ready status',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
          addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
        },
      },
    },
    mergePatch,
  );
}

/**
 * A Pod bound to `node` (as the scheduler would), then Running, Ready and with `ip`, as its kubelet would
 * report it through the status subresource.
 */
export async function runningPod(
  ns: string,
  name: string,
  o: {
    node: string;
    ip: string;
    labels?: Record<string, string>;
    ports?: { name: string; port: number }[];
    serviceAccount?: string;
    /** Declares the operator's readiness gate. */
    gated?: boolean;
  },
): Promise<V1Pod> {
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name, labels: o.labels ?? {} },
      spec: {
        nodeName: o.node,
        serviceAccountName: o.serviceAccount ?? 'default',
        automountServiceAccountToken: false,
        ...(o.gated ? { readinessGates: [{ conditionType: READINESS_GATE }] } : {}),
        containers: [
          {
            name: 'app',
            image: 'registry.invalid/app:1',
            ports: (o.ports ?? []).map((p) => ({ name: p.name, containerPort: p.port })),
          },
        ],
      },
    },
  });
  const now = new Date();
  const status: V1PodStatus = {
    phase: 'Running',
    podIP: o.ip,
    podIPs: [{ ip: o.ip }],
    hostIP: '127.0.0.1',
    startTime: now,
    conditions: [
      { type: 'Ready', status: 'True', lastTransitionTime: now },
      { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
    ],
    containerStatuses: [
      {
        name: 'app',
        image: 'registry.invalid/app:1',
        imageID: '',
        ready: true,
        restartCount: 0,
        started: true,
        state: { running: { startedAt: now } },
      },
    ],
  };
  return core.patchNamespacedPodStatus({ namespace: ns, name, body: { status } }, mergePatch);
}

export const helperLabels = {
  [LABELS.component]: HELPER_COMPONENT,
  [LABELS.name]: MANAGED_BY_VALUE,
};

/**
 * A Ready helper Pod of `node` as the controller finds it: its API port (answered by `FakeHelpers`) and its
 * health port, a local server the leader probes.
 */
export function helperPod(ns: string, name: string, node: string, healthPort: number): Promise<V1Pod> {
  return runningPod(ns, name, {
    node,
    ip: '127.0.0.1',
    labels: helperLabels,
    ports: [
      { name: 'api', port: 9500 },
      { name: 'health', port: healthPort },
    ],
  });
}

export async function createPolicy(
  ns: string,
  name: string,
  spec: Partial<PullStatePolicySpec> & Record<string, unknown>,
): Promise<IPullStatePolicy> {
  return (await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'PullStatePolicy', metadata: { name }, spec },
  })) as IPullStatePolicy;
}

export async function getPolicy(ns: string, name: string): Promise<IPullStatePolicy> {
  return (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  })) as IPullStatePolicy;
}

export async function createRestore(
  ns: string,
  name: string,
  spec: IPullStateRestore['spec'],
): Promise<IPullStateRestore> {
  return (await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: RESTORE_PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'PullStateRestore', metadata: { name }, spec },
  })) as IPullStateRestore;
}

export async function getRestore(ns: string, name: string): Promise<IPullStateRestore> {
  return (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: RESTORE_PLURAL,
    name,
  })) as IPullStateRestore;
}

/** A condition of an object's status by type. */
export function condition<C extends { type: string }>(
  conditions: readonly C[] | undefined,
  type: string,
): C | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * The helpers' HTTPS API as the controller sees it (HelperClient), answered in memory: `blobs` are the copies
 * each helper holds (by node), `restores` every restore asked for, `restoreAnswer` what a helper answers.
 */
export class FakeHelpers {
  readonly blobs = new Map<string, BlobMeta[]>();
  readonly restores: { node: string; namespace: string; podUID: string; request: RestoreRequest }[] = [];
  readonly assignments = new Map<string, AssignmentSet>();
  restoreAnswer: (node: string, request: RestoreRequest) => RestoreAnswer | Promise<RestoreAnswer> = (
    _node,
    request,
  ) => ({
    result: 'Succeeded',
    status: 200,
    durationMs: 3,
    sequence: request.sequence ?? 1,
    digest: `sha256:${'0'.repeat(64)}`,
    sizeBytes: 5,
  });

  async inventory(helper: HelperTarget, podUID?: string): Promise<Inventory> {
    const blobs = (this.blobs.get(helper.node) ?? []).filter((b) => !podUID || b.podUID === podUID);
    return { node: helper.node, usedBytes: 0, quotaBytes: 1 << 30, blobs };
  }
  async assign(helper: HelperTarget, set: AssignmentSet): Promise<void> {
    this.assignments.set(helper.node, set);
  }
  async holds(_helper: HelperTarget, _set: HoldSet): Promise<boolean> {
    return true;
  }
  /** Pulls asked for (a restart check), and what a helper answers (default: it cannot pull). */
  readonly pulls: PullAssignment[] = [];
  pullAnswer: (a: PullAssignment) => PullReport = () => {
    throw new Error('fake helper: no pulls');
  };
  async pull(_helper: HelperTarget, a: PullAssignment): Promise<PullReport> {
    this.pulls.push(a);
    return this.pullAnswer(a);
  }
  async reports(
    _helper: HelperTarget,
    after: number,
    _boot: string | undefined,
    waitMs: number,
    abort: AbortSignal,
  ): Promise<ReportBatch> {
    // A long poll with nothing to report.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(waitMs, 1000));
      abort.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    return { boot: 'fake-boot', cursor: after, reports: [] };
  }
  async delete(): Promise<void> {}
  async probe(): Promise<string> {
    return 'ok';
  }
  async restore(
    helper: HelperTarget,
    namespace: string,
    podUID: string,
    request: RestoreRequest,
  ): Promise<RestoreAnswer> {
    this.restores.push({ node: helper.node, namespace, podUID, request });
    return this.restoreAnswer(helper.node, request);
  }
}

/** A helper's plain-HTTP health port (the leader probes /readyz of every helper): answers 200. */
export async function healthServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((_req, res) => res.writeHead(200).end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let sharedCa: Promise<CertificateAuthority> | undefined;
/** The operator's CA (made once per test file: a P-256 key). */
export function operatorCa(): Promise<CertificateAuthority> {
  sharedCa ??= createCertificateAuthority('pull-state-operator test CA', new Date(), 86_400_000);
  return sharedCa;
}

export interface Controller {
  manager: Manager;
  helpers: FakeHelpers;
  ca: CertificateAuthority;
  /** Ends the term; resolves whether its work in flight ended within `drainMs` (see Manager.stop). */
  stop: (drainMs?: number) => Promise<boolean>;
}

/**
 * The controller's Manager as main.ts builds it (without leader election: it leads at once), against the
 * tier's API server; only the helper client is replaced, by `FakeHelpers`.
 */
export async function startController(operatorNamespace: string): Promise<Controller> {
  const ca = await operatorCa();
  const manager = new Manager({
    kc,
    helperCredentials: new KubeconfigCredentials(kc),
    log,
    metrics: createControllerMetrics(),
    operatorNamespace,
    workers: 4,
    orphanRetentionMs: 3_600_000,
    ca,
    helperUser: `system:serviceaccount:${operatorNamespace}:pull-state-helper`,
    helperCertValidityMs: 3_600_000,
  });
  const helpers = new FakeHelpers();
  // Every component was given this HelperClient object: its methods, not the object, are replaced.
  const client = manager.c.helpers as unknown as Record<string, unknown>;
  for (const m of ['inventory', 'assign', 'holds', 'pull', 'reports', 'delete', 'probe', 'restore'] as const)
    client[m] = (helpers[m] as (...a: unknown[]) => unknown).bind(helpers);
  await manager.start();
  return { manager, helpers, ca, stop: (drainMs?: number) => manager.stop(drainMs) };
}
