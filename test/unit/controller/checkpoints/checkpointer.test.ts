// What the checkpointer assigns to helpers, what a report does to the book, and the final pulls of a
// terminating Pod, on a FakeClock with a scripted helper client.
import type { V1Pod } from '@kubernetes/client-node';
import { parseSpec, type PullAssignment, type PullReport } from '../../../../src/api/index.js';
import { CheckpointBook, newestCopy } from '../../../../src/controller/checkpoints/checkpoint-book.js';
import { Checkpointer, type ProtectedPod } from '../../../../src/controller/checkpoints/checkpointer.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import { FakeClock } from '../../../../harness/fake-clock.js';
import type { HelperTarget } from '../../../../src/controller/kube/helper-client.js';

const spec = (() => {
  const r = parseSpec({ selector: { matchLabels: { app: 'a' } }, port: 8080, copies: 1 });
  if (!r.ok) throw new Error(r.errors.join());
  return r.value;
})();

const pod = (name: string, node: string): V1Pod => ({
  metadata: { name, namespace: 'ns', uid: `uid-${name}`, deletionGracePeriodSeconds: 30 },
  spec: { nodeName: node, containers: [{ name: 'app' }] },
  status: {
    podIP: '10.0.1.5',
    containerStatuses: [{ name: 'app', restartCount: 0, image: 'a', imageID: 'a', ready: true }],
  },
});
const entry = (p: V1Pod): ProtectedPod => ({ policyKey: 'ns/p', policy: 'p', policyUID: 'pu', spec, pod: p });
const helper = (node: string, ready = true) => ({
  node,
  pod: `h-${node}`,
  url: `https://${node}:9500`,
  healthUrl: `http://${node}:9501`,
  ready,
});

/** The app's state as the final pulls find it: one digest per pull while it still changes. */
let stateDigest: (pull: number) => string;

function stored(a: PullAssignment, sequence: number): PullReport {
  const meta = {
    id: `ns_${a.podUID}`,
    namespace: 'ns',
    policy: 'p',
    policyUID: 'pu',
    pod: a.pod,
    podUID: a.podUID,
    sequence,
    restartCount: 0,
    pulledAt: clock.now(),
    digest: stateDigest(pulls),
    sizeBytes: 42,
    contentType: 'application/json',
    storedAt: new Date().toISOString(),
  };
  return {
    ok: true,
    sizeBytes: 42,
    digest: meta.digest,
    contentType: 'application/json',
    stored: a.targets.map((t) => ({ node: t.node, meta })),
    failed: [],
    durationMs: 3,
    namespace: 'ns',
    podUID: a.podUID,
    sequence,
    targets: a.targets.map((t) => t.node),
    pulledAt: clock.now(),
  };
}

let book: CheckpointBook;
let helpers: Map<string, ReturnType<typeof helper>>;
let events: string[];
let pulls: number;
let deletes: string[];
let paused: Set<string>;
let term: AbortController;
let checkpointer: Checkpointer;
let clock: FakeClock;

beforeEach(() => {
  clock = new FakeClock(1_000_000);
  book = new CheckpointBook();
  helpers = new Map(['n1', 'n2', 'n3'].map((n) => [n, helper(n)]));
  events = [];
  pulls = 0;
  stateDigest = () => `sha256:${'b'.repeat(64)}`;
  deletes = [];
  paused = new Set();
  term = new AbortController();
  const counter = { inc: () => undefined, set: () => undefined, observe: () => undefined };
  checkpointer = new Checkpointer({
    book,
    view: { usableHelpers: () => helpers, helpers: () => helpers },
    helpers: {
      pull: async (_helper: HelperTarget, a: PullAssignment) => (pulls++, stored(a, a.lastSequence + 1)),
      delete: async ({ url }: HelperTarget, _ns: string, uid: string, newerThan?: number) =>
        void deletes.push(`${url} ${uid} newer than ${newerThan}`),
    },
    metrics: {
      pulls: counter,
      pullFailures: counter,
      pullSeconds: counter,
      pullBytes: counter,
      protectedPods: counter,
    },
    events: {
      record: (_o: unknown, type: string, reason: string) => void events.push(`${type} ${reason}`),
    },
    log: createLogger('test', 'error'),
    onChange: () => undefined,
    mayPull: (p) => !paused.has(p.metadata!.uid!),
    signal: term.signal,
    clock,
  });
});
afterEach(() => {
  term.abort();
});

describe('Checkpointer', () => {
  it("assigns each Pod to its own node's helper with copies for another node, paused while it is being restored", () => {
    checkpointer.sync('ns/p', [entry(pod('a', 'n1')), entry(pod('b', 'n2'))]);
    paused.add('uid-b');
    const out = checkpointer.assignments();
    const a = out.get('n1')!.find((x) => x.podUID === 'uid-a')!;
    expect(a.targets).toHaveLength(1);
    expect(a.targets[0]!.node).not.toBe('n1');
    expect(a.paused).toBeUndefined();
    expect(out.get('n2')!.find((x) => x.podUID === 'uid-b')!.paused).toBe(true);
  });

  it('reports a Pod whose node has no Ready helper as failing, once per outage, and assigns it nowhere', () => {
    helpers.set('n1', helper('n1', false));
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    expect(checkpointer.assignments().get('n1')).toBeUndefined();
    checkpointer.assignments();
    expect(events).toEqual(['Warning HelperUnavailable', 'Warning HelperUnavailable']); // policy + Pod
    expect(book.get('uid-a')!.lastFailure?.reason).toBe('HelperUnavailable');
  });

  it('does not report a Pod as failing while a helper the API shows not Ready still sends its copies', () => {
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const a = checkpointer.assignments().get('n1')![0]!;
    checkpointer.applyReports([stored(a, 1)]);
    // After a heal: the node's helper is not Ready in the API yet, but its reports keep arriving.
    helpers.set('n1', helper('n1', false));
    for (let i = 2; i < 6; i++) {
      clock.set(clock.monotonic() + spec.intervalSeconds * 1000);
      checkpointer.assignments();
      checkpointer.applyReports([stored(a, i)]);
    }
    expect(events).toEqual([]);
    expect(book.get('uid-a')!.lastFailure).toBeUndefined();
    // Its reports stop: after three intervals without a copy, the Pod is failing (once).
    clock.set(clock.monotonic() + 3 * spec.intervalSeconds * 1000);
    checkpointer.assignments();
    checkpointer.assignments();
    expect(events).toEqual(['Warning HelperUnavailable', 'Warning HelperUnavailable']);
  });

  it('discards the copies of a Pod given up for lost that still runs once its state went to a replacement', () => {
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const a = checkpointer.assignments().get('n1')![0]!;
    checkpointer.applyReports([stored(a, 7)]);
    const r = book.get('uid-a')!;
    r.sealed = 7; // restored into its replacement; then its node heals and its helper pulls it again
    checkpointer.applyReports([stored(a, 9)]);
    expect(newestCopy(r)?.sequence).toBe(7);
    expect(r.generations.map((c) => c.sequence)).toEqual([7]);
    expect(deletes).toEqual([`https://${a.targets[0]!.node}:9500 uid-a newer than 7`]);
  });

  it('stores a good report and keeps the good copy when a later pull fails', () => {
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const a = checkpointer.assignments().get('n1')![0]!;
    checkpointer.applyReports([stored(a, 7)]);
    expect(newestCopy(book.get('uid-a')!)?.sequence).toBe(7);
    checkpointer.applyReports([
      {
        ok: false,
        reason: 'PullFailed',
        message: 'answered 500',
        durationMs: 2,
        namespace: 'ns',
        podUID: 'uid-a',
        sequence: 8,
        targets: [],
        pulledAt: clock.now(),
      },
    ]);
    const r = book.get('uid-a')!;
    expect(newestCopy(r)?.sequence).toBe(7);
    expect(r.lastFailure?.reason).toBe('PullFailed');
    expect(events).toContain('Warning PullFailed');
  });

  it('pulls a terminating Pod every 100 ms until its replacement claims the copy', async () => {
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const done = checkpointer.finalize('uid-a');
    await clock.advance(1000);
    expect(pulls).toBeGreaterThanOrEqual(9);
    expect(pulls).toBeLessThanOrEqual(11);
    book.get('uid-a')!.claimedBy = 'uid-new';
    await clock.advance(200);
    const final = pulls;
    await clock.advance(5000);
    await done;
    expect(pulls).toBe(final);
    expect(newestCopy(book.get('uid-a')!)?.sequence).toBe(final);
  });

  it('keeps pulling a claimed Pod until its state stopped changing (SIGTERM came after the claim)', async () => {
    // The state changes with every pull until the 15th (the app got SIGTERM), then stays.
    stateDigest = (n) => `sha256:${String(Math.min(n, 15)).padStart(64, '0')}`;
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const done = checkpointer.finalize('uid-a');
    await clock.advance(500);
    book.get('uid-a')!.claimedBy = 'uid-new';
    const r = book.get('uid-a')!;
    expect(r.finalSettled).not.toBe(true);
    await clock.advance(5000);
    await done;
    // Two alike pulls (15 and 16) settle it: the copy restored has the state after SIGTERM.
    expect(pulls).toBe(16);
    expect(r.finalSettled).toBe(true);
    expect(newestCopy(r)?.digest).toBe(stateDigest(15));
  });

  it('judges the state still only around the claim: a pause right after the deletion is not SIGTERM', async () => {
    // Alike for the first pulls (the app idle a moment), then changing until the 12th pull, then still.
    stateDigest = (n) => `sha256:${String(n <= 3 ? 0 : Math.min(n, 12)).padStart(64, '0')}`;
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const done = checkpointer.finalize('uid-a');
    // Every update of the terminating Pod asks again: one loop of pulls, not two.
    void checkpointer.finalize('uid-a');
    await clock.advance(450);
    expect(pulls).toBeLessThanOrEqual(5);
    book.get('uid-a')!.claimedBy = 'uid-new';
    await clock.advance(5000);
    await done;
    expect(pulls).toBe(13);
    expect(newestCopy(book.get('uid-a')!)?.digest).toBe(stateDigest(12));
  });

  it('restores a claimed copy after 2 s even if the app never stops changing its state', async () => {
    stateDigest = (n) => `sha256:${String(n).padStart(64, '0')}`;
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const done = checkpointer.finalize('uid-a');
    await clock.advance(300);
    book.get('uid-a')!.claimedBy = 'uid-new';
    await clock.advance(10_000);
    await done;
    expect(book.get('uid-a')!.finalSettled).toBe(true);
    // About 2 s of pulls after the claim at 100 ms apart, not the 30 s of the grace period.
    expect(pulls).toBeGreaterThanOrEqual(20);
    expect(pulls).toBeLessThanOrEqual(26);
  });

  it('ends the final pulls when the term ends', async () => {
    checkpointer.sync('ns/p', [entry(pod('a', 'n1'))]);
    const done = checkpointer.finalize('uid-a');
    await clock.advance(300);
    term.abort();
    await clock.advance(200);
    const n = pulls;
    await clock.advance(10_000);
    await done;
    expect(pulls).toBe(n);
  });
});
