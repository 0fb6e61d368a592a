import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { KUBE_VERSION } from './paths.js';
import { freeSlot, netnsName, podIp } from './addressing.js';
import { createPodNetwork, deletePodNetwork, setPodLink } from './network.js';
import { PodRuntime } from './pod-runtime.js';
import type { ImageMap } from './container-spec.js';
import { kubeconfigYaml } from './controlplane.js';
import { microTime } from '../../../src/kube/micro-time.js';

export interface KubeletOptions {
  name: string;
  index: number;
  ip: string;
  controlPlane: boolean;
  kubeconfig: KubeConfig;
  /** API server address and CA as seen from inside Pods. */
  server: string;
  ca: Buffer;
  dir: string;
  images: ImageMap;
  onPid: (pid: number | undefined) => void;
  log: (line: string) => void;
}

const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const LEASE_SECONDS = 40;
const LEASE_RENEW_MS = 2000;
const STATUS_REPORT_MS = 10_000;

const key = (pod: V1Pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`;

/**
 * A simulated node: registers the Node, heartbeats through its Lease, and runs the Pods bound to it as
 * processes in their own network namespaces, reporting status as kubelet does.
 */
export class Kubelet {
  private core: CoreV1Api;
  private coordination: CoordinationV1Api;
  private informer?: ListWatch<V1Pod>;
  private pods = new Map<string, PodRuntime>();
  /** Pod IPs whose network is still being torn down. */
  private releasing = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private pendingStatus = new Set<string>();
  private statusTimer?: NodeJS.Timeout;
  private lastSent = new Map<string, string>();
  /** Partitioned or stopped: no API traffic in either direction. */
  private offline = false;
  stopped = false;

  constructor(readonly o: KubeletOptions) {
    this.core = o.kubeconfig.makeApiClient(CoreV1Api);
    this.coordination = o.kubeconfig.makeApiClient(CoordinationV1Api);
  }

  get state(): 'Running' | 'Partitioned' | 'Stopped' {
    return this.stopped ? 'Stopped' : this.offline ? 'Partitioned' : 'Running';
  }

  async start(): Promise<void> {
    this.offline = false;
    this.stopped = false;
    await this.register();
    await this.renewLease();
    this.timers.push(setInterval(() => void this.renewLease().catch(() => undefined), LEASE_RENEW_MS));
    this.timers.push(
      setInterval(() => void this.reportNodeStatus().catch(() => undefined), STATUS_REPORT_MS),
    );
    this.startInformer();
  }

  private nodeStatus() {
    const now = new Date();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    return {
      conditions: [
        condition('Ready', 'True', 'KubeletReady', 'local kubelet is posting ready status'),
        condition(
          'MemoryPressure',
          'False',
          'KubeletHasSufficientMemory',
          'kubelet has sufficient memory available',
        ),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('NetworkUnavailable', 'False', 'RouteCreated', 'local bridge is up'),
      ],
      addresses: [
        { type: 'InternalIP', address: this.o.ip },
        { type: 'Hostname', address: this.o.name },
      ],
      capacity: { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      allocatable: { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      nodeInfo: {
        kubeletVersion: KUBE_VERSION,
        kubeProxyVersion: KUBE_VERSION,
        architecture: 'amd64',
        operatingSystem: 'linux',
        osImage: 'pull-state-operator localcluster',
        kernelVersion: '',
        containerRuntimeVersion: 'localcluster://1',
        machineID: this.o.name,
        systemUUID: this.o.name,
        bootID: this.o.name,
      },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    };
  }

  private async register(): Promise<void> {
    const labels: Record<string, string> = {
      'kubernetes.io/hostname': this.o.name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'localcluster.pull-state-operator/node': 'true',
    };
    if (this.o.controlPlane) labels['node-role.kubernetes.io/control-plane'] = '';
    const taints = this.o.controlPlane
      ? [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }]
      : [];
    try {
      await this.core.createNode({ body: { metadata: { name: this.o.name, labels }, spec: { taints } } });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    await this.reportNodeStatus();
  }

  private async reportNodeStatus(): Promise<void> {
    if (this.offline) return;
    await this.core.patchNodeStatus({ name: this.o.name, body: { status: this.nodeStatus() } }, smp);
  }

  private async renewLease(): Promise<void> {
    if (this.offline) return;
    const spec = {
      holderIdentity: this.o.name,
      leaseDurationSeconds: LEASE_SECONDS,
      renewTime: microTime(),
    };
    try {
      await this.coordination.patchNamespacedLease(
        { name: this.o.name, namespace: 'kube-node-lease', body: { spec } },
        merge,
      );
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      const node = await this.core.readNode({ name: this.o.name });
      await this.coordination.createNamespacedLease({
        namespace: 'kube-node-lease',
        body: {
          metadata: {
            name: this.o.name,
            ownerReferences: [
              { apiVersion: 'v1', kind: 'Node', name: this.o.name, uid: node.metadata!.uid! },
            ],
          },
          spec: {
            ...spec,
            renewTime: spec.renewTime as unknown as Date,
            acquireTime: spec.renewTime as unknown as Date,
          },
        },
      });
    }
  }

  private startInformer(): void {
    const fieldSelector = `spec.nodeName=${this.o.name}`;
    const informer = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(this.o.kubeconfig),
      () => this.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    this.informer = informer;
    informer.on('add', (pod) => this.sync(pod));
    informer.on('update', (pod) => this.sync(pod));
    informer.on('delete', (pod) => void this.forget(pod));
    informer.on('error', (err) => {
      if (this.informer !== informer || this.offline) return;
      this.o.log(`kubelet ${this.o.name}: pod watch failed (${String(err)}); restarting in 1s`);
      setTimeout(() => this.informer === informer && !this.offline && void informer.start(), 1000);
    });
    void informer.start().then(() => this.reconcileAll(informer));
  }

  /** After a (re)list: Pods that vanished from the API while we were away are killed. */
  private reconcileAll(informer: ListWatch<V1Pod>): void {
    const live = new Set(informer.list().map(key));
    for (const [k, runtime] of this.pods) if (!live.has(k)) void this.forget(runtime.pod);
    for (const pod of informer.list()) this.sync(pod);
  }

  private sync(pod: V1Pod): void {
    if (this.offline) return;
    const k = key(pod);
    const runtime = this.pods.get(k);
    if (runtime && runtime.pod.metadata?.uid !== pod.metadata?.uid) {
      // Same name, new object (StatefulSet): the old one is gone.
      void this.forget(runtime.pod).then(() => this.sync(pod));
      return;
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') {
      if (pod.metadata?.deletionTimestamp && !runtime) void this.remove(pod);
      return;
    }
    if (!runtime) {
      if (pod.metadata?.deletionTimestamp) {
        void this.remove(pod);
        return;
      }
      void this.run(pod).catch((err) => this.o.log(`kubelet ${this.o.name}: ${k}: ${String(err)}`));
      return;
    }
    runtime.pod = pod;
    if (pod.metadata?.deletionTimestamp && !runtime.terminating) void this.terminate(runtime);
    else this.queueStatus(k);
  }

  private async run(pod: V1Pod): Promise<void> {
    const k = key(pod);
    const used = new Set(
      [...this.pods.values()]
        .map((r) => r.ip)
        .concat([...this.releasing])
        .map((ip) => Number(ip.split('.')[3])),
    );
    const slot = freeSlot(used);
    if (slot === undefined) throw new Error('no free Pod IP on this node');
    const ip = podIp(this.o.index, slot);
    const dir = join(this.o.dir, 'pods', `${pod.metadata!.namespace}_${pod.metadata!.name}`);
    rmSync(join(dir, 'volumes'), { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const kubeconfig = join(dir, 'kubeconfig');
    const runtime = new PodRuntime(pod, {
      nodeName: this.o.name,
      hostIP: this.o.ip,
      podIP: ip,
      netns: netnsName(ip),
      dir,
      hostPathRoot: join(this.o.dir, 'hostpath'),
      kubeconfig,
      images: this.o.images,
      onPid: this.o.onPid,
      onChange: () => this.queueStatus(k),
    });
    this.pods.set(k, runtime);
    this.queueStatus(k);
    // A failure here would leave the Pod without a process for good: retry a few times, as kubelet does.
    for (let attempt = 1; ; attempt++) {
      try {
        await createPodNetwork(ip);
        writeFileSync(kubeconfig, await this.podKubeconfig(pod), { mode: 0o600 });
        break;
      } catch (err) {
        if (attempt === 5 || runtime.terminating) throw err;
        this.o.log(`kubelet ${this.o.name}: ${k}: sandbox setup failed (${String(err)}); retrying`);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    if (runtime.terminating) return;
    await runtime.start();
  }

  /** A kubeconfig with a bound ServiceAccount token, so in-Pod code runs with that account's RBAC. */
  private async podKubeconfig(pod: V1Pod): Promise<string> {
    const sa = pod.spec?.serviceAccountName ?? 'default';
    const namespace = pod.metadata!.namespace!;
    const result = await this.core.createNamespacedServiceAccountToken({
      name: sa,
      namespace,
      body: {
        spec: {
          audiences: [],
          expirationSeconds: 86400,
          boundObjectRef: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata!.name!,
            uid: pod.metadata!.uid!,
          },
        },
      },
    });
    return kubeconfigYaml(
      this.o.server,
      this.o.ca,
      result.status!.token,
      `system:serviceaccount:${namespace}:${sa}`,
    );
  }

  private queueStatus(k: string): void {
    this.pendingStatus.add(k);
    // Coalesce bursts (several probes, restarts) into one write per Pod.
    this.statusTimer ??= setTimeout(() => {
      this.statusTimer = undefined;
      void this.flushStatus();
    }, 50);
  }

  private async flushStatus(): Promise<void> {
    if (this.offline) return;
    const keys = [...this.pendingStatus];
    this.pendingStatus.clear();
    await Promise.all(
      keys.map(async (k) => {
        const runtime = this.pods.get(k);
        if (!runtime) return;
        const latest =
          this.informer?.get(runtime.pod.metadata!.name!, runtime.pod.metadata!.namespace) ?? runtime.pod;
        if (latest.metadata?.uid !== runtime.pod.metadata?.uid) return;
        const status = runtime.status(latest);
        const body = JSON.stringify(status, (name, value) =>
          name === 'lastTransitionTime' ? undefined : value,
        );
        if (this.lastSent.get(k) === body) return;
        try {
          await this.core.patchNamespacedPodStatus(
            { name: latest.metadata!.name!, namespace: latest.metadata!.namespace!, body: { status } },
            smp,
          );
          this.lastSent.set(k, body);
        } catch (err) {
          const code = (err as { code?: number }).code;
          if (code !== 404) {
            this.o.log(`kubelet ${this.o.name}: status of ${k} failed (${code ?? String(err)}); retrying`);
            setTimeout(() => this.queueStatus(k), 1000);
          }
        }
      }),
    );
  }

  /** Graceful deletion: SIGTERM, the Pod's grace period, SIGKILL, then remove the API object. */
  private async terminate(runtime: PodRuntime): Promise<void> {
    runtime.terminating = true;
    const grace =
      runtime.pod.metadata?.deletionGracePeriodSeconds ??
      runtime.pod.spec?.terminationGracePeriodSeconds ??
      30;
    await runtime.stop(grace * 1000);
    await this.remove(runtime.pod);
  }

  private async remove(pod: V1Pod): Promise<void> {
    if (this.offline) return;
    await this.forget(pod);
    try {
      await this.core.deleteNamespacedPod({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata!.uid! } },
      });
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== 404 && code !== 409)
        this.o.log(`kubelet ${this.o.name}: delete ${key(pod)} failed: ${String(err)}`);
    }
  }

  /** Kills the Pod's processes at once and frees its network. */
  private async forget(pod: V1Pod): Promise<void> {
    const k = key(pod);
    const runtime = this.pods.get(k);
    if (!runtime || runtime.pod.metadata?.uid !== pod.metadata?.uid) return;
    // The IP stays taken until its namespace and link are gone: a new Pod given it earlier would have its
    // network created while the old one is torn down, and lose it (or fail to start at all).
    this.releasing.add(runtime.ip);
    this.pods.delete(k);
    this.lastSent.delete(k);
    try {
      await runtime.stop(0);
      await deletePodNetwork(runtime.ip);
    } finally {
      this.releasing.delete(runtime.ip);
    }
  }

  runtimeOf(namespace: string, name: string): PodRuntime | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  podList(): { key: string; ip: string; pids: number[] }[] {
    return [...this.pods.entries()].map(([k, r]) => ({ key: k, ip: r.ip, pids: r.pids() }));
  }

  private async goOffline(): Promise<void> {
    this.offline = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const informer = this.informer;
    this.informer = undefined;
    await informer?.stop();
  }

  /** Cut off: no heartbeats, no watch, Pods unreachable; processes keep running. */
  async partition(): Promise<void> {
    await this.goOffline();
    for (const r of this.pods.values()) await setPodLink(r.ip, false).catch(() => undefined);
  }

  async heal(): Promise<void> {
    // A stopped node has no Pods left; a partitioned one gets its links back before it reports again.
    for (const r of this.pods.values()) await setPodLink(r.ip, true).catch(() => undefined);
    await this.start();
    // The node lifecycle controller marked our Pods not Ready while we were away: report them all again.
    this.lastSent.clear();
    for (const k of this.pods.keys()) this.queueStatus(k);
  }

  /** The node dies: every process is killed and nothing is reported. */
  async stop(): Promise<void> {
    await this.goOffline();
    this.stopped = true;
    for (const r of [...this.pods.values()]) {
      await r.stop(0);
      await deletePodNetwork(r.ip);
    }
    this.pods.clear();
    this.lastSent.clear();
  }
}
