// The operator's API requests share keep-alive connections to the real API server (client-node 1.x opens a
// new TLS connection for each request), and a token change still reaches the server.
import { Agent } from 'node:https';
import { jest } from '@jest/globals';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../src/kube/pooled-kube-config.js';

const KUBECONFIG = '.local/kubeconfig';

/** TLS connections opened for five API requests in a row. */
async function connectionsFor(kc: KubeConfig): Promise<number> {
  const spy = jest.spyOn(Agent.prototype, 'createConnection');
  try {
    const api = kc.makeApiClient(CoreV1Api);
    for (let i = 0; i < 5; i++) await api.listNamespace({ limit: 1 });
    return spy.mock.calls.length;
  } finally {
    spy.mockRestore();
  }
}

describe('PooledKubeConfig against the API server', () => {
  it('opens one connection for five requests, where client-node alone opens five', async () => {
    const plain = new KubeConfig();
    plain.loadFromFile(KUBECONFIG);
    const pooled = new PooledKubeConfig();
    pooled.loadFromFile(KUBECONFIG);
    expect(await connectionsFor(plain)).toBe(5);
    expect(await connectionsFor(pooled)).toBe(1);
  });

  it('sends the current token on a reused connection: a wrong one is refused, the right one works again', async () => {
    const kc = new PooledKubeConfig();
    kc.loadFromFile(KUBECONFIG);
    const api = kc.makeApiClient(CoreV1Api);
    await api.listNamespace({ limit: 1 });
    const user = kc.getCurrentUser() as { token?: string };
    const good = user.token;
    user.token = 'not-a-valid-token';
    await expect(api.listNamespace({ limit: 1 })).rejects.toMatchObject({ code: 401 });
    user.token = good;
    await expect(api.listNamespace({ limit: 1 })).resolves.toBeDefined();
  });
});
