import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type {
  V1Container,
  V1ContainerStatus,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
  V1Probe,
} from '@kubernetes/client-node';
import { repoRoot } from './paths.js';
import {
  resolveCommand,
  resolveEnv,
  restartDelayMs,
  shouldRestart,
  type ImageMap,
} from './container-spec.js';

export interface PodEnvironment {
  nodeName: string;
  hostIP: string;
  podIP: string;
  netns: string;
  /** Directory for this Pod's logs, volumes and kubeconfig. */
  dir: string;
  /** Host directory backing hostPath volumes of this node. */
  hostPathRoot: string;
  kubeconfig: string;
  images: ImageMap;
  onPid: (pid: number | undefined) => void;
  /** Called whenever the status the kubelet would report changed. */
  onChange: () => void;
}

type State =
  | { kind: 'waiting'; reason: string; message?: string }
  | { kind: 'running'; startedAt: Date }
  | {
      kind: 'terminated';
      exitCode: number;
      signal?: string;
      reason: string;
      startedAt?: Date;
      finishedAt: Date;
    };

interface ProbeState {
  failures: number;
  successes: number;
  timer?: NodeJS.Timeout;
}

/** One container's process, restarts and probes. */
class ContainerRuntime {
  state: State = { kind: 'waiting', reason: 'ContainerCreating' };
  lastState?: State;
  restartCount = 0;
  ready = false;
  started = false;
  private child?: ChildProcess;
  private log: WriteStream;
  private restartTimer?: NodeJS.Timeout;
  private probes = new Map<string, ProbeState>();
  private stopping = false;
  exitedOnce?: Promise<void>;

  constructor(
    readonly spec: V1Container,
    private readonly pod: V1Pod,
    private readonly env: PodEnvironment,
    private readonly isInit: boolean,
  ) {
    this.log = createWriteStream(join(env.dir, `${spec.name}.log`), { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.stopping) return;
    const facts = { podIP: this.env.podIP, hostIP: this.env.hostIP, nodeName: this.env.nodeName };
    const envResult = resolveEnv(this.spec, this.pod, facts);
    if (!envResult.ok) return this.fail('CreateContainerConfigError', envResult.message);
    const env = { ...envResult.env };
    const resolved = resolveCommand(this.spec, this.env.images, env);
    if (!resolved.ok) return this.fail(resolved.reason, resolved.message);

    const mounts = this.mountScript();
    // ip netns exec, unshare and sh all exec in place, so the pid we hold is the application's pid and
    // signals reach it directly, as with a container runtime.
    const argv = [
      'netns',
      'exec',
      this.env.netns,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      `${mounts}exec "$0" "$@"`,
      ...resolved.argv,
    ];
    const processEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: '/tmp',
      HOSTNAME: this.pod.metadata?.name,
      KUBECONFIG: this.env.kubeconfig,
      POD_IP: this.env.podIP,
      ...env,
    };
    this.log.write(`--- ${new Date().toISOString()} starting ${resolved.argv.join(' ')}\n`);
    const child = spawn('ip', argv, { cwd: repoRoot, env: processEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.env.onPid(child.pid);
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    const startedAt = new Date();
    this.state = { kind: 'running', startedAt };
    this.exitedOnce = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => this.exited(code, signal, startedAt));
    this.startProbes();
    this.env.onChange();
  }

  /** Bind-mounts volumes (and the ServiceAccount token) inside the container's private mount namespace. */
  private mountScript(): string {
    const volumes = new Map((this.pod.spec?.volumes ?? []).map((v) => [v.name, v]));
    const lines: string[] = [];
    for (const m of this.spec.volumeMounts ?? []) {
      const v = volumes.get(m.name);
      let source: string;
      if (v?.hostPath) source = join(this.env.hostPathRoot, v.hostPath.path);
      else source = join(this.env.dir, 'volumes', m.name);
      mkdirSync(source, { recursive: true });
      const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
      lines.push(`mkdir -p ${q(m.mountPath)} && mount --bind ${q(source)} ${q(m.mountPath)}`);
    }
    return lines.length ? lines.join(' && ') + ' && ' : '';
  }

  private fail(reason: string, message: string): void {
    this.state = { kind: 'waiting', reason, message };
    this.log.write(`--- ${reason}: ${message}\n`);
    this.env.onChange();
  }

  private exited(code: number | null, signal: NodeJS.Signals | null, startedAt: Date): void {
    this.stopProbes();
    this.ready = false;
    const exitCode = code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : 1);
    this.state = {
      kind: 'terminated',
      exitCode,
      ...(signal ? { signal } : {}),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      startedAt,
      finishedAt: new Date(),
    };
    this.log.write(`--- ${new Date().toISOString()} exited code=${code} signal=${signal}\n`);
    if (!this.stopping && !this.isInit && shouldRestart(this.pod.spec?.restartPolicy, exitCode)) {
      this.lastState = this.state;
      this.restartCount++;
      const delay = restartDelayMs(this.restartCount);
      this.state = {
        kind: 'waiting',
        reason: this.restartCount > 1 ? 'CrashLoopBackOff' : 'ContainerCreating',
      };
      this.restartTimer = setTimeout(() => this.start(), this.restartCount > 1 ? delay : 0);
    }
    this.env.onChange();
  }

  kill(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.stopProbes();
    if (this.state.kind !== 'running' || !this.child) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exitedOnce;
    clearTimeout(timer);
  }

  private startProbes(): void {
    const { startupProbe } = this.spec;
    if (!startupProbe) this.started = true;
    if (startupProbe) this.schedule('startup', startupProbe);
    else this.startMainProbes();
  }

  private startMainProbes(): void {
    if (this.spec.livenessProbe) this.schedule('liveness', this.spec.livenessProbe);
    if (this.spec.readinessProbe) this.schedule('readiness', this.spec.readinessProbe);
    else if (!this.ready) {
      this.ready = true;
      this.env.onChange();
    }
  }

  private stopProbes(): void {
    for (const p of this.probes.values()) clearTimeout(p.timer);
    this.probes.clear();
  }

  private schedule(kind: 'startup' | 'liveness' | 'readiness', probe: V1Probe): void {
    const state: ProbeState = { failures: 0, successes: 0 };
    this.probes.set(kind, state);
    const period = (probe.periodSeconds ?? 10) * 1000;
    const tick = async () => {
      const ok = await this.runProbe(probe);
      if (this.probes.get(kind) !== state) return;
      if (ok) {
        state.successes++;
        state.failures = 0;
      } else {
        state.failures++;
        state.successes = 0;
      }
      this.onProbe(kind, probe, state);
      if (this.probes.get(kind) === state) state.timer = setTimeout(tick, period);
    };
    state.timer = setTimeout(tick, (probe.initialDelaySeconds ?? 0) * 1000);
  }

  private onProbe(kind: string, probe: V1Probe, s: ProbeState): void {
    const failureThreshold = probe.failureThreshold ?? 3;
    if (kind === 'startup') {
      if (s.successes >= 1) {
        clearTimeout(s.timer);
        this.probes.delete('startup');
        this.started = true;
        this.startMainProbes();
        this.env.onChange();
      } else if (s.failures >= failureThreshold) {
        this.log.write(`--- startup probe failed ${s.failures} times; killing\n`);
        this.kill('SIGKILL');
      }
    } else if (kind === 'liveness' && s.failures >= failureThreshold) {
      this.log.write(`--- liveness probe failed ${s.failures} times; killing\n`);
      this.kill('SIGKILL');
    } else if (kind === 'readiness') {
      const ready =
        s.successes >= (probe.successThreshold ?? 1)
          ? true
          : s.failures >= failureThreshold
            ? false
            : this.ready;
      if (ready !== this.ready) {
        this.ready = ready;
        this.env.onChange();
      }
    }
  }

  private async runProbe(probe: V1Probe): Promise<boolean> {
    const get = probe.httpGet;
    if (!get) return true; // exec and tcpSocket probes are not simulated; they pass.
    let port = get.port as number | string;
    if (typeof port === 'string' && !/^\d+$/.test(port)) {
      port = this.spec.ports?.find((p) => p.name === port)?.containerPort ?? -1;
    }
    const url = `${(get.scheme ?? 'HTTP').toLowerCase()}://${this.env.podIP}:${port}${get.path ?? '/'}`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout((probe.timeoutSeconds ?? 1) * 1000) });
      await res.arrayBuffer();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }

  status(): V1ContainerStatus {
    const toApi = (s: State) =>
      s.kind === 'waiting'
        ? { waiting: { reason: s.reason, ...(s.message ? { message: s.message } : {}) } }
        : s.kind === 'running'
          ? { running: { startedAt: s.startedAt } }
          : {
              terminated: {
                exitCode: s.exitCode,
                reason: s.reason,
                ...(s.signal ? { signal: s.signal === 'SIGKILL' ? 9 : 15 } : {}),
                ...(s.startedAt ? { startedAt: s.startedAt } : {}),
                finishedAt: s.finishedAt,
              },
            };
    return {
      name: this.spec.name,
      image: this.spec.image ?? '',
      imageID: '',
      containerID: this.child?.pid ? `localcluster://${this.child.pid}` : undefined,
      ready: this.ready && this.state.kind === 'running',
      started: this.started && this.state.kind === 'running',
      restartCount: this.restartCount,
      state: toApi(this.state),
      lastState: this.lastState ? toApi(this.lastState) : {},
    } as V1ContainerStatus;
  }
}

/** A Pod running on a simulated node: init containers in order, then the app containers. */
export class PodRuntime {
  private init: ContainerRuntime[];
  private main: ContainerRuntime[];
  private initDone = false;
  private startTime = new Date();
  terminating = false;

  constructor(
    public pod: V1Pod,
    readonly env: PodEnvironment,
  ) {
    mkdirSync(env.dir, { recursive: true });
    this.init = (pod.spec?.initContainers ?? []).map((c) => new ContainerRuntime(c, pod, env, true));
    this.main = (pod.spec?.containers ?? []).map((c) => new ContainerRuntime(c, pod, env, false));
  }

  get ip(): string {
    return this.env.podIP;
  }

  async start(): Promise<void> {
    for (const c of this.init) {
      c.start();
      if (c.exitedOnce) await c.exitedOnce;
      if (this.terminating) return;
      if (c.state.kind !== 'terminated' || c.state.exitCode !== 0) {
        this.env.onChange();
        return;
      }
    }
    this.initDone = true;
    for (const c of this.main) c.start();
    this.env.onChange();
  }

  /** `fault crash`: SIGKILL the container as an OOM kill or segfault would. */
  crash(container?: string): boolean {
    const c = container ? this.main.find((m) => m.spec.name === container) : this.main[0];
    if (!c?.pid) return false;
    c.kill('SIGKILL');
    return true;
  }

  async stop(graceMs: number): Promise<void> {
    this.terminating = true;
    await Promise.all([...this.init, ...this.main].map((c) => c.stop(graceMs)));
  }

  pids(): number[] {
    return [...this.init, ...this.main].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  /** The status a kubelet would report, given the latest Pod object (for readiness-gate conditions). */
  status(latest: V1Pod): V1PodStatus {
    const statuses = this.main.map((c) => c.status());
    const initStatuses = this.init.map((c) => c.status());
    const allTerminated = statuses.every((s) => s.state?.terminated);
    const anyFailed = statuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
    const policy = this.pod.spec?.restartPolicy ?? 'Always';
    const noRestarts = policy === 'Never' || (policy === 'OnFailure' && !anyFailed);
    let phase = 'Pending';
    if (this.initDone && statuses.some((s) => s.state?.running || s.lastState?.terminated)) phase = 'Running';
    if (this.initDone && allTerminated && noRestarts) phase = anyFailed ? 'Failed' : 'Succeeded';
    const initFailed = initStatuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
    if (initFailed && policy === 'Never') phase = 'Failed';

    const containersReady = this.initDone && statuses.every((s) => s.ready);
    const gates = latest.spec?.readinessGates ?? [];
    const existing = latest.status?.conditions ?? [];
    const gatesTrue = gates.every((g) =>
      existing.some((c) => c.type === g.conditionType && c.status === 'True'),
    );
    const missingGates = gates.filter(
      (g) => !existing.some((c) => c.type === g.conditionType && c.status === 'True'),
    );
    const cond = (type: string, ok: boolean, reason?: string, message?: string): V1PodCondition => {
      const previous = existing.find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      return {
        type,
        status,
        lastProbeTime: null as unknown as undefined,
        lastTransitionTime:
          previous?.status === status && previous.lastTransitionTime
            ? previous.lastTransitionTime
            : new Date(),
        ...(ok ? {} : { reason, message }),
      } as V1PodCondition;
    };
    const conditions = [
      cond('PodReadyToStartContainers', true),
      cond(
        'Initialized',
        this.initDone,
        'ContainersNotInitialized',
        'containers with incomplete status: init',
      ),
      cond('ContainersReady', containersReady, 'ContainersNotReady', 'containers not ready'),
      cond(
        'Ready',
        containersReady && gatesTrue && phase === 'Running',
        missingGates.length ? 'ReadinessGatesNotReady' : 'ContainersNotReady',
        missingGates.length
          ? `corresponding condition of pod readiness gate "${missingGates[0]!.conditionType}" does not exist or is not True`
          : 'containers not ready',
      ),
    ];
    return {
      phase,
      hostIP: this.env.hostIP,
      hostIPs: [{ ip: this.env.hostIP }],
      podIP: this.env.podIP,
      podIPs: [{ ip: this.env.podIP }],
      startTime: this.startTime,
      conditions,
      containerStatuses: statuses,
      ...(initStatuses.length ? { initContainerStatuses: initStatuses } : {}),
    } as V1PodStatus;
  }
}
