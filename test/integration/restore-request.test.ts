// PullStateRestore on real nodes: the count app rolled back to an earlier generation, shown by its counter;
// bad references answered with a status that says what is allowed; the schema's rules enforced by the API.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { stats } from '../../harness/failover.js';
import { GROUP, RESTORE_PLURAL, VERSION, type IPullStateRestore } from '../../src/api/index.js';
import { createNamespace, eventually, readyPods } from './cluster.js';
import { custom, installOperator, kubectl, policy } from './operator.js';

const ns = 'it-restore';

async function createRestore(name: string, spec: IPullStateRestore['spec']): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: RESTORE_PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'PullStateRestore', metadata: { name }, spec },
  });
}

async function finished(name: string): Promise<IPullStateRestore> {
  return eventually(
    `PullStateRestore ${name} finished`,
    async () => {
      const r = (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: RESTORE_PLURAL,
        name,
      })) as IPullStateRestore;
      return r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed' ? r : undefined;
    },
    60_000,
  );
}

let podName: string;
let podIP: string;

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  // The count app of the examples, with checkpoints every second.
  const docs = parseAllDocuments(readFileSync('examples/count-app/policy.yaml', 'utf8')).map((d) => d.toJS());
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', 'apply', '-n', ns, '-f', '-'], {
    input: docs.map((d) => JSON.stringify(d)).join('\n'),
  });
  const [pod] = await eventually(
    'count app Ready',
    async () => {
      const p = await readyPods(ns, 'app=count-app');
      return p.length === 1 ? p : undefined;
    },
    90_000,
  );
  podName = pod!.metadata!.name!;
  podIP = pod!.status!.podIP!;
  await eventually('a checkpoint', async () => (await policy(ns, 'count-app')).status?.checkpoints?.length);
});

describe('PullStateRestore', () => {
  it('rolls the count app back to the newest generation before a time, once', async () => {
    // Let the helpers build up generations, among them one 10-20 s older than the newest.
    await new Promise((r) => setTimeout(r, 15_000));
    const at = new Date();
    const countAt = (await stats(podIP, 1000))!.count;
    // 10 updates a second, less on a loaded machine: 7 s leave a margin above the 50 checked below.
    await new Promise((r) => setTimeout(r, 7000));
    const before = (await stats(podIP, 1000))!;
    await createRestore('back', {
      policyName: 'count-app',
      generation: { from: 'Before', before: at.toISOString() },
    });
    const done = await finished('back');
    expect(done.status).toMatchObject({ phase: 'Succeeded', restoredPods: 1 });
    const [entry] = done.status!.pods!;
    expect(entry).toMatchObject({ pod: podName, result: 'Succeeded' });
    expect(Date.parse(entry!.pulledAt!)).toBeLessThan(at.getTime());
    const after = (await stats(podIP, 1000))!;
    // The counter went back to what it was at that generation: at or below its value at `at`, far below
    // where it stood when the restore was asked for (10 updates a second).
    expect(after.restores).toBe(before.restores + 1);
    expect(after.restoredCount).not.toBeNull();
    expect(after.restoredCount!).toBeLessThanOrEqual(countAt);
    expect(before.count - after.restoredCount!).toBeGreaterThanOrEqual(50);
    // Once: nothing more happens to the Pod later.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await stats(podIP, 1000))!.restores).toBe(after.restores);
    const events = await kubectl(
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      `involvedObject.name=${podName},reason=RolledBack`,
    );
    expect(events).toMatch(/restored by PullStateRestore back/);
    const table = await kubectl('get', 'pullstaterestores', '-n', ns);
    expect(table).toMatch(/^NAME\s+POLICY\s+POD\s+GENERATION\s+PHASE\s+RESTORED\s+AGE/);
    expect(table).toMatch(/\nback\s+count-app\s+Before\s+Succeeded\s+1\s+/);
  });

  it('reports a bad reference in its status: which one and what is allowed', async () => {
    await createRestore('no-policy', { policyName: 'nope' });
    await createRestore('no-pod', { policyName: 'count-app', podName: 'nope' });
    await createRestore('too-far', { policyName: 'count-app', generation: { from: 'Index', index: 50 } });
    await createRestore('too-early', {
      policyName: 'count-app',
      generation: { from: 'Before', before: '2020-01-01T00:00:00Z' },
    });
    const msg = async (name: string) => {
      const r = await finished(name);
      expect(r.status!.phase).toBe('Failed');
      return r.status!.message;
    };
    expect(await msg('no-policy')).toMatch(
      `PullStatePolicy ${ns}/nope not found; allowed: a policy in namespace ${ns}`,
    );
    expect(await msg('no-pod')).toMatch(`Pod nope is not protected by count-app; allowed: ${podName}`);
    expect(await msg('too-far')).toMatch(/index 50 is past the oldest stored generation; allowed: 0 to \d+/);
    expect(await msg('too-early')).toMatch(/no generation was pulled before 2020-01-01T00:00:00.000Z/);
    expect(await kubectl('get', 'events', '-n', ns, '--field-selector', 'reason=RestoreFailed')).toMatch(
      /no-policy|nope/,
    );
  });

  it('is refused by the API server when its generation is malformed, or when its spec changes', async () => {
    const apply = (spec: unknown) =>
      custom
        .createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: ns,
          plural: RESTORE_PLURAL,
          body: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: 'PullStateRestore',
            metadata: { generateName: 'bad-' },
            spec,
          },
        })
        .then(
          () => 'accepted',
          (err: { body?: string }) => (JSON.parse(String(err.body)) as { message: string }).message,
        );
    expect(await apply({ policyName: 'count-app', generation: { from: 'Index' } })).toMatch(
      /from: Index needs index \(0 is the newest generation\)/,
    );
    expect(await apply({ policyName: 'count-app', generation: { from: 'Before' } })).toMatch(
      /from: Before needs before/,
    );
    expect(await apply({ policyName: 'count-app', generation: { from: 'Newest', index: 1 } })).toMatch(
      /index is only allowed with from: Index/,
    );
    expect(await apply({ policyName: 'count-app', generation: { from: 'Latest' } })).toMatch(
      /Unsupported value: "Latest"/,
    );
    await expect(
      custom.patchNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: RESTORE_PLURAL,
        name: 'back',
        body: [{ op: 'replace', path: '/spec/policyName', value: 'other' }],
      }),
    ).rejects.toMatchObject({ body: expect.stringMatching(/spec is immutable/) });
  });
});
