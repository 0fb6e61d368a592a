// A helper's own credential used from the wrong node (#28): the helpers' token is bound to a helper Pod, and
// TokenReview names that Pod's node. A helper keeps copies only of the Pods the controller told it to hold,
// and only from the helper of the node each Pod runs on, so a compromised node cannot plant a copy of a Pod
// on another node (which would be restored into it), nor of a Pod the target does not hold, nor one with a
// sequence that would block the Pod's later copies. The victim's checkpoints go on.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { helperFetch } from '../../harness/helper-https.js';
import { HELPER_API, OPERATOR_NAMESPACE, helperAudience } from '../../src/api/index.js';
import { core, createNamespace, eventually, kc } from './cluster.js';
import { controllerHelperToken, helperPods, installOperator, policy, protectedStateApp } from './operator.js';
import { createFixtures } from '../../harness/fixture-app.js';

const ns = 'it-custody';

/**
 * A token of the helpers' ServiceAccount bound to the helper Pod on `node`, for the helper of node `audience`:
 * what the helper of `node` sends there (and what a compromised `node` can ask for).
 */
async function helperTokenOf(node: string, audience: string): Promise<string> {
  const pod = (await helperPods()).find((p) => p.spec?.nodeName === node)!;
  const t = await core.createNamespacedServiceAccountToken({
    name: 'pull-state-helper',
    namespace: OPERATOR_NAMESPACE,
    body: {
      spec: {
        audiences: [helperAudience(audience)],
        expirationSeconds: 600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! },
      },
    },
  });
  return t.status!.token;
}

async function plant(target: string, podUID: string, token: string, sequence: number) {
  const helper = (await helperPods()).find((p) => p.spec?.nodeName === target)!;
  const q = new URLSearchParams({
    policy: 'victim',
    policyUID: 'x',
    pod: 'victim',
    sequence: String(sequence),
  });
  const res = await helperFetch(
    kc,
    `https://${helper.status!.podIP}:9500${HELPER_API}/blobs/${ns}/${podUID}?${q.toString()}`,
    {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"planted":true}',
    },
  );
  return { status: res.status, body: await res.text() };
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await createFixtures(core, ns);
  await protectedStateApp(ns, 'victim', 1, { copies: 1 });
}, 300_000);

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

it("refuses a helper's copy of a Pod on another node, of a Pod it does not hold, and a far-future sequence", async () => {
  const checkpoint = await eventually('a checkpoint of the victim', async () => {
    const c = (await policy(ns, 'victim')).status?.checkpoints?.find((x) => !x.orphaned);
    return c?.node ? c : undefined;
  });
  const podNode = (await core.readNamespacedPod({ name: checkpoint.pod, namespace: ns })).spec!.nodeName!;
  const holder = checkpoint.node;
  const nodes = (await helperPods()).map((p) => p.spec!.nodeName!);
  const attacker = nodes.find((n) => n !== podNode && n !== holder)!;
  expect(attacker).toBeDefined();
  const stolen = await helperTokenOf(attacker, holder);

  const fromElsewhere = await plant(holder, checkpoint.podUID, stolen, Date.now() + 1000);
  expect(fromElsewhere.status).toBe(403);
  expect(fromElsewhere.body).toContain(
    `copies of Pod ${ns}/${checkpoint.podUID} come from the helper of node ${podNode}, not ${attacker}`,
  );
  const unheld = await plant(holder, '0f4c2a1e-dead-beef-0000-000000000000', stolen, Date.now() + 1000);
  expect(unheld.status).toBe(403);
  expect(unheld.body).toContain('was not told to keep copies of Pod');
  // Even the right node's credential cannot push a sequence that would make every later copy look older.
  const ahead = await plant(
    holder,
    checkpoint.podUID,
    await helperTokenOf(podNode, holder),
    Number.MAX_SAFE_INTEGER,
  );
  expect(ahead.status).toBe(400);
  expect(ahead.body).toContain('more than a day ahead');
  // The Pod's own node's credential for another helper (captured there by a compromised node) is useless at
  // the holder: each token is for one helper's audience.
  const captured = await plant(
    holder,
    checkpoint.podUID,
    await helperTokenOf(podNode, attacker),
    Date.now() + 1000,
  );
  expect(captured.status).toBe(401);
  expect(captured.body).toContain(`a token for the audience ${helperAudience(holder)} is needed`);

  // The victim's own copies go on, and none of them is the planted body.
  await eventually('the victim checkpointed after the attempts', async () => {
    const c = (await policy(ns, 'victim')).status?.checkpoints?.find((x) => x.podUID === checkpoint.podUID);
    return (c?.sequence ?? 0) > checkpoint.sequence + 3000;
  });
  const helper = (await helperPods()).find((p) => p.spec?.nodeName === holder)!;
  const copy = await helperFetch(
    kc,
    `https://${helper.status!.podIP}:9500${HELPER_API}/blobs/${ns}/${checkpoint.podUID}`,
    { headers: { authorization: `Bearer ${await controllerHelperToken(holder)}` } },
  );
  expect(copy.status).toBe(200);
  expect(await copy.text()).not.toContain('planted');
}, 180_000);

it("a helper's credential mints tokens bound to its own Pod only: none naming no node, nor another node's helper", async () => {
  const [a, b] = await helperPods();
  // What a compromised node reads from its helper's Pod: that Pod's token for the API server.
  const stolen = (
    await core.createNamespacedServiceAccountToken({
      name: 'pull-state-helper',
      namespace: OPERATOR_NAMESPACE,
      body: {
        spec: {
          audiences: [],
          expirationSeconds: 600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: a!.metadata!.name!, uid: a!.metadata!.uid! },
        },
      },
    })
  ).status!.token;
  const mint = async (...args: string[]) => {
    try {
      await promisify(execFile)('kubectl', [
        '--kubeconfig',
        '.local/kubeconfig',
        '--token',
        stolen,
        'create',
        'token',
        'pull-state-helper',
        '-n',
        OPERATOR_NAMESPACE,
        ...args,
      ]);
      return 'issued';
    } catch (err) {
      return String((err as { stderr?: string }).stderr);
    }
  };
  const boundTo = (p: typeof a) => [
    '--bound-object-kind',
    'Pod',
    '--bound-object-name',
    p!.metadata!.name!,
    '--bound-object-uid',
    p!.metadata!.uid!,
  ];
  const denied = "ValidatingAdmissionPolicy 'pull-state-operator-own-pod-tokens'";
  expect(await mint('--duration', '1h')).toContain(denied);
  expect(await mint('--duration', '1h', ...boundTo(b))).toContain(denied);
  expect(await mint('--duration', '2h', ...boundTo(a))).toContain(denied);
  // What the helper itself asks for: bound to its own Pod, an hour.
  expect(await mint('--duration', '1h', ...boundTo(a))).toBe('issued');
});
