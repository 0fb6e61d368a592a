// Failover and restore (#5) end to end with the count app at interval 1 s in http-sf mode: every fault ends
// with a Ready replacement whose counter was restored, losing at most one interval of updates.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { failoverTrial } from '../support/failover.js';
import { createNamespace, eventually, readyPods } from './cluster.js';
import { installOperator, policy } from './operator.js';

const ns = 'it-failover';
/** One interval of count-app updates (10 per second at 1 s), plus one for the sampling of the test itself. */
const MAX_LOST = 11;

// Example manifests are edited as plain parsed YAML.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

async function applyExample(file: string, edit: (doc: Doc) => void = () => undefined): Promise<void> {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Doc);
  docs.forEach(edit);
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', 'apply', '-n', ns, '-f', '-'], {
    input: docs.map((d) => JSON.stringify(d)).join('\n'),
  });
}

async function checkpointed(selector: string, name: string): Promise<void> {
  const [pod] = await eventually(
    `${selector} Ready`,
    async () => {
      const p = await readyPods(ns, selector);
      return p.length === 1 ? p : undefined;
    },
    90_000,
  );
  await eventually('a checkpoint of the Pod', async () =>
    (await policy(ns, name)).status?.checkpoints?.some((c) => c.podUID === pod!.metadata!.uid && !c.orphaned),
  );
  await new Promise((r) => setTimeout(r, 1500));
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await applyExample('examples/count-app/policy.yaml');
  await checkpointed('app=count-app', 'count-app');
});

describe('failover with the count app (interval 1 s, http-sf)', () => {
  it('crash: the restarted container gets its counter back', async () => {
    const r = await failoverTrial(ns, 'app=count-app', 'crash');
    expect(r.restoredCount).not.toBeNull();
    expect(r.lostUpdates).toBeLessThanOrEqual(MAX_LOST);
    expect(r.lostUpdates).toBeGreaterThanOrEqual(0);
    const p = await policy(ns, 'count-app');
    expect(p.status?.lastRestore).toMatchObject({ result: 'Succeeded', pod: r.podAfter });
  });

  it('kubectl delete pod: the replacement continues exactly where the old Pod stopped', async () => {
    await checkpointed('app=count-app', 'count-app');
    const r = await failoverTrial(ns, 'app=count-app', 'delete');
    expect(r.podAfter).not.toBe(r.podBefore);
    expect(r.lostUpdates).toBe(0);
  });
});
