// The gate keeper's rule on a fake clock: a gated Pod no policy selects is opened after the grace period,
// once; a Pod a policy selects, or whose gate is open, or that is being deleted, is left alone.
import type { V1Pod } from '@kubernetes/client-node';
import { READINESS_GATE } from '../../../../src/api/index.js';
import { GateKeeper, type GateKeeperDeps } from '../../../../src/controller/restores/gate-keeper.js';
import { hostNetworkRefusal } from '../../../../src/controller/policies/host-network.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import { FakeClock } from '../../../../harness/fake-clock.js';

const pod = (name: string, o: { gate?: boolean; open?: boolean; deleting?: boolean } = {}): V1Pod => ({
  metadata: {
    name,
    namespace: 'ns',
    uid: `uid-${name}`,
    ...(o.deleting ? { deletionTimestamp: new Date() } : {}),
  },
  spec: {
    containers: [],
    ...(o.gate === false ? {} : { readinessGates: [{ conditionType: READINESS_GATE }] }),
  },
  status: { conditions: o.open ? [{ type: READINESS_GATE, status: 'True' }] : [] },
});

function keeper(pods: V1Pod[], selected: (p: V1Pod) => boolean, refusal?: GateKeeperDeps['refusal']) {
  const opened: string[] = [];
  const events: string[] = [];
  const gate = {
    set: async (p: V1Pod, status: string, reason: string) =>
      void opened.push(`${p.metadata!.name} ${status} ${reason}`),
  };
  const recorder = {
    record: (_ref: unknown, type: string, reason: string) => void events.push(`${type} ${reason}`),
  };
  const k = new GateKeeper({
    gate,
    events: recorder,
    log: createLogger('test', 'error'),
    currentPod: (_ns, name) => pods.find((p) => p.metadata!.name === name),
    selected,
    ...(refusal ? { refusal } : {}),
    graceMs: 5000,
    clock,
  });
  return { k, opened, events };
}

let clock: FakeClock;
beforeEach(() => (clock = new FakeClock()));

describe('GateKeeper', () => {
  it('opens the gate of an unprotected gated Pod after the grace period, with a Warning Event', async () => {
    const p = pod('a');
    const { k, opened, events } = keeper([p], () => false);
    k.podChanged(p);
    k.podChanged(p); // a second look does not start a second timer
    await clock.advance(4999);
    expect(opened).toEqual([]);
    await clock.advance(1);
    expect(opened).toEqual(['a True NoPolicy']);
    expect(events).toEqual(['Warning NoPolicy']);
  });

  it('opens the gate of a selected Pod its policy refuses (hostNetwork), naming why', async () => {
    const host = pod('host');
    host.spec!.hostNetwork = true;
    const plain = pod('plain');
    const { k, opened, events } = keeper(
      [host, plain],
      () => true,
      (p) => hostNetworkRefusal(p, { allowHostNetwork: false, port: 8080 }),
    );
    k.podChanged(host);
    k.podChanged(plain);
    await clock.advance(5000);
    expect(opened).toEqual(['host True HostNetworkRefused']);
    expect(events).toEqual(['Warning HostNetworkRefused']);
  });

  it('leaves a hostNetwork Pod alone when its policy allows hostNetwork', async () => {
    const host = pod('host');
    host.spec!.hostNetwork = true;
    const { k, opened } = keeper(
      [host],
      () => true,
      (p) => hostNetworkRefusal(p, { allowHostNetwork: true, port: 8080 }),
    );
    k.podChanged(host);
    await clock.advance(10_000);
    expect(opened).toEqual([]);
  });

  it('leaves alone Pods a policy selects, without the gate, already open, or being deleted', async () => {
    const pods = [
      pod('sel'),
      pod('nogate', { gate: false }),
      pod('open', { open: true }),
      pod('del', { deleting: true }),
    ];
    const { k, opened } = keeper(pods, (p) => p.metadata!.name === 'sel');
    for (const p of pods) k.podChanged(p);
    await clock.advance(10_000);
    expect(opened).toEqual([]);
  });

  it('does not open a Pod that a policy selected during the grace period', async () => {
    const p = pod('late');
    let selected = false;
    const { k, opened } = keeper([p], () => selected);
    k.podChanged(p);
    await clock.advance(3000);
    selected = true;
    k.podChanged(p);
    await clock.advance(10_000);
    expect(opened).toEqual([]);
  });
});
