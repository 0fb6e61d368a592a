// Fault detection rules: probe targets, verdicts, fences and the Lease observer; the detector on a fake clock.
import { jest } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { parseSpec, type ResolvedSpec } from '../../../../src/api/index.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import type { ProbeOutcome } from '../../../../src/runtime/http-probe.js';
import {
  FaultDetector,
  containersStarted,
  probeTarget,
  probeVerdict,
} from '../../../../src/controller/failover/fault-detector.js';
import { withFence } from '../../../../src/controller/failover/node-fence.js';
import { LeaseObserver } from '../../../../src/controller/kube/leader-election.js';

describe('fault detection helpers', () => {
  it('probes the liveness httpGet target (named ports resolved), else the state path', () => {
    const pod = {
      spec: {
        containers: [
          {
            name: 'a',
            ports: [{ name: 'http', containerPort: 9000 }],
            livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
          },
        ],
      },
    };
    expect(probeTarget(pod, { port: 8080, path: '/state' })).toEqual({ port: 9000, path: '/healthz' });
    expect(probeTarget({ spec: { containers: [{ name: 'a' }] } }, { port: 8080, path: '/state' })).toEqual({
      port: 8080,
      path: '/state',
    });
  });
  it("adds and removes only the operator's own taint", () => {
    const other = { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' };
    const fenced = withFence([other], true);
    expect(fenced).toEqual([other, { key: 'pullstate.hitachienergy.com/unreachable', effect: 'NoSchedule' }]);
    expect(withFence(fenced, true)).toHaveLength(2);
    expect(withFence(fenced, false)).toEqual([other]);
  });
  it('judges Lease expiry by the local time the record last changed, not by the holder clock', () => {
    let now = 0;
    const observer = new LeaseObserver(() => now);
    // The holder's clock runs an hour behind: its renewTime looks stale to us, yet it renews every 2 s.
    const lease = (renewed: string) => ({
      spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new Date(renewed) },
    });
    expect(observer.observe(lease('2026-01-01T00:00:00Z'))).toBe(false);
    for (let s = 2; s <= 60; s += 2) {
      now = s * 1000;
      expect(observer.observe(lease(`2026-01-01T00:00:${String(s).padStart(2, '0')}Z`))).toBe(false);
    }
    // The holder stops renewing: expired once the unchanged record is a whole lease duration old locally,
    // even though its renewTime (an hour in the future, say) would never expire by the clocks.
    const last = lease('2099-01-01T00:00:00Z');
    now = 61_000;
    expect(observer.observe(last)).toBe(false);
    now = 75_000;
    expect(observer.observe(last)).toBe(false);
    now = 76_000;
    expect(observer.observe(last)).toBe(true);
    expect(new LeaseObserver(() => 0).observe({ spec: {} })).toBe(true);
  });
});

describe('fast-failover probes', () => {
  const step = (
    s: { failures: number; answered: boolean },
    ok: boolean,
    started = true,
    restoring = false,
    pulledSinceStart = false,
  ) => probeVerdict(s, { ok, started, restoring, pulledSinceStart });

  it('never counts failures of an app that has not answered since it started (a slow start)', () => {
    let s = { failures: 0, answered: false };
    for (let i = 0; i < 100; i++) s = step(s, false);
    expect(s).toEqual({ failures: 0, answered: false });
    s = step(s, true);
    expect(s).toEqual({ failures: 0, answered: true });
    s = step(step(step(s, false), false), false);
    expect(s.failures).toBe(3);
  });

  it('counts nothing before the kubelet reports the containers started (startupProbe), and re-arms then', () => {
    let s = step({ failures: 2, answered: true }, true, false);
    expect(s).toEqual({ failures: 0, answered: false });
    s = step(s, false, true);
    expect(s.failures).toBe(0);
  });

  it('after a takeover, counts failures of a Pod whose current process was checkpointed (it answered)', () => {
    // A new leader never saw the app answer, but a copy with the current restart count proves it did.
    let s = { failures: 0, answered: false };
    s = step(s, false, true, false, true);
    s = step(s, false, true, false, true);
    expect(s).toEqual({ failures: 2, answered: true });
  });

  it('counts nothing while a restore runs', () => {
    expect(step({ failures: 1, answered: true }, false, true, true)).toEqual({ failures: 0, answered: true });
  });

  it('takes containers as started only when every one is running and started', () => {
    const pod = (started: boolean[]) => ({
      status: {
        containerStatuses: started.map((st, i) => ({
          name: `c${i}`,
          image: 'x',
          imageID: '',
          ready: st,
          restartCount: 0,
          started: st,
          state: { running: {} },
        })),
      },
    });
    expect(containersStarted(pod([true, true]))).toBe(true);
    expect(containersStarted(pod([true, false]))).toBe(false);
    expect(containersStarted(pod([]))).toBe(false);
  });
});

// The detector as the leader runs it, on jest's fake clock: scripted probe answers, recorded fault actions.
describe('FaultDetector', () => {
  const spec = (() => {
    const r = parseSpec({
      selector: { matchLabels: { app: 'a' } },
      port: 8080,
      mode: 'http-sf',
      failover: { periodMilliseconds: 200, failureThreshold: 10 },
    });
    if (!r.ok) throw new Error(r.errors.join());
    return r.value as ResolvedSpec;
  })();
  const pod = (name: string, node: string, ip: string): V1Pod => ({
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: { nodeName: node, containers: [{ name: 'app' }] },
    status: {
      podIP: ip,
      containerStatuses: [{ name: 'app', started: true, restartCount: 0, state: { running: {} } } as never],
    },
  });
  const entry = (p: V1Pod) => ({ policyKey: 'ns/p', policy: 'p', policyUID: 'pu', spec, pod: p });
  /** host → answers (true), is not there (false) or refuses; a helper's health address is h-<node>. */
  let up: Record<string, boolean | ProbeOutcome>;
  /** Whether a checkpoint was pulled from each Pod's process (its app answered once). */
  let pulled: boolean;
  /** Each helper's readiness to the leader's probe, and the changes the detector announced. */
  let readyTo: Record<string, boolean>;
  let readinessChanges: string[];
  let givenUp: string[];
  let probes: string[];
  let actions: string[];
  let term: AbortController;
  let detector: FaultDetector;

  beforeEach(() => {
    jest.useFakeTimers({ now: 1_000_000 });
    up = { 'h-n1': true, 'h-n2': true, '10.0.1.5': true, '10.0.2.5': true };
    pulled = true;
    readyTo = {};
    readinessChanges = [];
    givenUp = [];
    probes = [];
    actions = [];
    term = new AbortController();
    detector = new FaultDetector({
      actions: {
        deletePod: async (ns, name) => void actions.push(`delete ${ns}/${name}`),
        setFence: async (node, on) => void actions.push(`fence ${node} ${on ? 'on' : 'off'}`),
      },
      view: {
        helpers: () =>
          new Map(
            ['n1', 'n2'].map((n) => [
              n,
              { node: n, pod: `helper-${n}`, url: `https://${n}:9500`, healthUrl: `http://h-${n}:9501` },
            ]),
          ),
        nodeReadyIgnoringFence: () => true,
        helperProbed: (node: string, _pod: string, ready: boolean) => {
          const changed = (readyTo[node] ?? false) !== ready;
          readyTo[node] = ready;
          return changed;
        },
      } as never,
      nodes: { list: () => [] } as never,
      events: { record: () => undefined } as never,
      log: createLogger('test', 'error'),
      restoring: () => false,
      pulledSinceStart: () => pulled,
      onFault: () => undefined,
      givenUp: (uid) => void givenUp.push(uid),
      onHelperReadiness: (node) => void readinessChanges.push(`${node} ${readyTo[node]}`),
      signal: term.signal,
      probe: async (host) => {
        probes.push(host);
        const answer = up[host] ?? false;
        return answer === true ? 'ok' : answer === false ? 'unreachable' : answer;
      },
    });
    detector.start();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
  });
  afterEach(() => {
    term.abort();
    jest.useRealTimers();
  });

  it('probes only the helpers while they answer: steady work grows with nodes, not Pods', async () => {
    await jest.advanceTimersByTimeAsync(5_000);
    expect(new Set(probes)).toEqual(new Set(['h-n1', 'h-n2']));
    // Every 500 ms per helper.
    expect(probes.filter((h) => h === 'h-n1').length).toBeGreaterThanOrEqual(9);
    expect(probes.filter((h) => h === 'h-n1').length).toBeLessThanOrEqual(10);
    expect(actions).toEqual([]);
  });

  it('fences a node whose helper and Pods stop answering, deletes its Pods once, and unfences it later', async () => {
    await jest.advanceTimersByTimeAsync(1_000);
    up['h-n1'] = false;
    up['10.0.1.5'] = false;
    // One missed helper probe starts probing the node's Pods; three make the node down (1.5 s, before the
    // Pod's own threshold of 10 × 200 ms); a failed Pod probe then confirms it.
    await jest.advanceTimersByTimeAsync(2_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
    // Whatever its process does from now on (it may run on) is not the Pod's state any more.
    expect(givenUp).toEqual(['uid-a']);
    expect(probes).toContain('10.0.1.5');
    expect(probes).not.toContain('10.0.2.5');
    await jest.advanceTimersByTimeAsync(3_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
    up['h-n1'] = true;
    await jest.advanceTimersByTimeAsync(1_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a', 'fence n1 off']);
  });

  it('fences a silent node even if its Pod was never seen answering (restored there, never pulled)', async () => {
    pulled = false;
    await jest.advanceTimersByTimeAsync(1_000);
    up['h-n1'] = false;
    up['10.0.1.5'] = false;
    await jest.advanceTimersByTimeAsync(2_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('leaves a node alone whose helper and never-answered Pod refuse connections (it is there)', async () => {
    pulled = false;
    await jest.advanceTimersByTimeAsync(1_000);
    up['h-n1'] = 'failed';
    up['10.0.1.5'] = 'failed';
    await jest.advanceTimersByTimeAsync(5_000);
    expect(probes).toContain('10.0.1.5');
    expect(actions).toEqual([]);
  });

  it('takes a Pod probe that could not even be sent (misconfigured) as no evidence, never as a failure', async () => {
    await jest.advanceTimersByTimeAsync(1_000);
    up['h-n1'] = false;
    up['10.0.1.5'] = 'misconfigured';
    await jest.advanceTimersByTimeAsync(5_000);
    expect(probes.filter((h) => h === '10.0.1.5').length).toBeGreaterThan(10);
    expect(actions).toEqual([]);
  });

  it('counts a helper that answers not ready as there (no Pod probes), and says when its readiness changes', async () => {
    await jest.advanceTimersByTimeAsync(600);
    expect(readinessChanges).toEqual(['n1 true', 'n2 true']);
    up['h-n1'] = 'error'; // 503 from /readyz
    up['10.0.1.5'] = false;
    await jest.advanceTimersByTimeAsync(3_000);
    expect(probes).not.toContain('10.0.1.5');
    expect(actions).toEqual([]);
    expect(readinessChanges).toEqual(['n1 true', 'n2 true', 'n1 false']);
  });

  it("stops probing a node's Pods from here once its helper answers again, without acting", async () => {
    up['h-n1'] = false;
    await jest.advanceTimersByTimeAsync(600);
    up['h-n1'] = true;
    await jest.advanceTimersByTimeAsync(600);
    const n = probes.filter((h) => h === '10.0.1.5').length;
    expect(n).toBeGreaterThan(0);
    await jest.advanceTimersByTimeAsync(5_000);
    expect(probes.filter((h) => h === '10.0.1.5').length).toBe(n);
    expect(actions).toEqual([]);
  });

  it('deletes a Pod its helper reports failed, once, unless it restarted since', async () => {
    detector.podFaultReported('n2', { podUID: 'uid-b', restartCount: 1, message: 'probe failed' } as never);
    await jest.advanceTimersByTimeAsync(10);
    expect(actions).toEqual([]);
    detector.podFaultReported('n1', { podUID: 'uid-b', restartCount: 0, message: 'probe failed' } as never);
    await jest.advanceTimersByTimeAsync(10);
    expect(actions).toEqual([]);
    detector.podFaultReported('n2', { podUID: 'uid-b', restartCount: 0, message: 'probe failed' } as never);
    detector.podFaultReported('n2', { podUID: 'uid-b', restartCount: 0, message: 'probe failed' } as never);
    await jest.advanceTimersByTimeAsync(10);
    expect(actions).toEqual(['delete ns/b']);
  });

  it('probes nothing once the term ends', async () => {
    await jest.advanceTimersByTimeAsync(1_000);
    term.abort();
    const n = probes.length;
    await jest.advanceTimersByTimeAsync(10_000);
    expect(probes.length).toBe(n);
  });
});
