// The controller's informer against the real API server: a watch restarted because it went idle keeps
// delivering, without error loops (an idle restart used to abort its own next watch, again and again).
import { Writable } from 'node:stream';
import winston from 'winston';
import { PatchStrategy, setHeaderOptions, type V1ConfigMap } from '@kubernetes/client-node';
import { Informer } from '../../src/controller/kube/informer.js';
import { core, createNamespace, eventually, kc } from './cluster.js';

const ns = 'it-informer';

/** Every log line the informer writes, as "level message". */
const lines: string[] = [];
const recorder = new winston.transports.Stream({
  stream: new Writable({
    objectMode: true,
    write(info: { level: string; message: string }, _enc, done) {
      lines.push(`${info.level} ${info.message}`);
      done();
    },
  }),
  format: winston.format((info) => info)(),
});

let informer: Informer<V1ConfigMap>;

beforeAll(async () => {
  await createNamespace(ns);
  informer = new Informer<V1ConfigMap>({
    name: 'configmaps',
    kc,
    path: `/api/v1/namespaces/${ns}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace: ns }),
    log: winston.createLogger({ level: 'debug', transports: [recorder] }),
    idleRestartMs: 1500,
  });
  await informer.start();
});

afterAll(async () => {
  await informer.stop();
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe('Informer', () => {
  it('restarts an idle watch cleanly and still sees every change', async () => {
    // A namespace with nothing happening: the watch goes idle and is restarted every 3 s (idle for 1.5 s, checked every 1.5 s).
    await new Promise((r) => setTimeout(r, 8000));
    const restarts = lines.filter((l) => l === 'info watch idle, restarting').length;
    expect(restarts).toBeGreaterThanOrEqual(2);
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'a' }, data: { v: '1' } },
    });
    await eventually(
      'the new ConfigMap in the cache',
      async () => informer.get('a', ns)?.data?.v === '1',
      3000,
      50,
    );
    await new Promise((r) => setTimeout(r, 5000));
    await core.patchNamespacedConfigMap(
      { name: 'a', namespace: ns, body: { data: { v: '2' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually('the update in the cache', async () => informer.get('a', ns)?.data?.v === '2', 3000, 50);
    expect(lines.filter((l) => l.startsWith('warn'))).toEqual([]);
  }, 60_000);
});
