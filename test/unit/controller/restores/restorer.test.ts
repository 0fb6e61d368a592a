// The restore of an orphan's copy into a new Pod, on a FakeClock, with a scripted helper answer and the
// gate writes recorded (the API server side is in the integration tests).
import type { V1Pod } from '@kubernetes/client-node';
import { parseSpec, type RestoreResult, type ResolvedSpec } from '../../../../src/api/index.js';
import { CheckpointBook } from '../../../../src/controller/checkpoints/checkpoint-book.js';
import { Restorer } from '../../../../src/controller/restores/restorer.js';
import { seenBaseline } from '../../../../src/controller/restores/restore-plan.js';
import type { RestoreAnswer } from '../../../../src/controller/kube/helper-client.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import { FakeClock } from '../../../../harness/fake-clock.js';
import { record } from '../records.js';

const spec = (() => {
  const r = parseSpec({ selector: { matchLabels: { app: 'a' } }, port: 8080 });
  if (!r.ok) throw new Error(r.errors.join());
  return r.value;
})();

const pod: V1Pod = {
  metadata: { name: 'new', namespace: 'ns', uid: 'uid-new', creationTimestamp: new Date() },
  spec: {
    containers: [{ name: 'app' }],
    readinessGates: [{ conditionType: 'pullstate.hitachienergy.com/restored' }],
  },
  status: { podIP: '10.0.0.9', containerStatuses: [] },
};

let answers: RestoreAnswer[];
let gates: [string, string][];
let reports: string[];
let restorer: Restorer;
let term: AbortController;
let clock: FakeClock;
let restoreCalls: number;
/** The new Pod is looked at (a reconcile), with the helper answering as `answers` say. */
let begin: (s?: ResolvedSpec) => void;
let book: CheckpointBook;

beforeEach(() => {
  clock = new FakeClock();
  term = new AbortController();
  restoreCalls = 0;
  gates = [];
  reports = [];
  book = new CheckpointBook();
  const orphan = record('old', [['n2', 100]], { orphanedSince: 0 });
  book.ensure(orphan);
  Object.assign(book.get(orphan.podUID)!, orphan);
  restorer = new Restorer({
    gate: {
      set: async (_p: V1Pod, status: string, reason: string) => void gates.push([status, reason]),
    },
    book,
    view: {
      usableHelpers: () =>
        new Map([
          ['n2', { node: 'n2', pod: 'h2', url: 'http://n2:9500', healthUrl: 'http://n2:9501', ready: true }],
        ]),
      helpers: () => new Map(),
    },
    helpers: {
      restore: async () => {
        restoreCalls++;
        return (answers.length > 1 ? answers.shift() : answers[0])!;
      },
      delete: async () => undefined,
    },
    events: {
      record: (_o: unknown, _t: string, _r: string, text: string) => void reports.push(text),
    },
    metrics: { restores: { inc: () => undefined }, failoverSeconds: { observe: () => undefined } },
    log: createLogger('test', 'error'),
    onChange: () => undefined,
    livePod: () => pod,
    requeue: () => undefined,
    pullNow: async () => undefined,
    livePodByUID: () => pod,
    signal: term.signal,
    clock,
  });
  begin = (s = spec) =>
    restorer.consider(
      [{ policyKey: 'ns/p', policy: 'p', policyUID: 'pu', workload: 'Deployment/app', spec: s, pod }],
      [book.get(orphan.podUID)!],
    );
});
afterEach(() => term.abort());

/** What a helper answers that holds nothing (never asked in the test that uses it). */
const noAnswer: RestoreAnswer = { result: 'Failed', reason: 'NotStored', message: 'not stored' };

const rejected: RestoreResult = {
  result: 'Failed',
  reason: 'Rejected',
  status: 404,
  message: 'the Pod answered 404',
  durationMs: 1,
  sequence: 100,
  digest: 'sha256:x',
  sizeBytes: 10,
};

describe('Restorer', () => {
  it('restores an orphan whose first replacement was lost before its own first checkpoint', async () => {
    // 'old' was restored into 'mid', which was lost too before anything was pulled from it.
    book.get('uid-old')!.claimedBy = 'uid-mid';
    book.ensure({ namespace: 'ns', policy: 'p', pod: 'mid', podUID: 'uid-mid' }).orphanedSince = 50;
    answers = [
      { result: 'Succeeded', status: 200, durationMs: 3, sequence: 100, digest: 'sha256:x', sizeBytes: 10 },
    ];
    begin();
    await clock.advance(10);
    expect(gates).toEqual([['True', 'Restored']]);
    expect(book.get('uid-old')!.claimedBy).toBe('uid-new');
  });

  it('restores an orphan into a fresh Pod and opens its gate', async () => {
    answers = [
      { result: 'Succeeded', status: 200, durationMs: 3, sequence: 100, digest: 'sha256:x', sizeBytes: 10 },
    ];
    begin();
    await clock.advance(10);
    expect(gates).toEqual([['True', 'Restored']]);
    expect(restorer.isSettled('uid-new')).toBe(true);
    expect(reports[0]).toContain('restored 10 bytes (sequence 100) from Pod old via node n2');
    // Later copies of the old Pod are of a process given up for lost: never its state.
    expect(book.get('uid-old')!.sealed).toBe(100);
  });

  it('retries while the app is not listening, then restores', async () => {
    const unreachable: RestoreResult = { ...rejected, reason: 'Unreachable', status: undefined };
    answers = [
      unreachable,
      unreachable,
      unreachable,
      { result: 'Succeeded', status: 200, durationMs: 3, sequence: 100, digest: 'sha256:x', sizeBytes: 10 },
    ];
    begin();
    await clock.advance(100);
    expect(restorer.isSettled('uid-new')).toBe(false);
    expect(gates).toEqual([]);
    await clock.advance(1000);
    expect(gates).toEqual([['True', 'Restored']]);
  });

  it('gives up a state the app refuses five times: the Pod starts without it and is not retried', async () => {
    answers = [rejected];
    begin();
    await clock.advance(5000);
    expect(gates).toEqual([['True', 'RestoreRejected']]);
    expect(restorer.isSettled('uid-new')).toBe(true);
    expect(reports.at(-1)).toContain(
      'the app refused the state 5 times (the Pod answered 404); the Pod starts without it',
    );
    const n = reports.length;
    await clock.advance(60_000);
    expect(reports.length).toBe(n);
  });

  it('retries fast at first, then at a 2 s beat, and stops every retry when the term ends', async () => {
    answers = [{ ...rejected, reason: 'Unreachable', status: undefined }];
    begin();
    // 40 attempts at 50 ms doubling to a 250 ms ceiling: about 9.5 s.
    await clock.advance(9_000);
    expect(restoreCalls).toBeGreaterThanOrEqual(35);
    expect(restoreCalls).toBeLessThanOrEqual(40);
    const fast = restoreCalls;
    await clock.advance(10_000);
    expect(restoreCalls - fast).toBeGreaterThanOrEqual(5);
    expect(restoreCalls - fast).toBeLessThanOrEqual(8);
    term.abort();
    const stopped = restoreCalls;
    await clock.advance(60_000);
    expect(restoreCalls).toBe(stopped);
    expect(gates).toEqual([]);
  });

  it('stops a restore the helper refuses as asked, keeps the gate closed, and tries again only after a change', async () => {
    answers = [
      {
        result: 'Failed',
        reason: 'Refused',
        status: 400,
        message: 'helper refused the restore request (400): body/timeoutMs must be <= 600000',
      },
    ];
    begin();
    await clock.advance(60_000);
    expect(restoreCalls).toBe(1);
    expect(gates).toEqual([['False', 'RestoreFailed']]);
    expect(restorer.isSettled('uid-new')).toBe(false);
    expect(reports.at(-1)).toMatch(/restore of Pod old's state stopped: helper refused .*Fix the policy/);
    // Reconciles of the same policy and Pod do not retry it.
    begin();
    await clock.advance(60_000);
    expect(restoreCalls).toBe(1);
    // The policy changed: the restore runs again.
    answers = [
      { result: 'Succeeded', status: 200, durationMs: 3, sequence: 100, digest: 'sha256:x', sizeBytes: 10 },
    ];
    begin({ ...spec, timeoutSeconds: 5, restorePath: '/restore' });
    await clock.advance(10);
    expect(restoreCalls).toBe(2);
    expect(gates.at(-1)).toEqual(['True', 'Restored']);
    expect(restorer.isSettled('uid-new')).toBe(true);
  });
});

describe('Restorer with a sidecar', () => {
  it('takes a switch of the app container (spec.container) as a new baseline, never as a restart', async () => {
    // A running Pod, checkpointed: its app container never restarted, its proxy three times.
    const live: V1Pod = {
      metadata: { name: 'live', namespace: 'ns', uid: 'uid-live', creationTimestamp: new Date(0) },
      spec: { containers: [{ name: 'app' }, { name: 'proxy' }] },
      status: {
        podIP: '10.0.0.7',
        containerStatuses: [
          { name: 'app', restartCount: 0, ready: true, image: 'a', imageID: 'a', started: true },
          { name: 'proxy', restartCount: 3, ready: true, image: 'p', imageID: 'p', started: true },
        ],
      },
    };
    const own = record('live', [['n2', 100]]);
    own.generations[0]!.restartCount = 0;
    book.ensure(own);
    Object.assign(book.get(own.podUID)!, own);
    let calls = 0;
    const r = new Restorer({
      gate: { set: async () => undefined },
      book,
      view: { usableHelpers: () => new Map(), helpers: () => new Map() },
      helpers: { restore: async () => (calls++, noAnswer), delete: async () => undefined },
      events: { record: () => undefined },
      metrics: { restores: { inc: () => undefined }, failoverSeconds: { observe: () => undefined } },
      log: createLogger('test', 'error'),
      onChange: () => undefined,
      livePod: () => live,
      requeue: () => undefined,
      pullNow: async () => undefined,
      livePodByUID: () => live,
      signal: term.signal,
      clock,
    });
    const look = (container: string) =>
      r.consider(
        [
          {
            policyKey: 'ns/p',
            policy: 'p',
            policyUID: 'pu',
            workload: 'Deployment/app',
            spec: { ...spec, container },
            pod: live,
          },
        ],
        [],
      );
    look('app');
    await clock.advance(1000);
    expect(r.isSettled('uid-live')).toBe(true);
    // The user points the policy at the proxy: its 3 restarts are no restart of the app seen so far.
    look('proxy');
    await clock.advance(1000);
    expect(calls).toBe(0);
    expect(r.isSettled('uid-live')).toBe(true);
    term.abort();
  });
});

describe('seenBaseline', () => {
  it('is the count seen last for the same container, and the current count for another one', () => {
    expect(seenBaseline(undefined, 'app', 3)).toBeUndefined();
    expect(seenBaseline({ container: 'app', restarts: 1 }, 'app', 3)).toBe(1);
    expect(seenBaseline({ container: 'app', restarts: 0 }, 'proxy', 3)).toBe(3);
  });
});
