// Fault detection rules: probe targets, verdicts, fences and the Lease observer.
import {
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
