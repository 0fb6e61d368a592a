// What the leader sends to helpers, and when, on a fake clock with a recording helper client.
import { FakeClock } from '../../../../harness/fake-clock.js';
import type { AssignmentSet, HoldSet, PullAssignment } from '../../../../src/api/index.js';
import {
  AssignmentPublisher,
  holdsFor,
  holdsOf,
} from '../../../../src/controller/checkpoints/assignment-publisher.js';
import type { HelperEndpoint } from '../../../../src/controller/kube/cluster-view.js';
import { createLogger } from '../../../../src/runtime/logger.js';

const pod = (uid: string, over: Partial<PullAssignment> = {}): PullAssignment => ({
  namespace: 'apps',
  policy: 'p',
  policyUID: 'pu',
  pod: uid,
  podUID: uid,
  podIP: '10.0.0.5',
  port: 8080,
  path: '/state',
  intervalMs: 1000,
  timeoutMs: 1000,
  maxBytes: 100,
  restartCount: 0,
  targets: [],
  lastSequence: 0,
  ...over,
});

const ep = (node: string, ready = true): HelperEndpoint => ({
  node,
  pod: `helper-${node}`,
  url: `https://${node}:9500`,
  healthUrl: `http://${node}:9501`,
  ready,
});

let sent: { url: string; set: AssignmentSet }[];
/** Every call in order: `holds <url> <n>` or `assign <url> <n>`. */
let calls: string[];
/** Helpers older than holds (they answer 404). */
let old: Set<string>;
let failing: Set<string>;
/** Helpers whose calls never answer (their node was just lost). */
let hanging: Set<string>;
let wanted: Map<string, PullAssignment[]>;
let endpoints: Map<string, HelperEndpoint>;
let publisher: AssignmentPublisher;
let term: AbortController;

let clock: FakeClock;
beforeEach(() => {
  clock = new FakeClock();
  term = new AbortController();
  sent = [];
  calls = [];
  old = new Set();
  failing = new Set();
  hanging = new Set();
  wanted = new Map([['n1', [pod('a')]]]);
  endpoints = new Map([
    ['n1', ep('n1')],
    ['n2', ep('n2')],
  ]);
  publisher = new AssignmentPublisher({
    helpers: {
      assign: async ({ url }, set) => {
        if (failing.has(url)) throw new Error('connection refused');
        if (hanging.has(url)) return new Promise<never>(() => undefined);
        sent.push({ url, set });
        calls.push(`assign ${url} ${set.pods.length}`);
      },
      holds: async ({ url }, set: HoldSet) => {
        if (failing.has(url)) throw new Error('connection refused');
        if (hanging.has(url)) return new Promise<never>(() => undefined);
        if (old.has(url)) return false;
        calls.push(`holds ${url} ${set.holds.map((h) => `${h.podUID}@${h.node}`).join(',')}`);
        return true;
      },
    },
    endpoints: () => endpoints,
    build: () => wanted,
    log: createLogger('test', 'error'),
    debounceMs: 50,
    resyncMs: 1000,
    refreshMs: 60_000,
    signal: term.signal,
    clock,
  });
});
afterEach(() => {
  term.abort();
});

describe('AssignmentPublisher', () => {
  it('sends every Ready helper its set once (an empty one too), then nothing while nothing changes', async () => {
    publisher.start();
    await clock.advance(100);
    expect(sent.map((s) => [s.url, s.set.pods.map((p) => p.podUID)])).toEqual([
      ['https://n1:9500', ['a']],
      ['https://n2:9500', []],
    ]);
    await clock.advance(10_000);
    expect(sent).toHaveLength(2);
  });

  it('coalesces changes within the debounce window and sends only the node whose set changed', async () => {
    publisher.start();
    await clock.advance(100);
    sent = [];
    wanted = new Map([['n1', [pod('a', { paused: true })]]]);
    publisher.poke();
    wanted = new Map([['n1', [pod('a'), pod('b')]]]);
    publisher.poke();
    await clock.advance(60);
    expect(sent.map((s) => [s.url, s.set.pods.map((p) => p.podUID)])).toEqual([
      ['https://n1:9500', ['a', 'b']],
    ]);
  });

  it('does not resend a set whose only change is a higher lastSequence; a restarted helper gets the newest', async () => {
    publisher.start();
    await clock.advance(100);
    sent = [];
    for (let seq = 1; seq <= 5; seq++) {
      wanted = new Map([['n1', [pod('a', { lastSequence: seq * 1000 })]]]);
      publisher.poke();
      await clock.advance(1000);
    }
    expect(sent).toEqual([]);
    publisher.forget('n1');
    await clock.advance(60);
    expect(sent.map((s) => [s.url, s.set.pods.map((p) => p.lastSequence)])).toEqual([
      ['https://n1:9500', [5000]],
    ]);
  });

  it('retries a helper that failed at the next resync, and sends again to a helper that restarted', async () => {
    failing.add('https://n2:9500');
    publisher.start();
    await clock.advance(100);
    expect(sent.map((s) => s.url)).toEqual(['https://n1:9500']);
    failing.clear();
    await clock.advance(1000);
    expect(sent.map((s) => s.url)).toEqual(['https://n1:9500', 'https://n2:9500']);
    publisher.forget('n1');
    await clock.advance(60);
    expect(sent.map((s) => s.url)).toEqual(['https://n1:9500', 'https://n2:9500', 'https://n1:9500']);
  });

  it('sends nothing to a helper that is not Ready, and refreshes every set after refreshMs', async () => {
    endpoints.set('n2', ep('n2', false));
    publisher.start();
    await clock.advance(100);
    expect(sent.map((s) => s.url)).toEqual(['https://n1:9500']);
    await clock.advance(61_000);
    expect(sent.map((s) => s.url)).toEqual(['https://n1:9500', 'https://n1:9500']);
  });

  it("keeps sending the other helpers' changes while one helper's call hangs", async () => {
    publisher.start();
    await clock.advance(100);
    sent = [];
    hanging.add('https://n2:9500');
    wanted = new Map([
      ['n1', [pod('a')]],
      ['n2', [pod('b')]],
    ]);
    publisher.poke();
    await clock.advance(60);
    wanted = new Map([
      ['n1', [pod('a'), pod('c')]],
      ['n2', [pod('b')]],
    ]);
    publisher.poke();
    await clock.advance(60);
    expect(sent.map((s) => [s.url, s.set.pods.map((p) => p.podUID)])).toEqual([
      ['https://n1:9500', ['a', 'c']],
    ]);
  });

  it('tells every helper which Pods it may take copies of and from which node, before its assignments', async () => {
    wanted = new Map([['n1', [pod('a', { targets: [{ node: 'n2', url: 'https://n2:9500' }] })]]]);
    publisher.start();
    await clock.advance(100);
    // Helpers are sent to side by side; each gets its holds (all Pods but its own node's) first.
    expect(calls.filter((c) => c.includes('n1:'))).toEqual([
      'holds https://n1:9500 ',
      'assign https://n1:9500 1',
    ]);
    expect(calls.filter((c) => c.includes('n2:'))).toEqual([
      'holds https://n2:9500 a@n1',
      'assign https://n2:9500 0',
    ]);
    // A new Pod on n1 changes n2's holds, not its assignments: n2 gets its holds alone.
    calls = [];
    wanted = new Map([['n1', [pod('b', { targets: [{ node: 'n2', url: 'https://n2:9500' }] })]]]);
    publisher.poke();
    await clock.advance(100);
    expect(calls.filter((c) => c.includes('n2:'))).toEqual(['holds https://n2:9500 b@n1']);
    // A helper from before holds answers 404: it is not asked again until it restarts.
    old.add('https://n2:9500');
    wanted = new Map([['n1', [pod('c', { targets: [{ node: 'n2', url: 'https://n2:9500' }] })]]]);
    publisher.poke();
    await clock.advance(100);
    calls = [];
    wanted = new Map([['n1', [pod('d', { targets: [{ node: 'n2', url: 'https://n2:9500' }] })]]]);
    publisher.poke();
    await clock.advance(100);
    expect(calls.filter((c) => c.includes('n2:'))).toEqual([]);
    expect(calls).toEqual(['holds https://n1:9500 ', 'assign https://n1:9500 1']);
  });

  it("lets a helper hold its own node's Pod only while that Pod's copy is assigned to it (sameNodeCopy)", async () => {
    const self = { targets: [{ node: 'n1', url: 'https://n1:9500' }] };
    wanted = new Map([
      ['n1', [pod('a', self), pod('b', { targets: [{ node: 'n2', url: 'https://n2:9500' }] })]],
    ]);
    publisher.start();
    await clock.advance(100);
    expect(calls.filter((c) => c.startsWith('holds'))).toEqual([
      'holds https://n1:9500 a@n1',
      'holds https://n2:9500 a@n1,b@n1',
    ]);
    // Another node can hold a's copy now: n1 no longer takes copies of its own Pod.
    calls = [];
    wanted = new Map([['n1', [pod('a', { targets: [{ node: 'n2', url: 'https://n2:9500' }] }), pod('b')]]]);
    publisher.poke();
    await clock.advance(100);
    expect(calls.filter((c) => c.startsWith('holds https://n1'))).toEqual(['holds https://n1:9500 ']);
  });

  it("keeps a Pod's own-node hold while the Pod is no longer assigned (its final pull), as its policy allows", () => {
    const holds = [
      { namespace: 'apps', podUID: 'a', node: 'n1', selfHeld: true },
      { namespace: 'apps', podUID: 'b', node: 'n1' },
      { namespace: 'apps', podUID: 'c', node: 'n2' },
    ];
    expect(holdsFor(holds, 'n1')).toEqual([
      { namespace: 'apps', podUID: 'a', node: 'n1' },
      { namespace: 'apps', podUID: 'c', node: 'n2' },
    ]);
    expect(holdsFor(holds, 'n2').map((h) => h.podUID)).toEqual(['a', 'b']);
  });
});

describe('holds of assignments', () => {
  it('lists every assigned Pod with the node it is pulled on', () => {
    const holds = holdsOf(
      new Map([
        ['n1', [pod('b'), pod('a')]],
        ['n2', [pod('c', { namespace: 'other' })]],
      ]),
    );
    expect(holds).toEqual([
      { namespace: 'apps', podUID: 'a', node: 'n1' },
      { namespace: 'apps', podUID: 'b', node: 'n1' },
      { namespace: 'other', podUID: 'c', node: 'n2' },
    ]);
  });
});
