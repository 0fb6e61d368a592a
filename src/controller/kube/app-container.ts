import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';

/** How the app container was found; `first` is a guess the user should confirm with `spec.container`. */
export type AppContainerChoice = 'spec' | 'port' | 'first' | 'none';

export interface AppContainer {
  /** Its name; undefined only for a Pod without containers. */
  name: string | undefined;
  choice: AppContainerChoice;
  /** Set when `spec.container` names no container of the Pod (the choice then falls back). */
  missing?: string;
}

/** What the choice needs from a policy: the state port and the optional explicit container name. */
export interface AppContainerSpec {
  port: number;
  container?: string;
}

/**
 * The container whose memory holds the state: the one `spec.container` names, else the one whose `ports`
 * list the state port, else the first. Only this container's restarts lose the state. A sidecar (a mesh
 * proxy, a log shipper, a native sidecar in `initContainers`) restarting must never push an old checkpoint
 * into the live app, which would send its state back in time.
 *
 * An explicit name wins over the port because a Pod may list the port on more than one container (a proxy
 * that fronts the app) or on none (ports are informational in Kubernetes).
 */
export function appContainer(pod: V1Pod, spec: AppContainerSpec): AppContainer {
  const containers = pod.spec?.containers ?? [];
  let missing: string | undefined;
  if (spec.container !== undefined) {
    if (containers.some((c) => c.name === spec.container)) return { name: spec.container, choice: 'spec' };
    missing = spec.container;
  }
  const serving = containers.find((c) => (c.ports ?? []).some((p) => p.containerPort === spec.port));
  const withMissing = missing !== undefined ? { missing } : {};
  if (serving) return { name: serving.name, choice: 'port', ...withMissing };
  if (containers[0]) return { name: containers[0].name, choice: 'first', ...withMissing };
  return { name: undefined, choice: 'none', ...withMissing };
}

/** The app container's status as the kubelet reports it (none before its first report). */
export function appStatus(pod: V1Pod, spec: AppContainerSpec): V1ContainerStatus | undefined {
  const { name } = appContainer(pod, spec);
  return (pod.status?.containerStatuses ?? []).find((c) => c.name === name);
}

/** Restarts of the app container alone: other containers' restarts leave the state where it is. */
export function appRestartCount(pod: V1Pod, spec: AppContainerSpec): number {
  return appStatus(pod, spec)?.restartCount ?? 0;
}

/** The kubelet reports the app container started (its startupProbe, if any, passed) and running. */
export function appStarted(pod: V1Pod, spec: AppContainerSpec): boolean {
  const s = appStatus(pod, spec);
  return s?.started === true && !!s.state?.running;
}

/** When the app container's current process started (ms since the epoch; 0 if not running). */
export function appStartedAt(pod: V1Pod, spec: AppContainerSpec): number {
  const at = appStatus(pod, spec)?.state?.running?.startedAt;
  return at ? new Date(at).getTime() : 0;
}

/**
 * Why the choice deserves a Warning, or undefined. One container needs no name: it is the app whatever the
 * port says. With several, a guess (the first) or a name that matches nothing is worth telling the user.
 */
export function appContainerWarning(pod: V1Pod, spec: AppContainerSpec): string | undefined {
  const c = appContainer(pod, spec);
  const names = (pod.spec?.containers ?? []).map((x) => x.name);
  if (c.missing !== undefined)
    return `spec.container ${JSON.stringify(c.missing)} names no container of Pod ${pod.metadata?.name} (it has ${names.join(', ')}); using ${c.name ?? 'none'}, ${c.choice === 'port' ? 'which lists the state port' : 'the first container'}`;
  if (c.choice === 'first' && names.length > 1)
    return `no container of Pod ${pod.metadata?.name} lists the state port ${spec.port} in its ports; taking the first, ${c.name}, as the app container: only its restarts are restored. Set spec.container (or list the port) to choose another`;
  return undefined;
}
