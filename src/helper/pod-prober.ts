import { probe as httpProbe, type ProbeOutcome } from '../runtime/http-probe.js';
import type { PodFault, PullAssignment } from '../api/index.js';
import { errorMessage, type Logger } from '../runtime/logger.js';
import { requestPath } from '../runtime/request-path.js';
import { hostPort } from '../runtime/ip-address.js';

export interface ProbeState {
  failures: number;
  /** The app answered since its (re)start: only then can a failed probe mean a fault. */
  answered: boolean;
}

/**
 * One probe's effect (pure). An app that has not answered since its start is starting, not failing (a JVM,
 * data loaded at start); one that never comes up is the kubelet's business. A paused Pod is being restored
 * and may be busy.
 */
export function nextProbeState(s: ProbeState, ok: boolean, paused: boolean): ProbeState {
  if (ok) return { failures: 0, answered: true };
  if (!s.answered || paused) return { failures: 0, answered: s.answered };
  return { failures: s.failures + 1, answered: true };
}

interface Probed extends ProbeState {
  a: PullAssignment;
  /** The probe's request path, percent-encoded as the kubelet sends it. */
  sent?: string;
  /** Why the probe cannot be sent (its path, as the tenant wrote it): then it is no evidence either way. */
  misconfigured?: string;
  timer?: NodeJS.Timeout;
  /** When the fault was reported; reported again after a while if the Pod is still there and failing. */
  reportedAt?: number;
}

export interface PodProberOptions {
  report: (fault: PodFault) => void;
  log: Logger;
  probe?: (ip: string, port: number, path: string, timeoutMs: number) => Promise<ProbeOutcome>;
}

/**
 * Probes the fast-failover Pods of this node at their period, the way the kubelet watches its own
 * containers: the probes stay on the node, and the leader hears only of a Pod that failed.
 */
export class PodProber {
  private pods = new Map<string, Probed>();
  private stopped = false;

  constructor(private readonly o: PodProberOptions) {}

  /** Makes the Pods of `set` that ask for probes the probed ones. */
  assign(set: readonly PullAssignment[]): void {
    const wanted = new Map(set.filter((a) => a.probe).map((a) => [a.podUID, a]));
    for (const [uid, p] of this.pods) {
      if (wanted.has(uid)) continue;
      clearTimeout(p.timer);
      this.pods.delete(uid);
    }
    for (const a of wanted.values()) {
      const p = this.pods.get(a.podUID);
      if (!p) {
        const fresh: Probed = { a, failures: 0, answered: false };
        this.pods.set(a.podUID, fresh);
        this.checkPath(fresh, undefined);
        this.arm(fresh, Math.random() * a.probe!.periodMs);
        continue;
      }
      // A restart is the kubelet's to handle: the new process must answer before its probes count.
      if (a.restartCount !== p.a.restartCount)
        Object.assign(p, { failures: 0, answered: false, reportedAt: undefined });
      const before = p.a.probe?.path;
      p.a = a;
      this.checkPath(p, before);
    }
  }

  /**
   * The probe path is a tenant's (a liveness probe's httpGet.path): checked once where it arrives, and a
   * path no request can carry is said once, not at every period.
   */
  private checkPath(p: Probed, before: string | undefined): void {
    const path = p.a.probe!.path;
    if (path === before) return;
    const target = requestPath(path);
    p.sent = target.ok ? target.path : undefined;
    p.misconfigured = target.ok ? undefined : target.problem;
    if (p.misconfigured)
      this.o.log.warn('cannot probe this Pod: its probe path cannot be sent; its probes count for nothing', {
        pod: p.a.pod,
        namespace: p.a.namespace,
        problem: p.misconfigured,
      });
  }

  stop(): void {
    this.stopped = true;
    for (const p of this.pods.values()) clearTimeout(p.timer);
  }

  /** Probes run at a fixed rate: one that times out does not push the next one back. */
  private arm(p: Probed, delayMs: number): void {
    if (this.stopped) return;
    p.timer = setTimeout(
      () =>
        void this.tick(p).catch((err: unknown) => {
          // A rejection nobody handles would end the helper for every Pod; this one Pod keeps its rhythm.
          this.o.log.error('probe round crashed', { pod: p.a.pod, error: errorMessage(err) });
          if (this.pods.get(p.a.podUID) === p) this.arm(p, p.a.probe?.periodMs ?? 1000);
        }),
      delayMs,
    );
  }

  private async tick(p: Probed): Promise<void> {
    const started = Date.now();
    const spec = p.a.probe;
    if (this.pods.get(p.a.podUID) !== p || !spec) return;
    let outcome: ProbeOutcome = 'misconfigured';
    if (p.sent !== undefined) {
      try {
        outcome = await (this.o.probe ?? httpProbe)(
          p.a.podIP,
          spec.port,
          p.sent,
          Math.max(100, Math.round(spec.periodMs * 0.8)),
        );
      } catch (err) {
        this.o.log.error('probe crashed; counted as no answer either way', {
          pod: p.a.pod,
          namespace: p.a.namespace,
          path: p.sent,
          error: errorMessage(err),
        });
      }
    }
    if (this.pods.get(p.a.podUID) !== p) return;
    // A probe never sent says nothing about the Pod: its state stays as it was.
    if (outcome === 'misconfigured') return this.arm(p, Math.max(0, spec.periodMs - (Date.now() - started)));
    const ok = outcome === 'ok';
    const next = nextProbeState(p, ok, p.a.paused === true);
    p.failures = next.failures;
    p.answered = next.answered;
    if (ok) p.reportedAt = undefined;
    const again =
      p.reportedAt !== undefined && Date.now() - p.reportedAt > Math.max(10_000, 10 * spec.periodMs);
    if (p.failures >= spec.failureThreshold && (p.reportedAt === undefined || again)) {
      p.reportedAt = Date.now();
      this.o.log.warn('Pod failed its probes; reporting it to the leader', {
        pod: p.a.pod,
        namespace: p.a.namespace,
        failures: p.failures,
      });
      this.o.report({
        namespace: p.a.namespace,
        podUID: p.a.podUID,
        failures: p.failures,
        restartCount: p.a.restartCount,
        message: `${p.failures} probes in a row of ${hostPort(p.a.podIP, spec.port)}${p.sent ?? ''} failed`,
      });
    }
    this.arm(p, Math.max(0, spec.periodMs - (Date.now() - started)));
  }
}
