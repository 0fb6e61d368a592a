// Checkpoint pipeline (#4) end to end: the operator installed with `kubectl apply -k .` (controllers and
// helpers as Pods with their own ServiceAccounts), real apps, real faults.
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { helperFetch } from '../../harness/helper-https.js';
import { createFixtures } from '../../harness/fixture-app.js';
import { OPERATOR_NAMESPACE, helperAudience } from '../../src/api/index.js';
import { apps, cluster, core, createNamespace, eventually, kc, readyPods } from './cluster.js';
import {
  condition,
  controllerPods,
  createPolicy,
  helperUrlOn,
  installOperator,
  kubectl,
  leader,
  policy,
  protectedStateApp,
  scaleControllers,
  stateAppDeployment,
  warningEvents,
} from './operator.js';

const ns = 'it-checkpoint';

/** A call to a helper's HTTPS API, verified against the operator's CA. */
const hfetch = (url: string, init?: Parameters<typeof helperFetch>[2]) => helperFetch(kc, url, init);

const stateApp = (name: string, replicas: number) => stateAppDeployment(ns, name, replicas);

/**
 * A token of the controller's ServiceAccount for the helper on `node` (what the controller sends that helper);
 * without a node, for the API server's own audience.
 */
async function controllerToken(node?: string): Promise<string> {
  const t = await core.createNamespacedServiceAccountToken({
    name: 'pull-state-controller',
    namespace: OPERATOR_NAMESPACE,
    body: { spec: { audiences: node ? [helperAudience(node)] : [], expirationSeconds: 600 } },
  });
  return t.status!.token;
}

const checkpointOf = async (pod: V1Pod) =>
  (await policy(ns, 'app')).status?.checkpoints?.find((c) => c.podUID === pod.metadata!.uid);

async function control(pod: V1Pod, mode: Record<string, number>): Promise<void> {
  // The fixture closes idle kept-alive connections after 5 s; a request on such a socket is reset: retry.
  const res = await eventually('control request accepted', () =>
    fetch(`http://${pod.status!.podIP}:8080/control`, { method: 'POST', body: JSON.stringify(mode) }),
  );
  expect(res.status).toBe(200);
}

let pods: V1Pod[];

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await createFixtures(core, ns);
  await protectedStateApp(ns, 'app', 2, { maxStateBytes: 100_000 });
  pods = await eventually('2 app Pods Ready', async () => {
    const ready = await readyPods(ns, 'app=app');
    return ready.length === 2 ? ready : undefined;
  });
});

describe('checkpoint pipeline', () => {
  it('checkpoints both Pods on other nodes; status shows node, size and time; kubectl shows the columns', async () => {
    const p = await eventually(
      'a checkpoint of each Pod',
      async () => {
        const current = await policy(ns, 'app');
        return current.status?.checkpoints?.length === 2 && condition(current, 'Ready')?.status === 'True'
          ? current
          : undefined;
      },
      60_000,
    );
    expect(p.status!.protectedPods).toBe(2);
    expect(p.status!.observedGeneration).toBe(p.metadata!.generation);
    for (const pod of pods) {
      const c = p.status!.checkpoints!.find((x) => x.podUID === pod.metadata!.uid)!;
      expect(c.pod).toBe(pod.metadata!.name);
      expect(c.node).not.toBe(pod.spec!.nodeName);
      expect(c.sizeBytes).toBeGreaterThan(10);
      expect(Date.now() - Date.parse(c.timestamp)).toBeLessThan(30_000);
      expect(c.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    }
    const table = await kubectl('get', 'pullstatepolicies', '-n', ns);
    expect(table).toMatch(/^NAME\s+MODE\s+INTERVAL\s+PODS\s+LAST CHECKPOINT\s+READY\s+PROBLEM\s+AGE/);
    expect(table).toMatch(/\napp\s+http\s+1\s+2\s+\S+\s+True\s+AsExpected\s+/);
  });

  it("stores exactly the bytes the app served, readable only with the controller's token", async () => {
    const pod = pods[0]!;
    const c = await eventually('checkpoint', () => checkpointOf(pod));
    const url = `${await helperUrlOn(c.node)}/v1/blobs/${ns}/${pod.metadata!.uid}`;
    const res = await hfetch(url, { headers: { authorization: `Bearer ${await controllerToken(c.node)}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = Buffer.from(await res.arrayBuffer());
    expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(
      res.headers.get('x-checkpoint-digest'),
    );
    expect(JSON.parse(body.toString())).toHaveProperty('version');

    // Forged and foreign tokens are refused.
    expect((await hfetch(url)).status).toBe(401);
    expect((await hfetch(url, { headers: { authorization: 'Bearer forged.token.value' } })).status).toBe(401);
    const other = await core.createNamespacedServiceAccountToken({
      name: 'default',
      namespace: ns,
      body: { spec: { audiences: [helperAudience(c.node)], expirationSeconds: 600 } },
    });
    const foreign = await hfetch(url, { headers: { authorization: `Bearer ${other.status!.token}` } });
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).toContain(
      'only system:serviceaccount:pull-state-operator-system:pull-state-controller',
    );
  });

  it("admits only tokens for the helper's own node, which the API server and the other helpers refuse", async () => {
    const pod = pods[0]!;
    const c = await eventually('checkpoint', () => checkpointOf(pod));
    const url = `${await helperUrlOn(c.node)}/v1/blobs/${ns}/${pod.metadata!.uid}`;
    // The controller's own identity with the API server's audience (what a stolen API token would be): 401.
    const apiToken = await controllerToken();
    const refused = await hfetch(url, { headers: { authorization: `Bearer ${apiToken}` } });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toContain(`a token for the audience ${helperAudience(c.node)} is needed`);
    // A credential captured at one helper (what the controller sent to the helper of another node, read there
    // by a compromised node) opens no other helper.
    const others = (await readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=helper'))
      .map((h) => h.spec!.nodeName!)
      .filter((n) => n !== c.node);
    expect(others.length).toBeGreaterThan(0);
    for (const other of others) {
      const captured = await controllerToken(other);
      expect(
        (
          await hfetch(`${await helperUrlOn(other)}/v1/blobs`, {
            headers: { authorization: `Bearer ${captured}` },
          })
        ).status,
      ).toBe(200);
      const replayed = await hfetch(url, { headers: { authorization: `Bearer ${captured}` } });
      expect({ other, status: replayed.status }).toEqual({ other, status: 401 });
      expect(await replayed.text()).toContain(`a token for the audience ${helperAudience(c.node)} is needed`);
    }
    // The token for this helper's node opens this helper and nothing on the API server.
    const helperToken = await controllerToken(c.node);
    expect((await hfetch(url, { headers: { authorization: `Bearer ${helperToken}` } })).status).toBe(200);
    const server = kc.getCurrentCluster()!.server;
    const api = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        `${server}/api/v1/namespaces/${ns}/pods`,
        { headers: { authorization: `Bearer ${helperToken}` }, rejectUnauthorized: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(api).toBe(401);
  });

  it.each([
    ['an app answering 500', { status: 500 }, 'PullFailed', 'answered 500'],
    ['a slow app', { delayMs: 2500 }, 'PullFailed', 'within 1000 ms'],
    ['an oversized state', { sizeBytes: 200_000 }, 'StateTooLarge', 'exceeds maxStateBytes 100000'],
  ])(
    '%s: Degraded with a reason and a Warning Event, the good checkpoint kept',
    async (_what, mode, reason, text) => {
      const pod = pods[1]!;
      const good = await eventually('a checkpoint', () => checkpointOf(pod));
      await control(pod, mode);
      const degraded = await eventually(`Degraded ${reason}`, async () => {
        const c = condition(await policy(ns, 'app'), 'Degraded');
        return c?.status === 'True' && c.reason === reason ? c : undefined;
      });
      expect(degraded.message).toContain(text);
      expect(degraded.message).toContain(pod.metadata!.name);
      const kept = (await checkpointOf(pod))!;
      const frozenAt = kept.sequence;
      expect(kept.sequence).toBeGreaterThanOrEqual(good.sequence);
      await new Promise((r) => setTimeout(r, 3000));
      const later = (await checkpointOf(pod))!;
      expect(later.sequence).toBe(frozenAt);
      expect(later.digest).toBe(kept.digest);
      expect(
        (await warningEvents(ns, 'app')).some((e) => e.startsWith(`${reason}:`) && e.includes(text)),
      ).toBe(true);

      await control(pod, { status: 200, delayMs: 0, sizeBytes: 0 });
      await eventually(
        'Degraded clears',
        async () => condition(await policy(ns, 'app'), 'Degraded')?.status === 'False',
      );
      await eventually(
        'checkpoints flow again',
        async () => ((await checkpointOf(pod))?.sequence ?? 0) > frozenAt,
      );
    },
  );

  it('keeps checkpointing after the helper holding a copy restarts, and the helper kept its copy on disk', async () => {
    const pod = pods[0]!;
    const before = await eventually('a checkpoint', () => checkpointOf(pod));
    const helper = (await readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=helper')).find(
      (h) => h.spec!.nodeName === before.node,
    )!;
    await cluster('fault', 'crash', `${OPERATOR_NAMESPACE}/${helper.metadata!.name}`);
    await eventually('helper restarted', async () => {
      const h = await core.readNamespacedPod({ name: helper.metadata!.name!, namespace: OPERATOR_NAMESPACE });
      return (
        (h.status?.containerStatuses?.[0]?.restartCount ?? 0) > 0 && h.status?.containerStatuses?.[0]?.ready
      );
    });
    // The restarted helper loaded its copy from disk, unless the controller moved the copy elsewhere while
    // the helper was not Ready (and then deleted the stale one). Status is written at most every 5 s, so a
    // move may show there a little later than the inventory changes.
    await eventually(
      'the copy kept on disk or moved to another node',
      async () => {
        const res = await hfetch(`${await helperUrlOn(before.node)}/v1/blobs`, {
          headers: { authorization: `Bearer ${await controllerToken(before.node)}` },
        });
        const inventory = (await res.json()) as { blobs: { podUID: string; sequence: number }[] };
        const kept = inventory.blobs.find((b) => b.podUID === pod.metadata!.uid);
        const moved = (await checkpointOf(pod))!.node !== before.node;
        return moved || (kept?.sequence ?? 0) >= before.sequence;
      },
      20_000,
    );
    // While the helper was not Ready the copy may have moved to another node; either way pulls go on.
    const after = await eventually('new checkpoints after the restart', async () => {
      const c = await checkpointOf(pod);
      return c && c.sequence > before.sequence + 2000 ? c : undefined;
    });
    expect(after.node).not.toBe(pod.spec!.nodeName);
  });

  it('keeps checkpointing after the leader Pod is deleted: the standby takes over', async () => {
    const old = await eventually('a leader', () => leader());
    const since = Date.parse((await policy(ns, 'app')).status!.lastCheckpointTime!);
    await core.deleteNamespacedPod({ name: old, namespace: OPERATOR_NAMESPACE });
    const next = await eventually(
      'a new leader',
      async () => {
        const l = await leader();
        return l && l !== old ? l : undefined;
      },
      45_000,
    );
    const all = await core.listNamespacedPod({
      namespace: OPERATOR_NAMESPACE,
      labelSelector: 'app.kubernetes.io/component=controller',
    });
    expect(all.items.map((p) => p.metadata!.name)).toContain(next);
    await eventually(
      'checkpoints newer than the takeover',
      async () => {
        const p = await policy(ns, 'app');
        return (
          Date.parse(p.status!.lastCheckpointTime!) > since + 5000 && p.status!.checkpoints!.length === 2
        );
      },
      60_000,
    );
    await eventually('2 controllers again', async () => (await controllerPods()).length === 2, 60_000);
  });

  it('moves a copy to another node when its helper is unreachable, never losing the last good one', async () => {
    const pod = pods[0]!;
    const before = await eventually('a checkpoint', () => checkpointOf(pod));
    await cluster('fault', 'partition', before.node);
    try {
      let lowest = before.sequence;
      const moved = await eventually(
        'the copy on another node',
        async () => {
          const c = await checkpointOf(pod);
          if (!c) throw new Error('checkpoint vanished from status');
          expect(c.sequence).toBeGreaterThanOrEqual(lowest);
          lowest = c.sequence;
          return c.node !== before.node ? c : undefined;
        },
        90_000,
        500,
      );
      expect(moved.node).not.toBe(pod.spec!.nodeName);
    } finally {
      await cluster('fault', 'heal', before.node);
    }
    await eventually(
      'the healed node Ready',
      async () => {
        const n = await core.readNode({ name: before.node });
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      },
      60_000,
    );
  });
  it("moves the state from the Pod's own node's helper to other nodes, never through the controller", async () => {
    const helpers = await eventually('helpers Ready', async () => {
      const h = await readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=helper');
      return h.length >= 3 ? h : undefined;
    });
    const controllers = (await readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=controller')).map(
      (c) => c.status!.podIP!,
    );
    for (const pod of await readyPods(ns, 'app=app')) {
      const own = helpers.find((h) => h.spec!.nodeName === pod.spec!.nodeName)!;
      const res = await hfetch(`https://${own.status!.podIP}:9500/v1/assignments`, {
        headers: { authorization: `Bearer ${await controllerToken(own.spec!.nodeName)}` },
      });
      const { pods: assigned } = (await res.json()) as {
        pods: { podUID: string; intervalMs: number; targets: { node: string }[]; paused?: boolean }[];
      };
      const mine = assigned.find((a) => a.podUID === pod.metadata!.uid)!;
      expect(mine).toMatchObject({ intervalMs: 1000 });
      expect(mine.paused).toBeUndefined();
      expect(mine.targets.length).toBe(1);
      expect(mine.targets[0]!.node).not.toBe(pod.spec!.nodeName);
      // Who GETs the state: the helper of the Pod's node, and nobody else.
      const clients = (await eventually('state GETs counted', async () => {
        const c = JSON.parse(
          (await fetch(`http://${pod.status!.podIP}:8080/clients`).then((r) => r.text())) || '{}',
        );
        return Object.keys(c).length > 0 ? c : undefined;
      })) as Record<string, number>;
      expect(Object.keys(clients)).toEqual([own.status!.podIP]);
      for (const ip of controllers) expect(clients[ip]).toBeUndefined();
      const metrics = await fetch(`http://${own.status!.podIP}:9501/metrics`).then((r) => r.text());
      expect(
        Number(
          /pullstate_helper_pulls_total\{namespace="[^"]+",result="Succeeded"\} (\d+)/.exec(metrics)?.[1],
        ),
      ).toBeGreaterThan(0);
      expect(Number(/pullstate_helper_assigned_pods (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
    }
  });

  it('keeps checkpointing while no controller runs: the helpers pull what they were assigned', async () => {
    const [pod] = await readyPods(ns, 'app=app');
    const newest = async () => {
      const c = await checkpointOf(pod!);
      const url = await helperUrlOn(c!.node);
      const inv = (await (
        await hfetch(`${url}/v1/blobs?podUID=${pod!.metadata!.uid}`, {
          headers: { authorization: `Bearer ${await controllerToken(c!.node)}` },
        })
      ).json()) as { blobs: { sequence: number }[] };
      return Math.max(0, ...inv.blobs.map((b) => b.sequence));
    };
    try {
      await scaleControllers(0);
      const before = await newest();
      await new Promise((r) => setTimeout(r, 3500));
      expect(await newest()).toBeGreaterThan(before);
    } finally {
      await scaleControllers(2);
    }
  });
});

describe('annotation compatibility mode', () => {
  const name = 'annotated';
  const annotated = (annotations: Record<string, string>): V1Deployment => {
    const d = stateApp(name, 1);
    d.metadata!.annotations = annotations;
    return d;
  };
  const patchAnnotations = (annotations: Record<string, string | null>) =>
    kubectl(
      'patch',
      'deployment',
      name,
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ metadata: { annotations } }),
    );

  it('creates, updates and deletes a managed policy, and reports a bad value without touching it', async () => {
    const created = await apps.createNamespacedDeployment({
      namespace: ns,
      body: annotated({
        'hitachienergy.com/ps_mode': 'http',
        'hitachienergy.com/ps_interval': '1',
        'hitachienergy.com/ps_port': '8080',
        'hitachienergy.com/ps_path': '/state',
      }),
    });
    const managed = await eventually('managed policy', () => policy(ns, name));
    expect(managed.spec).toMatchObject({
      mode: 'http',
      intervalSeconds: 1,
      port: 8080,
      path: '/state',
      selector: { matchLabels: { app: name } },
    });
    expect(managed.metadata!.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'pull-state-operator' });
    expect(managed.metadata!.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Deployment', name, uid: created.metadata!.uid, controller: true }),
    ]);
    await eventually(
      'a checkpoint of the annotated app',
      async () => ((await policy(ns, name)).status?.checkpoints?.length ?? 0) === 1,
    );

    await patchAnnotations({ 'hitachienergy.com/ps_interval': 'soon' });
    const warning = await eventually('a Warning Event naming the annotation', async () =>
      (await warningEvents(ns, name)).find((e) => e.includes('hitachienergy.com/ps_interval="soon"')),
    );
    expect(warning).toMatch(/^InvalidAnnotation: .*allowed: a whole number from 1 to 3600/);
    const degraded = await eventually('Degraded InvalidAnnotation', async () => {
      const c = condition(await policy(ns, name), 'Degraded');
      return c?.reason === 'InvalidAnnotation' ? c : undefined;
    });
    expect(degraded.message).toContain('ps_interval');
    expect((await policy(ns, name)).spec.intervalSeconds).toBe(1); // the last good policy stays

    await patchAnnotations({ 'hitachienergy.com/ps_interval': '2' });
    await eventually('interval updated', async () => (await policy(ns, name)).spec.intervalSeconds === 2);
    await eventually(
      'Degraded clears',
      async () => condition(await policy(ns, name), 'Degraded')?.reason !== 'InvalidAnnotation',
    );

    await patchAnnotations({
      'hitachienergy.com/ps_mode': null,
      'hitachienergy.com/ps_interval': null,
      'hitachienergy.com/ps_port': null,
      'hitachienergy.com/ps_path': null,
    });
    await eventually('managed policy deleted', async () =>
      policy(ns, name).then(
        () => false,
        () => true,
      ),
    );
  });

  it('does not take over a policy the user made', async () => {
    await createPolicy(ns, 'mine', { selector: { matchLabels: { app: 'mine' } } });
    const mine = stateApp('mine', 1);
    mine.metadata!.annotations = { 'hitachienergy.com/ps_mode': 'http' };
    await apps.createNamespacedDeployment({ namespace: ns, body: mine });
    await eventually('a conflict Warning', async () =>
      (await warningEvents(ns, 'mine')).some((e) => e.startsWith('PolicyConflict:')),
    );
    expect((await policy(ns, 'mine')).metadata!.labels ?? {}).not.toHaveProperty(
      'app.kubernetes.io/managed-by',
    );
  });
});
