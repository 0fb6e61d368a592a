// GitOps (#16): a real Argo CD (`npm run cluster -- up --argocd`) syncs this repository from a local git
// repository: the operator from the root kustomization, the count app with its PullStatePolicy, the
// project's Lua health check in argocd-cm, and re-syncs that write nothing.
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { OPERATOR_NAMESPACE } from '../../src/api/index.js';
import { ARGOCD_NAMESPACE } from '../../tools/localcluster/src/argocd.js';
import { apps, core, eventually } from './cluster.js';
import { condition, controllerPods, custom, helperPods, kubectl, leader, policy } from './operator.js';

const run = promisify(execFile);
const repoDir = resolve('.local/gitops/repo');
const appNamespace = 'count-app';

interface Application {
  metadata: { name: string; annotations?: Record<string, string> };
  status?: {
    sync?: { status?: string; revision?: string };
    health?: { status?: string };
    resources?: { kind: string; name: string; health?: { status?: string; message?: string } }[];
    operationState?: { phase?: string; startedAt?: string; message?: string };
    conditions?: { type: string; message: string }[];
  };
}

async function git(...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-C', repoDir, ...args]);
  return stdout.trim();
}

/** This checkout as it is now (tracked and new files, as .gitignore allows) committed to a repository of its own. */
async function publishCheckout(): Promise<void> {
  rmSync(repoDir, { recursive: true, force: true });
  mkdirSync(repoDir, { recursive: true });
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']);
  for (const f of stdout.split('\0').filter((f) => f && existsSync(f))) {
    mkdirSync(dirname(join(repoDir, f)), { recursive: true });
    cpSync(f, join(repoDir, f));
  }
  await git('init', '-q', '-b', 'main');
  await git('add', '-A');
  await commit('the checkout under test');
  // The operator's example Application follows a release tag: the checkout under test is that release.
  const { spec } = parse(readFileSync(join('examples', 'argocd', 'application.yaml'), 'utf8')) as {
    spec: { source: { targetRevision: string } };
  };
  if (spec.source.targetRevision !== 'main') await git('tag', spec.source.targetRevision);
}

async function commit(message: string): Promise<string> {
  await git(
    '-c',
    'user.name=gitops-test',
    '-c',
    'user.email=gitops-test@localhost',
    'commit',
    '-q',
    '-am',
    message,
  );
  return git('rev-parse', 'HEAD');
}

/** An example Application of examples/argocd/, pointed at the local repository. */
async function applyExample(file: string): Promise<string> {
  const app = parse(readFileSync(join('examples', 'argocd', file), 'utf8')) as {
    metadata: { name: string };
    spec: { source: { repoURL: string; targetRevision: string } };
  };
  app.spec.source.repoURL = `file://${repoDir}`;
  await kubectl(
    'apply',
    '--server-side',
    '--field-manager=gitops-test',
    '-f',
    writeTemp(file, stringify(app)),
  );
  return app.metadata.name;
}

function writeTemp(name: string, content: string): string {
  const path = resolve('.local/gitops', name);
  writeFileSync(path, content);
  return path;
}

async function application(name: string): Promise<Application> {
  return (await custom.getNamespacedCustomObject({
    group: 'argoproj.io',
    version: 'v1alpha1',
    namespace: ARGOCD_NAMESPACE,
    plural: 'applications',
    name,
  })) as Application;
}

const summary = (a: Application) =>
  JSON.stringify({
    sync: a.status?.sync,
    health: a.status?.health,
    operation: a.status?.operationState?.message,
    conditions: a.status?.conditions,
    unhealthy: a.status?.resources?.filter((r) => r.health && r.health.status !== 'Healthy'),
  });

/** Waits until the Application is in `sync`/`health` (at `revision` if given); fails with its last status. */
async function waitFor(name: string, sync: string, health: string, revision?: string): Promise<Application> {
  return eventually(
    `Application ${name} ${sync}/${health}${revision ? ` at ${revision.slice(0, 8)}` : ''}`,
    async () => {
      const a = await application(name);
      const ok =
        a.status?.sync?.status === sync &&
        a.status?.health?.status === health &&
        (!revision || a.status?.sync?.revision === revision);
      if (!ok) throw new Error(`last status ${summary(a)}`);
      return a;
    },
    240_000,
    500,
  );
}

/** Asks Argo CD to compare with Git now instead of at the next resync. */
async function refresh(name: string): Promise<void> {
  await kubectl(
    '-n',
    ARGOCD_NAMESPACE,
    'annotate',
    '--overwrite',
    `application/${name}`,
    'argocd.argoproj.io/refresh=normal',
  );
}

/** A merge patch of an Application. */
function patchApplication(name: string, patch: unknown): Promise<string> {
  return kubectl(
    '-n',
    ARGOCD_NAMESPACE,
    'patch',
    `application/${name}`,
    '--type=merge',
    '-p',
    JSON.stringify(patch),
  );
}

/** Removes an Application and leaves what it synced running (no cascade), as `argocd app delete --cascade=false`. */
async function removeApplication(name: string): Promise<void> {
  await patchApplication(name, { metadata: { finalizers: null } }).catch(() => '');
  await kubectl('-n', ARGOCD_NAMESPACE, 'delete', `application/${name}`, '--ignore-not-found', '--wait=true');
}

/** What a no-op sync must not change: generations and the time Argo CD last applied each object. */
async function appliedState(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const objects = [
    ['crd', 'pullstatepolicies.pullstate.hitachienergy.com', ''],
    ['deployment', 'pull-state-controller', OPERATOR_NAMESPACE],
    ['daemonset', 'pull-state-helper', OPERATOR_NAMESPACE],
    ['deployment', 'count-app', appNamespace],
    ['pullstatepolicy', 'count-app', appNamespace],
  ] as const;
  for (const [kind, name, ns] of objects) {
    const raw = await kubectl(
      'get',
      kind,
      name,
      ...(ns ? ['-n', ns] : []),
      '-o',
      'json',
      '--show-managed-fields',
    );
    const o = JSON.parse(raw) as {
      metadata: {
        generation?: number;
        managedFields?: { manager: string; operation: string; time: string }[];
      };
    };
    const applied = o.metadata.managedFields?.find(
      (m) => m.manager === 'argocd-controller' && m.operation === 'Apply',
    );
    out[`${kind}/${name}`] = `generation ${o.metadata.generation}, applied ${applied?.time ?? 'never'}`;
  }
  return out;
}

async function syncNow(name: string): Promise<void> {
  const before = (await application(name)).status?.operationState?.startedAt;
  const operation = {
    operation: {
      initiatedBy: { username: 'gitops-test' },
      sync: { revision: 'main', prune: true, syncOptions: ['ServerSideApply=true'] },
    },
  };
  await patchApplication(name, operation);
  await eventually(
    `a new sync of ${name} to finish`,
    async () => {
      const op = (await application(name)).status?.operationState;
      if (op?.startedAt === before || op?.phase !== 'Succeeded')
        throw new Error(`operation ${JSON.stringify(op)}`);
      return true;
    },
    120_000,
    500,
  );
}

/** `cluster up --argocd` with its output shown: it may wait for (or do) a cold Argo CD build. */
async function startArgoCd(): Promise<void> {
  const child = spawn('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up', '--argocd'], {
    stdio: 'inherit',
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`cluster up --argocd exited with ${code}`);
}

beforeAll(async () => {
  // `npm test` builds Argo CD in the background while the other test files run; this one runs last
  // (sequencer.js) and waits here for that build if it is still going.
  await startArgoCd();
  for (const name of ['pull-state-operator', 'count-app']) await removeApplication(name);
  await kubectl('delete', 'namespace', appNamespace, '--ignore-not-found', '--wait=true', '--timeout=120s');
  // Argo CD installs the operator itself: nothing of an earlier `kubectl apply -k .` may be left.
  await kubectl('delete', '-k', '.', '--ignore-not-found', '--wait=true', '--timeout=180s');
  await publishCheckout();
}, 2_700_000);

afterAll(async () => {
  // The operator stays installed for the next test file (each applies it again); the count app goes.
  for (const name of ['pull-state-operator', 'count-app']) await removeApplication(name);
  await kubectl('delete', 'namespace', appNamespace, '--ignore-not-found', '--wait=false');
});

describe('Argo CD syncs this repository', () => {
  it('installs the operator from the repository root: Synced and Healthy, namespace and CRD before the workloads', async () => {
    const name = await applyExample('application.yaml');
    await waitFor(name, 'Synced', 'Healthy', await git('rev-parse', 'HEAD'));
    const nodes = (await core.listNode()).items.length;
    expect((await helperPods()).length).toBe(nodes);
    expect(await controllerPods()).toHaveLength(2);
    await eventually('a leader', () => leader());
    const created = async (kind: string, n: string, ns?: string) =>
      Date.parse(
        await kubectl(
          'get',
          kind,
          n,
          ...(ns ? ['-n', ns] : []),
          '-o',
          'jsonpath={.metadata.creationTimestamp}',
        ),
      );
    // Waves -10, -5 and 0, with Argo CD's 2 s between waves and whole seconds in creationTimestamp.
    const crd = await created('crd', 'pullstatepolicies.pullstate.hitachienergy.com');
    const sa = await created('serviceaccount', 'pull-state-controller', OPERATOR_NAMESPACE);
    const deployment = await created('deployment', 'pull-state-controller', OPERATOR_NAMESPACE);
    expect(crd).toBeLessThan(sa);
    expect(sa).toBeLessThan(deployment);
    const d = await apps.readNamespacedDeployment({
      name: 'pull-state-controller',
      namespace: OPERATOR_NAMESPACE,
    });
    expect(d.metadata?.managedFields?.map((m) => `${m.manager}/${m.operation}`)).toContain(
      'argocd-controller/Apply',
    );
  });

  it('syncs an app with its PullStatePolicy, which the Lua check shows Healthy once Ready', async () => {
    const name = await applyExample('count-app-application.yaml');
    const app = await waitFor(name, 'Synced', 'Healthy');
    expect(condition(await policy(appNamespace, 'count-app'), 'Ready')?.status).toBe('True');
    const health = app.status?.resources?.find((r) => r.kind === 'PullStatePolicy')?.health;
    expect(health?.status).toBe('Healthy');
    expect(health?.message).toMatch(/checkpoint/i);
  });

  it('shows the policy Degraded, with the reason, while its pulls fail, and Healthy again after the fix', async () => {
    const file = join(repoDir, 'examples', 'count-app', 'policy.yaml');
    const good = readFileSync(file, 'utf8');
    // Nothing listens on 8081 in the count app: every pull fails.
    writeFileSync(file, good.replace(/^  port: 8080$/m, '  port: 8081'));
    const broken = await commit('pull from a port the app does not serve');
    await refresh('count-app');
    const degraded = await waitFor('count-app', 'Synced', 'Degraded', broken);
    const health = degraded.status?.resources?.find((r) => r.kind === 'PullStatePolicy')?.health;
    expect(health?.status).toBe('Degraded');
    expect(health?.message).toMatch(/^PullFailed: /);
    writeFileSync(file, good);
    const fixed = await commit('pull from the app port again');
    await refresh('count-app');
    await waitFor('count-app', 'Synced', 'Healthy', fixed);
  });

  it('re-syncs as no-ops: status is ignored and server-side apply writes nothing', async () => {
    const before = await appliedState();
    // Every object was applied by Argo CD, so an unchanged time means the re-sync wrote nothing.
    expect(Object.entries(before).filter(([, v]) => v.endsWith('applied never'))).toEqual([]);
    const statusBefore = (await policy(appNamespace, 'count-app')).metadata?.resourceVersion;
    for (const name of ['pull-state-operator', 'count-app']) await syncNow(name);
    // Two resync periods (10 s each) while the controller keeps writing the policy's status.
    const seen = new Set<string>();
    for (const end = Date.now() + 25_000; Date.now() < end;) {
      for (const name of ['pull-state-operator', 'count-app']) {
        const a = await application(name);
        seen.add(`${name} ${a.status?.sync?.status}/${a.status?.health?.status}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect([...seen].sort()).toEqual(['count-app Synced/Healthy', 'pull-state-operator Synced/Healthy']);
    expect((await policy(appNamespace, 'count-app')).metadata?.resourceVersion).not.toBe(statusBefore);
    expect(await appliedState()).toEqual(before);
  });
});
