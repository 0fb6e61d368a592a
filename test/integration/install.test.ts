// Deployable (#6): what `kubectl apply -k .` installs, what its ServiceAccounts may do, and that every
// example is accepted by the real API server.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { AuthorizationV1Api } from '@kubernetes/client-node';
import { HELPER_SIGNER_NAME, OPERATOR_NAMESPACE } from '../../src/api/index.js';
import { core, createNamespace, kc } from './cluster.js';
import { controllerPods, helperPods, installOperator, kubectl, leader } from './operator.js';

const run = promisify(execFile);
const ns = 'it-install';
const controllerSA = `system:serviceaccount:${OPERATOR_NAMESPACE}:pull-state-controller`;
const helperSA = `system:serviceaccount:${OPERATOR_NAMESPACE}:pull-state-helper`;
const authz = kc.makeApiClient(AuthorizationV1Api);

/** `kubectl auth can-i` as a ServiceAccount: true for "yes", false for "no" (exit code 1). */
async function canI(as: string, ...args: string[]): Promise<boolean> {
  try {
    await kubectl('auth', 'can-i', '--as', as, ...args);
    return true;
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '').trim();
    if (out === 'no') return false;
    throw err;
  }
}

async function dryRun(...args: string[]): Promise<string> {
  const { stdout } = await run('kubectl', [
    '--kubeconfig',
    '.local/kubeconfig',
    'apply',
    '--dry-run=server',
    ...args,
  ]);
  return stdout;
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
});

describe('kubectl apply -k .', () => {
  it('runs 2 controllers on different nodes with one leader, and a helper on every node', async () => {
    const controllers = await controllerPods();
    expect(controllers).toHaveLength(2);
    expect(new Set(controllers.map((p) => p.spec?.nodeName)).size).toBe(2);
    expect(controllers.map((p) => p.metadata?.name)).toContain(await leader());
    const nodes = (await core.listNode()).items.map((n) => n.metadata!.name).sort();
    expect((await helperPods()).map((p) => p.spec?.nodeName).sort()).toEqual(nodes);
  });

  it('installs NetworkPolicies: the helper port only from the operator and labelled scrapers, the controller only for metrics', async () => {
    const out = await kubectl(
      'get',
      'networkpolicies',
      '-n',
      OPERATOR_NAMESPACE,
      // The install's own (the tests add it-host-access beside them, see operator.ts).
      '-l',
      'app.kubernetes.io/name=pull-state-operator',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}:{range .spec.ingress[*]}{.ports[0].port},{end};{end}',
    );
    expect(out.split(';').filter(Boolean).sort()).toEqual([
      'pull-state-controller:9090,',
      'pull-state-helper:9500,9501,',
    ]);
  });

  it('is idempotent: applying it again changes nothing', async () => {
    const out = await kubectl('apply', '--server-side', '-k', '.');
    expect(out.split('\n').filter((l) => l && !/ (serverside-applied|unchanged)$/.test(l))).toEqual([]);
  });

  it('keeps a controller through drains and full nodes: a PodDisruptionBudget, a priority, the PSA level', async () => {
    const pdb = JSON.parse(
      await kubectl('get', 'pdb', 'pull-state-controller', '-n', OPERATOR_NAMESPACE, '-o', 'json'),
    ) as { spec: { maxUnavailable: number }; status: { disruptionsAllowed: number; expectedPods: number } };
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.status).toMatchObject({ expectedPods: 2, disruptionsAllowed: 1 });
    for (const p of [...(await controllerPods()), ...(await helperPods())]) {
      expect(p.spec?.priorityClassName).toBe('pull-state-operator');
      expect(p.spec?.priority).toBe(1_000_000);
    }
    const namespace = await core.readNamespace({ name: OPERATOR_NAMESPACE });
    expect(namespace.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
  });

  it('is what the release renders: dist/install.yaml of a scratch copy applies onto it unchanged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'install-'));
    try {
      for (const f of [
        'package.json',
        'package-lock.json',
        'kustomization.yaml',
        'crds',
        'manifests',
        'tools/release',
      ])
        cpSync(f, join(dir, f), { recursive: true });
      const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
      await run('npx', ['tsx', join(dir, 'tools/release/main.ts'), version, '--install-only']);
      const out = await kubectl('apply', '--server-side', '-f', join(dir, 'dist', 'install.yaml'));
      expect(out.split('\n').filter((l) => l && !/ (serverside-applied|unchanged)$/.test(l))).toEqual([]);
      expect(out).toContain('deployment.apps/pull-state-controller');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('least privilege', () => {
  it.each([
    ['get', 'secrets', '-A'],
    ['list', 'secrets', '-A'],
    ['get', 'secrets', '-n', OPERATOR_NAMESPACE],
    ['get', 'secret/some-other-secret', '-n', OPERATOR_NAMESPACE],
    ['update', 'configmaps/some-other-config', '-n', OPERATOR_NAMESPACE],
    ['delete', 'deployments', '-n', ns],
    ['update', 'deployments', '-n', ns],
    ['create', 'pods', '-n', ns],
    ['delete', 'nodes'],
  ])('the controller may not %s %s', async (...args) => {
    expect(await canI(controllerSA, ...args)).toBe(false);
  });

  it.each([
    ['delete', 'pods', '-n', ns],
    ['patch', 'pods', '--subresource=status', '-n', ns],
    ['patch', 'nodes'],
    ['list', 'deployments', '-A'],
    ['update', 'pullstatepolicies.pullstate.hitachienergy.com', '--subresource=status', '-n', ns],
    ['create', 'leases', '-n', OPERATOR_NAMESPACE],
    ['get', 'secret/pull-state-ca', '-n', OPERATOR_NAMESPACE],
    ['update', 'configmaps/pull-state-ca', '-n', OPERATOR_NAMESPACE],
    ['update', 'certificatesigningrequests', '--subresource=approval'],
    ['update', 'certificatesigningrequests', '--subresource=status'],
  ])('the controller may %s %s', async (...args) => {
    expect(await canI(controllerSA, ...args)).toBe(true);
  });

  // kubectl auth can-i cannot name a signer (its name has a slash): ask the authorizer directly.
  it('the controller may approve and sign for its own signer only', async () => {
    const may = async (verb: string, signer: string, user: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user,
              groups: [
                'system:serviceaccounts',
                `system:serviceaccounts:${OPERATOR_NAMESPACE}`,
                'system:authenticated',
              ],
              resourceAttributes: { group: 'certificates.k8s.io', resource: 'signers', verb, name: signer },
            },
          },
        })
      ).status?.allowed === true;
    for (const verb of ['approve', 'sign']) {
      expect(await may(verb, HELPER_SIGNER_NAME, controllerSA)).toBe(true);
      expect(await may(verb, 'kubernetes.io/kube-apiserver-client', controllerSA)).toBe(false);
      expect(await may(verb, 'kubernetes.io/kubelet-serving', controllerSA)).toBe(false);
      expect(await may(verb, HELPER_SIGNER_NAME, helperSA)).toBe(false);
    }
  });

  it('the controller may not write Leases outside its own namespace', async () => {
    expect(await canI(controllerSA, 'create', 'leases', '-n', ns)).toBe(false);
  });

  it('each may request tokens for its own ServiceAccount only', async () => {
    const token = (account: string) => [
      'create',
      `serviceaccounts/${account}`,
      '--subresource=token',
      '-n',
      OPERATOR_NAMESPACE,
    ];
    expect(await canI(controllerSA, ...token('pull-state-controller'))).toBe(true);
    expect(await canI(helperSA, ...token('pull-state-helper'))).toBe(true);
    expect(await canI(controllerSA, ...token('pull-state-helper'))).toBe(false);
    expect(await canI(helperSA, ...token('pull-state-controller'))).toBe(false);
    expect(await canI(helperSA, ...token('default'))).toBe(false);
    expect(
      await canI(controllerSA, 'create', 'serviceaccounts/default', '--subresource=token', '-n', ns),
    ).toBe(false);
  });

  it('the helper may only review tokens, ask for its certificate and read the CA certificate', async () => {
    for (const args of [
      ['create', 'tokenreviews'],
      ['create', 'certificatesigningrequests'],
      ['get', 'configmap/pull-state-ca', '-n', OPERATOR_NAMESPACE],
    ])
      expect(await canI(helperSA, ...args)).toBe(true);
    for (const args of [
      ['get', 'secrets', '-A'],
      ['get', 'secret/pull-state-ca', '-n', OPERATOR_NAMESPACE],
      ['get', 'configmap/other', '-n', OPERATOR_NAMESPACE],
      ['update', 'certificatesigningrequests', '--subresource=approval'],
      ['update', 'certificatesigningrequests', '--subresource=status'],
      ['list', 'pods', '-A'],
      ['get', 'nodes'],
    ])
      expect(await canI(helperSA, ...args)).toBe(false);
  });
});

describe('examples pass kubectl apply --dry-run=server', () => {
  const files = ['count-app', 'go-app', 'python-app'].flatMap((dir) =>
    readdirSync(join('examples', dir))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => `examples/${dir}/${f}`),
  );

  it.each(files)('%s', async (file) => {
    const out = await dryRun('-n', ns, '-f', file);
    expect(out).toMatch(/\(server dry run\)/);
  });

  it('the Argo CD health check is a valid argocd-cm ConfigMap', async () => {
    await createNamespace('argocd');
    const patch = parse(readFileSync('examples/argocd/argocd-cm-health.yaml', 'utf8')) as {
      data: Record<string, string>;
    };
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'argocd-cm', namespace: 'argocd' },
      ...patch,
    };
    const child = execFile('kubectl', [
      '--kubeconfig',
      '.local/kubeconfig',
      'apply',
      '--dry-run=server',
      '-f',
      '-',
    ]);
    const out = new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (d: Buffer) => (text += String(d)));
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`kubectl exited ${code}`))));
    });
    child.stdin!.end(JSON.stringify(cm));
    expect(await out).toMatch(/configmap\/argocd-cm created \(server dry run\)/);
  });
});
