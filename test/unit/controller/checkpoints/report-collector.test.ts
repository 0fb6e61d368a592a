// How the leader reads helper reports: one long poll per helper, on a scripted helper client.
import { FakeClock } from '../../../../harness/fake-clock.js';
import type { PodFault, PullReport, ReportBatch } from '../../../../src/api/index.js';
import type { HelperEndpoint } from '../../../../src/controller/kube/cluster-view.js';
import { ReportCollector } from '../../../../src/controller/checkpoints/report-collector.js';
import { createLogger } from '../../../../src/runtime/logger.js';

const report = (sequence: number): PullReport => ({
  ok: false,
  reason: 'PullFailed',
  message: 'x',
  namespace: 'apps',
  podUID: 'u1',
  sequence,
  targets: [],
  pulledAt: sequence,
  durationMs: 1,
});
const fault: PodFault = { namespace: 'apps', podUID: 'u1', failures: 3, restartCount: 0, message: 'x' };

/** Answers queued per call; an empty queue answers after the wait with nothing new. */
let answers: (ReportBatch | Error)[];
let calls: { after: number; boot?: string; waitMs: number }[];
let applied: number[][];
let faults: PodFault[];
let restarted: string[];
let collector: ReportCollector;
const endpoints = new Map<string, HelperEndpoint>([
  ['n1', { node: 'n1', pod: 'helper-n1', url: 'https://n1:9500', healthUrl: 'http://n1:9501', ready: true }],
]);

let term: AbortController;
let clock: FakeClock;
beforeEach(() => {
  term = new AbortController();
  clock = new FakeClock();
  answers = [];
  calls = [];
  applied = [];
  faults = [];
  restarted = [];
  collector = new ReportCollector({
    helpers: {
      reports: async (_url, after, boot, waitMs, signal) => {
        calls.push({ after, ...(boot ? { boot } : {}), waitMs });
        const next = answers.shift();
        if (next instanceof Error) throw next;
        if (next) return next;
        await clock.sleep(waitMs, signal);
        return { boot: 'b1', cursor: after, reports: [] };
      },
    },
    endpoints: () => endpoints,
    apply: (_node, reports) => applied.push(reports.map((r) => r.sequence)),
    faults: (_node, f) => faults.push(...f),
    helperRestarted: (node) => restarted.push(node),
    log: createLogger('test', 'error'),
    waitMs: 20_000,
    signal: term.signal,
    clock,
  });
});
afterEach(() => {
  term.abort();
});

describe('ReportCollector', () => {
  it("learns where a helper's reports stand first (old reports and faults are not acted on), then applies new ones", async () => {
    answers = [
      { boot: 'b1', cursor: 7, reports: [report(1)], faults: [fault] },
      { boot: 'b1', cursor: 9, reports: [report(8), report(9)], faults: [fault] },
    ];
    collector.sync();
    await clock.advance(10);
    expect(calls.slice(0, 3)).toEqual([
      { after: 0, waitMs: 0 },
      { after: 7, boot: 'b1', waitMs: 20_000 },
      { after: 9, boot: 'b1', waitMs: 20_000 },
    ]);
    expect(applied).toEqual([[8, 9]]);
    expect(faults).toEqual([fault]);
    expect(restarted).toEqual([]);
  });

  it('tells when a helper restarted (new boot) and applies what the new one reports', async () => {
    answers = [
      { boot: 'b1', cursor: 7, reports: [] },
      { boot: 'b2', cursor: 1, reports: [report(20)] },
    ];
    collector.sync();
    await clock.advance(10);
    expect(restarted).toEqual(['n1']);
    expect(applied).toEqual([[20]]);
    expect(calls[2]).toEqual({ after: 1, boot: 'b2', waitMs: 20_000 });
  });

  it('backs off while a helper cannot be read, without losing its cursor', async () => {
    answers = [
      { boot: 'b1', cursor: 7, reports: [] },
      new Error('refused'),
      new Error('refused'),
      new Error('refused'),
    ];
    collector.sync();
    await clock.advance(100);
    expect(calls).toHaveLength(2); // the first, then a failure; the retry is due after 250 ms
    await clock.advance(2000);
    // Retries after 250, 500 and 1000 ms (doubling), then it answers again and the long poll waits.
    expect(calls.length).toBe(5);
    expect(calls.slice(1).every((c) => c.after === 7 && c.boot === 'b1')).toBe(true);
  });

  it('stops polling a helper that is gone', async () => {
    collector.sync();
    await clock.advance(10);
    const n = calls.length;
    endpoints.delete('n1');
    collector.sync();
    await clock.advance(60_000);
    expect(calls.length).toBe(n);
    endpoints.set('n1', {
      node: 'n1',
      pod: 'helper-n1',
      url: 'https://n1:9500',
      healthUrl: 'http://n1:9501',
      ready: true,
    });
  });
});
