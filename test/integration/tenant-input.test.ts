// A tenant's Pod spec never takes a helper down (#27): a Deployment opted in with the compatibility
// annotations (http-sf, so its node's helper probes it) whose liveness path has characters outside Latin-1.
// The API server accepts such a path; node's http.request threw on it inside a promise nobody awaited, and the
// helper of the node exited, again after every restart. Here the helper keeps running and another tenant's app
// on the same node keeps being checkpointed.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATIONS, OPERATOR_NAMESPACE } from '../../src/api/index.js';
import { appDeployment } from '../../harness/deployment.js';
import { createFixtures, EXEC_IMAGE } from '../../harness/fixture-app.js';
import { apps, core, createNamespace, eventually, readyPods } from './cluster.js';
import { createPolicy, helperPods, installOperator, policy, stateAppDeployment } from './operator.js';

const ns = 'it-tenant-input';
const NODE = 'worker-1';
const LIVENESS = '/héalth✓';

/** Answers 200 to any GET (the kubelet's liveness probe, the helper's probe, a pull) and to any POST. */
const ANY_PATH_APP = `
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get('content-length') or 0))
        self.send_response(200)
        self.send_header('content-length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()
`;

const helperOn = async (node: string): Promise<V1Pod | undefined> =>
  (
    await core.listNamespacedPod({
      namespace: OPERATOR_NAMESPACE,
      labelSelector: 'app.kubernetes.io/component=helper',
    })
  ).items.find((p) => p.spec?.nodeName === node && !p.metadata?.deletionTimestamp);

const sequenceOf = async (uid: string) =>
  (await policy(ns, 'neighbour')).status?.checkpoints?.find((c) => c.podUID === uid && !c.orphaned)?.sequence;

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await createFixtures(core, ns);
});

it('a liveness path outside Latin-1 does not take the helper of its node down', async () => {
  const helper = await helperOn(NODE);
  expect(helper).toBeDefined();
  // Another tenant's app on the same node, protected by a policy.
  const neighbour = stateAppDeployment(ns, 'neighbour', 1);
  neighbour.spec!.template.spec!.nodeSelector = { 'kubernetes.io/hostname': NODE };
  await apps.createNamespacedDeployment({ namespace: ns, body: neighbour });
  await createPolicy(ns, 'neighbour', {
    selector: { matchLabels: { app: 'neighbour' } },
    mode: 'http',
    intervalSeconds: 1,
    port: 8080,
  });
  const hostile = appDeployment('unicode-liveness', ns, 1, {
    terminationGracePeriodSeconds: 1,
    nodeSelector: { 'kubernetes.io/hostname': NODE },
    containers: [
      {
        name: 'app',
        image: EXEC_IMAGE,
        command: ['python3', '-c', ANY_PATH_APP],
        ports: [{ containerPort: 8080 }],
        livenessProbe: { httpGet: { path: LIVENESS, port: 8080 }, periodSeconds: 1 },
      },
    ],
  });
  hostile.metadata!.annotations = {
    [ANNOTATIONS.mode]: 'http-sf',
    [ANNOTATIONS.interval]: '1',
    [ANNOTATIONS.path]: '/state',
    [ANNOTATIONS.port]: '8080',
  };
  await apps.createNamespacedDeployment({ namespace: ns, body: hostile });
  const [pod] = await eventually(
    'the neighbour Ready',
    async () => {
      const p = await readyPods(ns, 'app=neighbour');
      return p.length === 1 ? p : undefined;
    },
    120_000,
  );
  await eventually(
    'the hostile app Ready',
    async () => (await readyPods(ns, 'app=unicode-liveness')).length === 1,
  );
  const uid = pod!.metadata!.uid!;
  const first = await eventually('a checkpoint of the neighbour', () => sequenceOf(uid));
  // Fifteen more pulls of the neighbour while the helper probes the hostile app every second.
  await eventually(
    'the neighbour checkpointed on',
    async () => ((await sequenceOf(uid)) ?? 0) > first + 15_000,
    60_000,
  );
  const after = await helperOn(NODE);
  expect(after?.metadata?.uid).toBe(helper!.metadata!.uid);
  expect(after?.status?.containerStatuses?.[0]?.restartCount).toBe(
    helper!.status?.containerStatuses?.[0]?.restartCount,
  );
  expect((await helperPods()).length).toBeGreaterThan(0);
});
