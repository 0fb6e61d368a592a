// Which container's restarts lose the state: sidecars (plain and native) never count.
import type { V1Container, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import {
  appContainer,
  appContainerWarning,
  appRestartCount,
  appStarted,
  appStartedAt,
} from '../../../../src/controller/kube/app-container.js';

const status = (name: string, restartCount: number, started = true): V1ContainerStatus => ({
  name,
  image: 'x',
  imageID: '',
  ready: started,
  restartCount,
  started,
  state: started ? { running: { startedAt: new Date(1_000_000 + restartCount * 1000) } } : { waiting: {} },
});

/** A log shipper first, the app (listing port 8080) second, and a native sidecar among the init containers. */
function pod(o: { proxy?: number; app?: number; sidecar?: number; appPorts?: boolean } = {}): V1Pod {
  const containers: V1Container[] = [
    { name: 'log-shipper' },
    { name: 'app', ...(o.appPorts === false ? {} : { ports: [{ containerPort: 8080 }] }) },
  ];
  return {
    metadata: { name: 'p' },
    spec: { containers, initContainers: [{ name: 'mesh', restartPolicy: 'Always' }] },
    status: {
      containerStatuses: [status('log-shipper', o.proxy ?? 0), status('app', o.app ?? 0)],
      initContainerStatuses: [status('mesh', o.sidecar ?? 0)],
    },
  };
}

describe('appContainer', () => {
  it('is the container that lists the state port, even when it is not the first', () => {
    expect(appContainer(pod(), { port: 8080 })).toEqual({ name: 'app', choice: 'port' });
  });

  it('is the one spec.container names, over the port', () => {
    expect(appContainer(pod(), { port: 8080, container: 'log-shipper' })).toEqual({
      name: 'log-shipper',
      choice: 'spec',
    });
  });

  it('falls back (port, then first) when spec.container names nothing, and says so', () => {
    expect(appContainer(pod(), { port: 8080, container: 'gone' })).toEqual({
      name: 'app',
      choice: 'port',
      missing: 'gone',
    });
    expect(appContainerWarning(pod(), { port: 8080, container: 'gone' })).toMatch(
      /spec.container "gone" names no container of Pod p \(it has log-shipper, app\); using app/,
    );
  });

  it('takes the first container when no port says, with a Warning only if there are several', () => {
    const unlisted = pod({ appPorts: false });
    expect(appContainer(unlisted, { port: 8080 })).toEqual({ name: 'log-shipper', choice: 'first' });
    expect(appContainerWarning(unlisted, { port: 8080 })).toMatch(/taking the first, log-shipper/);
    const single: V1Pod = { metadata: { name: 's' }, spec: { containers: [{ name: 'only' }] } };
    expect(appContainerWarning(single, { port: 8080 })).toBeUndefined();
    expect(appContainerWarning(pod(), { port: 8080 })).toBeUndefined();
  });

  it('has none in a Pod without containers', () => {
    expect(appContainer({ spec: { containers: [] } }, { port: 1 })).toEqual({
      name: undefined,
      choice: 'none',
    });
  });
});

describe('appRestartCount', () => {
  it('counts the app container alone: plain and native sidecar restarts do not count', () => {
    expect(appRestartCount(pod({ proxy: 3, sidecar: 5 }), { port: 8080 })).toBe(0);
    expect(appRestartCount(pod({ proxy: 3, app: 2, sidecar: 5 }), { port: 8080 })).toBe(2);
  });

  it('is 0 before the kubelet reports the container', () => {
    expect(appRestartCount({ spec: { containers: [{ name: 'a' }] } }, { port: 8080 })).toBe(0);
  });
});

describe('appStarted / appStartedAt', () => {
  it('looks at the app container only: a sidecar still starting does not hold it back', () => {
    const p = pod({ app: 1 });
    p.status!.containerStatuses![0] = status('log-shipper', 0, false);
    expect(appStarted(p, { port: 8080 })).toBe(true);
    expect(appStartedAt(p, { port: 8080 })).toBe(1_001_000);
    p.status!.containerStatuses![1] = status('app', 1, false);
    expect(appStarted(p, { port: 8080 })).toBe(false);
    expect(appStartedAt(p, { port: 8080 })).toBe(0);
  });
});
