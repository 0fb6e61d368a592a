// Leader election on a real Lease: the API server's MicroTime format, its resourceVersion conflicts and
// AlreadyExists decide who leads, not a scripted fake.
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/controller/kube/leader-election.js';
import { microTime } from '../../src/kube/micro-time.js';
import { eventually, kc, log, namespace } from './env.js';

const coordination = kc.makeApiClient(CoordinationV1Api);
const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200 };
let ns: string;
const electors: LeaderElector[] = [];

function elector(name: string, identity: string): LeaderElector {
  const e = new LeaderElector({ kc, namespace: ns, name, identity, log, ...timings });
  electors.push(e);
  return e;
}

const lease = (name: string): Promise<V1Lease> => coordination.readNamespacedLease({ name, namespace: ns });

/** Waits until the Lease's holder renewed it `times` more times. */
async function renewals(name: string, times: number): Promise<V1Lease> {
  let last = String((await lease(name)).spec?.renewTime);
  let seen = 0;
  return eventually(
    `${times} renewals of Lease ${name}`,
    async () => {
      const l = await lease(name);
      const now = String(l.spec?.renewTime);
      if (now !== last) {
        last = now;
        seen++;
      }
      return seen >= times ? l : undefined;
    },
    10_000,
    50,
  );
}

beforeAll(async () => {
  ns = await namespace('leases');
});

afterAll(async () => {
  await Promise.all(electors.map((e) => e.release()));
});

test('one replica leads and renews, the other stands by; a release hands over at once', async () => {
  const a = elector('handover', 'replica-a');
  const b = elector('handover', 'replica-b');
  const lostA = jestFn();
  await a.run(lostA.fn);
  const first = await lease('handover');
  expect(first.spec).toMatchObject({
    holderIdentity: 'replica-a',
    leaseDurationSeconds: 3,
    leaseTransitions: 0,
  });

  let bLeads = false;
  const bRun = b.run(() => undefined).then(() => (bLeads = true));
  // Longer than a lease duration: the standby sees the record change and does not take over.
  const renewed = await renewals('handover', 16);
  expect(renewed.spec?.holderIdentity).toBe('replica-a');
  expect(bLeads).toBe(false);
  expect(a.isLeading()).toBe(true);

  const releasedAt = Date.now();
  await a.release();
  await bRun;
  // At the standby's next try: the emptied Lease is free at once (a Lease still held, even for the 1 s the
  // release writes, would keep it waiting at least that long).
  expect(Date.now() - releasedAt).toBeLessThan(1000);
  expect((await lease('handover')).spec).toMatchObject({ holderIdentity: 'replica-b', leaseTransitions: 1 });
  expect(lostA.calls).toBe(0);
});

test('two replicas starting at once on no Lease: exactly one leads', async () => {
  const a = elector('race', 'replica-a');
  const b = elector('race', 'replica-b');
  const winner = await Promise.race([
    a.run(() => undefined).then(() => 'replica-a'),
    b.run(() => undefined).then(() => 'replica-b'),
  ]);
  const renewed = await renewals('race', 5);
  expect(renewed.spec?.holderIdentity).toBe(winner);
  expect([a.isLeading(), b.isLeading()].filter(Boolean)).toHaveLength(1);
});

test('a leader whose Lease someone else took steps down within its renew deadline', async () => {
  const a = elector('taken', 'replica-a');
  const lost = jestFn();
  await a.run(lost.fn);
  const l = await lease('taken');
  const now = microTime() as unknown as Date;
  // A replace with the resourceVersion just read; the leader's next renewal meets a new holder.
  await coordination.replaceNamespacedLease({
    name: 'taken',
    namespace: ns,
    body: {
      ...l,
      spec: {
        ...l.spec,
        acquireTime: now,
        renewTime: now,
        holderIdentity: 'intruder',
        leaseDurationSeconds: 30,
        leaseTransitions: 1,
      },
    },
  });
  const takenAt = Date.now();
  await eventually('the leader stepped down', async () => lost.calls === 1, 10_000, 50);
  expect(Date.now() - takenAt).toBeLessThanOrEqual(timings.renewDeadlineMs + 500);
  expect(a.isLeading()).toBe(false);
  expect((await lease('taken')).spec?.holderIdentity).toBe('intruder');
});

/** A callback that counts its calls (jest's mock functions need @jest/globals in ESM mode). */
function jestFn(): { fn: () => void; calls: number } {
  const f = { calls: 0, fn: () => void f.calls++ };
  return f;
}
