// The helper's probing of its node's fast-failover Pods, on a fake clock with a scripted probe answer.
import { jest } from '@jest/globals';
import type { PodFault, PullAssignment } from '../../../src/api/index.js';
import { PodProber, nextProbeState } from '../../../src/helper/pod-prober.js';
import { createLogger } from '../../../src/runtime/logger.js';

const a = (over: Partial<PullAssignment> = {}): PullAssignment => ({
  namespace: 'apps',
  policy: 'p',
  policyUID: 'pu',
  pod: 'c-0',
  podUID: 'u1',
  podIP: '10.0.0.5',
  port: 8080,
  path: '/state',
  intervalMs: 1000,
  timeoutMs: 1000,
  maxBytes: 100,
  restartCount: 0,
  targets: [],
  lastSequence: 0,
  probe: { port: 8080, path: '/healthz', periodMs: 100, failureThreshold: 3 },
  ...over,
});

let answer = true;
let probes = 0;
let faults: PodFault[] = [];
let prober: PodProber;

beforeEach(() => {
  jest.useFakeTimers();
  answer = true;
  probes = 0;
  faults = [];
  prober = new PodProber({
    report: (f) => faults.push(f),
    log: createLogger('test', 'error'),
    probe: async () => {
      probes++;
      return answer ? 'ok' : 'failed';
    },
  });
});
afterEach(() => {
  prober.stop();
  jest.useRealTimers();
});

describe('probe verdicts', () => {
  it('counts failures only after the app answered, and not while it is being restored', () => {
    expect(nextProbeState({ failures: 0, answered: false }, false, false)).toEqual({
      failures: 0,
      answered: false,
    });
    expect(nextProbeState({ failures: 2, answered: true }, false, true)).toEqual({
      failures: 0,
      answered: true,
    });
    expect(nextProbeState({ failures: 2, answered: true }, false, false)).toEqual({
      failures: 3,
      answered: true,
    });
    expect(nextProbeState({ failures: 2, answered: true }, true, false)).toEqual({
      failures: 0,
      answered: true,
    });
  });
});

describe('PodProber', () => {
  it('probes at the period and reports a Pod once after failureThreshold failures in a row', async () => {
    prober.assign([a()]);
    await jest.advanceTimersByTimeAsync(350);
    expect(probes).toBeGreaterThanOrEqual(3);
    expect(faults).toEqual([]);
    answer = false;
    await jest.advanceTimersByTimeAsync(300);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ podUID: 'u1', failures: 3, restartCount: 0 });
    await jest.advanceTimersByTimeAsync(1000);
    expect(faults).toHaveLength(1); // not repeated at every probe
    await jest.advanceTimersByTimeAsync(10_000);
    expect(faults.length).toBe(2); // repeated after a while, in case the leader missed it
  });

  it('never reports an app that has not answered since its start (slow start), nor a paused one', async () => {
    answer = false;
    prober.assign([a()]);
    await jest.advanceTimersByTimeAsync(2000);
    expect(probes).toBeGreaterThan(10);
    expect(faults).toEqual([]);
    answer = true;
    await jest.advanceTimersByTimeAsync(200);
    prober.assign([a({ paused: true })]);
    answer = false;
    await jest.advanceTimersByTimeAsync(2000);
    expect(faults).toEqual([]);
  });

  it('gives a restarted container a fresh start, and stops probing a Pod no longer assigned or without probe', async () => {
    prober.assign([a()]);
    await jest.advanceTimersByTimeAsync(200);
    answer = false;
    await jest.advanceTimersByTimeAsync(150);
    prober.assign([a({ restartCount: 1 })]);
    await jest.advanceTimersByTimeAsync(2000);
    expect(faults).toEqual([]);
    prober.assign([a({ probe: undefined })]);
    const before = probes;
    await jest.advanceTimersByTimeAsync(1000);
    expect(probes).toBe(before);
  });
});
