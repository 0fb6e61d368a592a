// Fault detection rules: probe targets, verdicts, fences and the Lease observer; the detector on a fake clock.
import { FakeClock } from '../../../../harness/fake-clock.js';
import type { V1Pod } from '@kubernetes/client-node';
import { parseSpec } from '../../../../src/api/index.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import type { ProbeOutcome } from '../../../../src/runtime/http-probe.js';
import {
  apiFaultActions,
  FaultDetector,
  probeTarget,
  type FaultDetectorDeps,
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
  it("probes the app container's liveness target, never a sidecar's", () => {
    const pod = {
      spec: {
        containers: [
          { name: 'log-shipper', livenessProbe: { httpGet: { path: '/shipper-alive', port: 2020 } } },
          {
            name: 'app',
            ports: [{ containerPort: 8080 }],
            livenessProbe: { httpGet: { path: '/healthz', port: 8080 } },
          },
        ],
      },
    };
    expect(probeTarget(pod, { port: 8080, path: '/state' })).toEqual({ port: 8080, path: '/healthz' });
    // The app has no liveness probe of its own: the state path, not the sidecar's.
    delete (pod.spec.containers[1] as { livenessProbe?: unknown }).livenessProbe;
    expect(probeTarget(pod, { port: 8080, path: '/state' })).toEqual({ port: 8080, path: '/state' });
  });
  it("adds and removes only the operator's own taint", () => {
    const other = { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' };
    const fenced = withFence([other], true);
    expect(fenced).toEqual([other, { key: 'pullstate.hitachienergy.com/unreachable', effect: 'NoSchedule' }]);
    expect(withFence(fenced, true)).toHaveLength(2);
    expect(withFence(fenced, false)).toEqual([other]);
  });
  it('judges Lease expiry by the local time the record last changed, not by the holder clock', () => {
    const clock = new FakeClock();
    const observer = new LeaseObserver(clock);
    // The holder's clock runs an hour behind: its renewTime looks stale to us, yet it renews every 2 s.
    const lease = (renewed: string) => ({
      spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new Date(renewed) },
    });
    expect(observer.observe(lease('2026-01-01T00:00:00Z'))).toBe(false);
    for (let s = 2; s <= 60; s += 2) {
      clock.set(s * 1000);
      expect(observer.observe(lease(`2026-01-01T00:00:${String(s).padStart(2, '0')}Z`))).toBe(false);
    }
    // The holder stops renewing: expired once the unchanged record is a whole lease duration old locally,
    // even though its renewTime (an hour in the future, say) would never expire by the clocks.
    const last = lease('2099-01-01T00:00:00Z');
    clock.set(61_000);
    expect(observer.observe(last)).toBe(false);
    clock.set(75_000);
    expect(observer.observe(last)).toBe(false);
    clock.set(76_000);
    expect(observer.observe(last)).toBe(true);
    expect(new LeaseObserver(new FakeClock()).observe({ spec: {} })).toBe(true);
  });
});

// The detector as the leader runs it, on a FakeClock: scripted probe answers (the leader's own and the
// other helpers' indirect ones), the API's view of helper Pods and nodes, recorded fault actions.
describe('FaultDetector', () => {
  const spec = (() => {
    const r = parseSpec({
      selector: { matchLabels: { app: 'a' } },
      port: 8080,
      mode: 'http-sf',
      failover: { periodMilliseconds: 200, failureThreshold: 10 },
    });
    if (!r.ok) throw new Error(r.errors.join());
    return r.value;
  })();
  const NODES = ['n1', 'n2', 'n3'];
  const pod = (name: string, node: string, ip: string): V1Pod => ({
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: { nodeName: node, containers: [{ name: 'app' }] },
    status: {
      podIP: ip,
      containerStatuses: [
        {
          name: 'app',
          image: 'app:1',
          imageID: '',
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: {} },
        },
      ],
    },
  });
  const entry = (p: V1Pod) => ({ policyKey: 'ns/p', policy: 'p', policyUID: 'pu', spec, pod: p });
  /** A helper Pod as the API shows it. */
  const helperPod = (
    node: string,
    o: { uid?: string; ready?: boolean; restarts?: number; deleting?: boolean } = {},
  ) =>
    ({
      metadata: {
        name: `helper-${node}`,
        namespace: 'pso',
        uid: o.uid ?? `hu-${node}`,
        ...(o.deleting ? { deletionTimestamp: new Date() } : {}),
      },
      spec: { nodeName: node, containers: [{ name: 'helper' }] },
      status: {
        conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
        containerStatuses: [{ name: 'helper', restartCount: o.restarts ?? 0, state: { running: {} } }],
      },
    }) as V1Pod;
  /** What the leader's probe of a host meets: an answer (true), silence (false) or the outcome named. */
  let up: Record<string, boolean | string>;
  /** What another node's helper meets probing a suspect helper, when it differs from what the leader meets. */
  let peerSees: Record<string, boolean | string>;
  /** Helpers that cannot be asked (their API does not answer the leader). */
  let peerDown: Set<string>;
  /** Helper Pods in the API, by node; a node without an entry has none. */
  let helperPods: Record<string, V1Pod>;
  let nodeReady: Record<string, boolean>;
  /** The node the leader runs on, if known. */
  let leaderNode: string | undefined;
  /** Nodes whose fence taint the node cache shows; the detector's writes land in it unless `cacheLags`. */
  let tainted: Set<string>;
  /** The node cache does not show the detector's fence writes (yet). */
  let cacheLags: boolean;
  /** Fences written by someone else since the start: each makes a newer node object. */
  let taintWrites = 0;
  let readyTo: Record<string, boolean>;
  let readinessChanges: string[];
  let givenUp: string[];
  let probes: string[];
  let indirect: string[];
  let actions: string[];
  let term: AbortController;
  let detector: FaultDetector;
  let clock: FakeClock;
  const outcome = (answer: boolean | string | undefined) =>
    (answer === true
      ? 'ok'
      : answer === false || answer === undefined
        ? 'unreachable'
        : answer) as ProbeOutcome;

  const nodeObject = (name: string) => ({
    metadata: { name, resourceVersion: tainted.has(name) ? `t${taintWrites}` : 'clean' },
    spec: tainted.has(name)
      ? { taints: [{ key: 'pullstate.hitachienergy.com/unreachable', effect: 'NoSchedule' }] }
      : {},
  });
  const makeDetector = (overrides: Partial<FaultDetectorDeps> = {}) =>
    new FaultDetector({
      actions: {
        deletePod: async (ns, name) => void actions.push(`delete ${ns}/${name}`),
        setFence: async (node, on) => {
          actions.push(`fence ${node} ${on ? 'on' : 'off'}`);
          if (!cacheLags) void (on ? tainted.add(node) : tainted.delete(node));
        },
      },
      view: {
        helpers: () =>
          new Map(
            NODES.filter((n) => helperPods[n]).map((n) => [
              n,
              {
                node: n,
                pod: helperPods[n]!.metadata!.name!,
                url: `https://${n}:9500`,
                healthUrl: `http://h-${n}:9501`,
                ready: true,
              },
            ]),
          ),
        helperPod: (name: string) => Object.values(helperPods).find((p) => p.metadata?.name === name),
        nodeReady: (n: string) => nodeReady[n] ?? true,
        nodeReadyIgnoringFence: (n: string) => nodeReady[n] ?? true,
        helperProbed: (node: string, _pod: string, ready: boolean) => {
          const changed = (readyTo[node] ?? false) !== ready;
          readyTo[node] = ready;
          return changed;
        },
      },
      nodes: { get: (name: string) => (NODES.includes(name) ? nodeObject(name) : undefined) },
      events: { record: () => undefined },
      log: createLogger('test', 'error'),
      restoring: () => false,
      onFault: () => undefined,
      givenUp: (uid) => void givenUp.push(uid),
      onHelperReadiness: (node) => void readinessChanges.push(`${node} ${readyTo[node]}`),
      leaderNode: () => leaderNode,
      signal: term.signal,
      clock,
      probe: async (host, _port, _path, timeoutMs) => {
        probes.push(host);
        // Silence takes the whole timeout; an answer comes at once.
        const seen = outcome(up[host]);
        if (seen === 'unreachable') await clock.sleep(timeoutMs);
        return seen;
      },
      indirectProbe: async (via, target, callTimeoutMs) => {
        indirect.push(`${via.node}→${target.node} ${target.ip}`);
        // The asked helper probes with the timeout it was given; the leader's call allows for more.
        expect(callTimeoutMs).toBeGreaterThan(target.timeoutMs);
        await clock.sleep(target.timeoutMs);
        // The leader reaches the asked helper's API where it reaches its health port.
        if (peerDown.has(via.node) || up[`h-${via.node}`] === false)
          throw new Error(`helper ${via.node} did not answer`);
        const host = `h-${target.node}`;
        return outcome(host in peerSees ? peerSees[host] : up[host]);
      },
      ...overrides,
    });

  beforeEach(() => {
    clock = new FakeClock();
    up = { 'h-n1': true, 'h-n2': true, 'h-n3': true, '10.0.1.5': true, '10.0.2.5': true };
    peerSees = {};
    peerDown = new Set();
    helperPods = Object.fromEntries(NODES.map((n) => [n, helperPod(n)]));
    nodeReady = {};
    leaderNode = undefined;
    tainted = new Set();
    cacheLags = false;
    readyTo = {};
    readinessChanges = [];
    givenUp = [];
    probes = [];
    indirect = [];
    actions = [];
    term = new AbortController();
    detector = makeDetector();
    detector.start();
    detector.lead();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
  });
  afterEach(() => {
    term.abort();
  });

  /** Node n1's uplink goes down: its helper and Pod are silent to the leader and to every other helper. */
  const partitionN1 = () => {
    up['h-n1'] = false;
    up['10.0.1.5'] = false;
  };

  it('probes only the helpers while they answer: steady work grows with nodes, not Pods', async () => {
    await clock.advance(5_000);
    expect(new Set(probes)).toEqual(new Set(['h-n1', 'h-n2', 'h-n3']));
    // Every 500 ms per helper.
    expect(probes.filter((h) => h === 'h-n1').length).toBeGreaterThanOrEqual(9);
    expect(probes.filter((h) => h === 'h-n1').length).toBeLessThanOrEqual(10);
    expect(indirect).toEqual([]);
    expect(actions).toEqual([]);
  });

  it('fences a node silent to the leader and to the helpers of other nodes, deletes its Pods once, and unfences it later', async () => {
    await clock.advance(1_000);
    partitionN1();
    let waited = 0;
    while (actions.length === 0 && waited < 5_000) {
      await clock.advance(50);
      waited += 50;
    }
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
    // Decided at the leader's third silent probe (the next round starts at 1.5 s, each silence takes 400 ms),
    // as without indirect probes: they ran alongside its second and third.
    expect(waited).toBeLessThanOrEqual(1_900);
    // Both other helpers were asked to probe n1's helper at its Pod IP (SWIM's indirect probe), and only that.
    expect(indirect).toContain('n2→n1 h-n1');
    expect(indirect).toContain('n3→n1 h-n1');
    expect(indirect.every((i) => i.endsWith('→n1 h-n1'))).toBe(true);
    // Whatever its process does from now on (it may run on) is not the Pod's state any more.
    expect(givenUp).toEqual(['uid-a']);
    expect(probes).not.toContain('10.0.2.5');
    await clock.advance(3_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
    up['h-n1'] = true;
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a', 'fence n1 off']);
  });

  it('a term that ends while the node is being fenced deletes none of its Pods: the next leader judges again', async () => {
    let release: () => void = () => undefined;
    term.abort();
    term = new AbortController();
    detector = makeDetector({
      actions: {
        deletePod: async (ns, name) => void actions.push(`delete ${ns}/${name}`),
        setFence: async (node, on) => {
          actions.push(`fence ${node} ${on ? 'on' : 'off'}`);
          await new Promise<void>((r) => (release = r));
        },
      },
    });
    detector.start();
    detector.lead();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
    await clock.advance(1_000);
    partitionN1();
    for (let waited = 0; actions.length === 0 && waited < 5_000; waited += 50) await clock.advance(50);
    expect(actions).toEqual(['fence n1 on']);
    // The leader is stopped while its fence write is on its way (it lets the write finish).
    term.abort();
    release();
    await clock.advance(5_000);
    expect(actions).toEqual(['fence n1 on']);
  });

  it('as a standby gathers evidence and acts on nothing; once it leads it acts on it at once', async () => {
    term.abort();
    term = new AbortController();
    detector = makeDetector();
    detector.start();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
    await clock.advance(1_000);
    partitionN1();
    await clock.advance(5_000);
    // It asked the other helpers for their opinion, as a leader does (reading only), and acted on nothing.
    expect(indirect).toContain('n2→n1 h-n1');
    expect(indirect).toContain('n3→n1 h-n1');
    expect(actions).toEqual([]);
    expect(detector.isSuspect('n1')).toBe(true);
    expect(detector.isSuspect('n2')).toBe(false);
    // The leader sat on n1: this standby takes over. It needs no new round of silences; it waits only for
    // the round of opinions still out (at most INDIRECT_CALL_TIMEOUT_MS), since any answer in it would count.
    detector.lead();
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('a new leader deletes the Pods of a node it judged lost as soon as its first reconcile shows them', async () => {
    term.abort();
    term = new AbortController();
    detector = makeDetector();
    detector.start();
    await clock.advance(1_000);
    partitionN1();
    await clock.advance(5_000);
    expect(actions).toEqual([]);
    // The standby knows no protected Pods yet (its reconcilers wait for the lead): it fences the node first.
    detector.lead();
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 on']);
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('waits for the round of opinions still out before fencing, though an earlier round met silence', async () => {
    // Round 1's helpers share the leader's blind spot; round 2 (slower) reaches the node: no fence.
    let calls = 0;
    term.abort();
    term = new AbortController();
    detector = makeDetector({
      indirectProbe: async (_via, target) => {
        const round = ++calls <= 2 ? 1 : 2;
        await clock.sleep(round === 1 ? target.timeoutMs : 900);
        return round === 1 ? 'unreachable' : 'ok';
      },
    });
    detector.start();
    detector.lead();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5'))]);
    await clock.advance(1_000);
    partitionN1();
    await clock.advance(3_000);
    expect(calls).toBeGreaterThan(2);
    expect(actions).toEqual([]);
  });

  it('as a standby judges nothing even when the API shows the silent node NotReady', async () => {
    term.abort();
    term = new AbortController();
    detector = makeDetector();
    detector.start();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5'))]);
    peerDown = new Set(['n2', 'n3']);
    partitionN1();
    nodeReady['n1'] = false;
    await clock.advance(5_000);
    expect(actions).toEqual([]);
    detector.lead();
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('as a standby leaves a fence alone even when the fenced node answers', async () => {
    term.abort();
    term = new AbortController();
    tainted.add('n1');
    detector = makeDetector();
    detector.start();
    await clock.advance(3_000);
    expect(actions).toEqual([]);
    detector.lead();
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 off']);
  });

  it('removes a fence the node cache shows once its helper answers, whoever wrote it and whenever', async () => {
    // Another leader fenced n1 after this one started (it had lost its lease but finished its write), or a
    // leader before it fenced n1 and died before the helper answered again: the cache is the truth.
    await clock.advance(1_000);
    tainted.add('n1');
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 off']);
    expect(detector.isFenced('n1')).toBe(false);
  });

  it('removes a fence once while the cache lags, and takes a newer fenced object in the cache as the truth', async () => {
    cacheLags = true;
    tainted.add('n1');
    await clock.advance(3_000);
    expect(actions).toEqual(['fence n1 off']);
    expect(detector.isFenced('n1')).toBe(false);
    // Another leader fences n1 again: the cache shows a newer object with the taint.
    taintWrites++;
    expect(detector.isFenced('n1')).toBe(true);
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 off', 'fence n1 off']);
  });

  it('counts its own fence write before the node cache shows it, and does not write it twice', async () => {
    cacheLags = true;
    await clock.advance(1_000);
    partitionN1();
    await clock.advance(5_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
    expect(detector.isFenced('n1')).toBe(true);
    // The cache catches up; a user then removes the taint by hand: the detector goes by the cache.
    tainted.add('n1');
    expect(detector.isFenced('n1')).toBe(true);
    tainted.delete('n1');
    expect(detector.isFenced('n1')).toBe(false);
  });

  // A refused or reset connection, an HTTP error, a TLS alert, or an outcome this code does not know yet:
  // all come from a node that is there. Only silence counts.
  it.each(['error', 'failed', 'tls-error', 'not-built'])(
    'leaves a node alone whose helper answers "%s" to everyone while its Pod is silent (a NetworkPolicy)',
    async (answer) => {
      await clock.advance(1_000);
      up['h-n1'] = answer;
      up['10.0.1.5'] = false;
      await clock.advance(6_000);
      expect(actions).toEqual([]);
    },
  );

  it.each([true, 'error', 'failed', 'tls-error'])(
    'leaves a node alone whose helper is silent to everyone while its Pod answers the leader (%s)',
    async (answer) => {
      await clock.advance(1_000);
      up['h-n1'] = false;
      up['10.0.1.5'] = answer;
      await clock.advance(6_000);
      // The Pod was probed from here once its helper went silent, and its answer ended each suspicion.
      expect(probes).toContain('10.0.1.5');
      expect(actions).toEqual([]);
    },
  );

  it.each([true, 'error', 'failed'])(
    'leaves a node alone that is silent to the leader while a helper of another node gets an answer (%s)',
    async (answer) => {
      await clock.advance(1_000);
      partitionN1();
      peerSees['h-n1'] = answer;
      await clock.advance(6_000);
      expect(indirect.length).toBeGreaterThan(0);
      expect(actions).toEqual([]);
    },
  );

  it('does not fence a node whose helper restarts (refusing while it opens its store) and whose Pod admits only helpers', async () => {
    await clock.advance(1_000);
    // Issue #27: `kubectl rollout restart` in place; the health port opens only after BlobStore.open.
    up['h-n1'] = 'failed';
    peerSees['h-n1'] = 'failed';
    up['10.0.1.5'] = false; // the app's NetworkPolicy drops the leader's probe
    helperPods.n1 = helperPod('n1', { ready: false, restarts: 1 });
    await clock.advance(5_000);
    up['h-n1'] = true;
    helperPods.n1 = helperPod('n1', { restarts: 1 });
    await clock.advance(2_000);
    expect(actions).toEqual([]);
  });

  // A DaemonSet rollout: the old helper terminates, its replacement starts; for seconds nothing answers on the
  // helper's health port, from anywhere (the old IP is gone), while the node is fine.
  it.each<[string, () => void]>([
    ['terminating', () => (helperPods.n1 = helperPod('n1', { deleting: true }))],
    ['not Ready in the API', () => (helperPods.n1 = helperPod('n1', { ready: false }))],
    ['a new Pod since it last answered', () => (helperPods.n1 = helperPod('n1', { uid: 'hu-n1-new' }))],
    ['restarted since it last answered', () => (helperPods.n1 = helperPod('n1', { restarts: 1 }))],
    ['missing (no helper Pod on the node)', () => delete helperPods.n1],
  ])('does not count the silence of a helper that is %s', async (_what, change) => {
    await clock.advance(1_000);
    change();
    partitionN1(); // its Pod too: a NetworkPolicy admits only helpers
    await clock.advance(6_000);
    expect(actions).toEqual([]);
  });

  it.each<[string, () => void]>([
    ['restarted since it last answered', () => (helperPods.n1 = helperPod('n1', { restarts: 1 }))],
    ['a new Pod since it last answered', () => (helperPods.n1 = helperPod('n1', { uid: 'hu-n1-new' }))],
    ['terminating', () => (helperPods.n1 = helperPod('n1', { deleting: true }))],
  ])('counts the silence of a helper that is %s once the API shows its node NotReady', async (_w, change) => {
    // The helper restarted (or was replaced), then its node lost its uplink before it answered again.
    await clock.advance(1_000);
    change();
    partitionN1();
    await clock.advance(3_000);
    expect(actions).toEqual([]);
    nodeReady.n1 = false;
    await clock.advance(3_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('deletes no Pod of a node that answered while it was being fenced', async () => {
    term.abort();
    term = new AbortController();
    let release: () => void = () => undefined;
    detector = makeDetector({
      signal: term.signal,
      actions: {
        deletePod: async (ns, name) => void actions.push(`delete ${ns}/${name}`),
        setFence: async (node, on) => {
          actions.push(`fence ${node} ${on ? 'on' : 'off'}`);
          // The API server is slow to take the taint; meanwhile the node answers again.
          if (on) await new Promise<void>((r) => (release = r));
        },
      },
    });
    detector.start();
    detector.lead();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
    await clock.advance(1_000);
    partitionN1();
    await clock.advance(2_500);
    expect(actions).toEqual(['fence n1 on']);
    up['h-n1'] = true;
    await clock.advance(600);
    release();
    await clock.advance(1_000);
    expect(actions).not.toContain('delete ns/a');
    expect(givenUp).toEqual([]);
  });

  it("counts a replaced helper's silence again once the new Pod has answered", async () => {
    await clock.advance(1_000);
    helperPods.n1 = helperPod('n1', { uid: 'hu-n1-new' });
    up['h-n1'] = false;
    await clock.advance(3_000);
    expect(actions).toEqual([]);
    up['h-n1'] = true;
    await clock.advance(1_000);
    partitionN1();
    await clock.advance(3_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('without a second opinion (no other helper could be asked) fences only once the API shows the node NotReady', async () => {
    await clock.advance(1_000);
    partitionN1();
    peerDown = new Set(['n2', 'n3']);
    await clock.advance(6_000);
    expect(indirect.length).toBeGreaterThan(0);
    expect(actions).toEqual([]);
    // node-monitor-grace-period later: the node lifecycle controller marks the node and its Pods not Ready.
    nodeReady.n1 = false;
    helperPods.n1 = helperPod('n1', { ready: false });
    await clock.advance(1_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it("takes no second opinion from the helper on the leader's own node: a leader cut off from the others fences nothing", async () => {
    leaderNode = 'n3';
    await clock.advance(1_000);
    // n3's uplink is down: n1 and n2 are silent to the leader and to n3's helper, which share that uplink.
    up['h-n1'] = false;
    up['h-n2'] = false;
    up['10.0.1.5'] = false;
    up['10.0.2.5'] = false;
    await clock.advance(6_000);
    expect(indirect.filter((i) => i.startsWith('n3→'))).toEqual([]);
    expect(actions).toEqual([]);
  });

  it('as a new leader, judges a node silent since before it took over (its helper never answered it)', async () => {
    term.abort();
    // The previous leader sat on n1, which is partitioned; after the Lease expired the API shows n1 NotReady
    // and its Pods not Ready.
    partitionN1();
    nodeReady.n1 = false;
    helperPods.n1 = helperPod('n1', { ready: false });
    term = new AbortController();
    probes = [];
    detector = makeDetector();
    detector.start();
    detector.lead();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
    await clock.advance(2_000);
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('as a new leader, deletes the Pods left on a node a previous leader fenced, without fencing it again', async () => {
    term.abort();
    partitionN1();
    tainted = new Set(['n1']);
    term = new AbortController();
    detector = makeDetector();
    detector.start();
    detector.lead();
    detector.sync([entry(pod('a', 'n1', '10.0.1.5')), entry(pod('b', 'n2', '10.0.2.5'))]);
    await clock.advance(3_000);
    expect(actions).toEqual(['delete ns/a']);
    await clock.advance(3_000);
    expect(actions).toEqual(['delete ns/a']);
  });

  it('takes a Pod probe that could not even be sent (misconfigured) as no evidence: it proves no lost node up', async () => {
    // A tenant's unsendable liveness path must not shield a node that is silent to everyone.
    await clock.advance(1_000);
    up['h-n1'] = false;
    up['10.0.1.5'] = 'misconfigured';
    await clock.advance(3_000);
    expect(probes).toContain('10.0.1.5');
    expect(actions).toEqual(['fence n1 on', 'delete ns/a']);
  });

  it('takes a misconfigured Pod probe as no failure either: a node whose helper answers is left alone', async () => {
    await clock.advance(1_000);
    up['10.0.1.5'] = 'misconfigured';
    await clock.advance(5_000);
    expect(actions).toEqual([]);
  });

  it('counts a helper that answers not ready as there (no Pod probes), and says when its readiness changes', async () => {
    await clock.advance(600);
    expect(readinessChanges).toEqual(['n1 true', 'n2 true', 'n3 true']);
    up['h-n1'] = 'error'; // 503 from /readyz
    up['10.0.1.5'] = false;
    await clock.advance(3_000);
    expect(probes).not.toContain('10.0.1.5');
    expect(actions).toEqual([]);
    expect(readinessChanges).toEqual(['n1 true', 'n2 true', 'n3 true', 'n1 false']);
  });

  it("stops probing a node's Pods from here once its helper answers again, without acting", async () => {
    up['h-n1'] = false;
    await clock.advance(600);
    up['h-n1'] = true;
    await clock.advance(600);
    const n = probes.filter((h) => h === '10.0.1.5').length;
    expect(n).toBeGreaterThan(0);
    await clock.advance(5_000);
    expect(probes.filter((h) => h === '10.0.1.5').length).toBe(n);
    expect(actions).toEqual([]);
  });

  it('deletes a Pod its helper reports failed, once, unless it restarted since', async () => {
    detector.podFaultReported('n2', { podUID: 'uid-b', restartCount: 1, message: 'probe failed' });
    await clock.advance(10);
    expect(actions).toEqual([]);
    detector.podFaultReported('n1', { podUID: 'uid-b', restartCount: 0, message: 'probe failed' });
    await clock.advance(10);
    expect(actions).toEqual([]);
    detector.podFaultReported('n2', { podUID: 'uid-b', restartCount: 0, message: 'probe failed' });
    detector.podFaultReported('n2', { podUID: 'uid-b', restartCount: 0, message: 'probe failed' });
    await clock.advance(10);
    expect(actions).toEqual(['delete ns/b']);
  });

  it('probes nothing once the term ends', async () => {
    await clock.advance(1_000);
    term.abort();
    const n = probes.length;
    await clock.advance(10_000);
    expect(probes.length).toBe(n);
  });
});

describe('apiFaultActions', () => {
  it('asks whether this replica still leads right before each delete and fence, and calls nothing if not', async () => {
    const calls: string[] = [];
    const core = {
      deleteNamespacedPod: async () => {
        calls.push('delete');
        return {};
      },
      readNode: async () => ({ spec: {} }),
      patchNode: async () => {
        calls.push('patch');
        return {};
      },
    };
    let leading = false;
    const actions = apiFaultActions({ makeApiClient: () => core }, () => leading);
    await expect(actions.deletePod('ns', 'a', 'uid-a')).rejects.toThrow(
      /not leading any more: no Pod delete/,
    );
    await expect(actions.setFence('n1', true)).rejects.toThrow(/not leading any more: no fence/);
    expect(calls).toEqual([]);
    leading = true;
    await actions.deletePod('ns', 'a', 'uid-a');
    expect(calls).toEqual(['delete']);
  });
});
