import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { HELPER_COMPONENT, HELPER_HEALTH_PORT, LABELS, MANAGED_BY_VALUE } from '../../api/constants.js';
import type { Informer } from './informer.js';
import { httpURL } from '../../runtime/ip-address.js';

export const DEFAULT_HELPER_PORT = 9500;

export function isNodeReady(node: V1Node | undefined): boolean {
  return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

export function isHelperPod(pod: V1Pod, operatorNamespace: string): boolean {
  const labels = pod.metadata?.labels ?? {};
  return (
    pod.metadata?.namespace === operatorNamespace &&
    labels[LABELS.component] === HELPER_COMPONENT &&
    labels[LABELS.name] === MANAGED_BY_VALUE
  );
}

export interface HelperEndpoint {
  node: string;
  pod: string;
  /** `https://<podIP>:<api port>`: the helper API. */
  url: string;
  /** `http://<podIP>:<health port>`: its /healthz and /readyz, plain HTTP. */
  healthUrl: string;
  /** Ready in the API, or (in a ClusterView) ready to the leader's own probe. */
  ready: boolean;
}

/** The helper serving each node: its Pod's IP, API and health ports (container ports `api` and `health`). */
export function helperEndpoint(pod: V1Pod): HelperEndpoint | undefined {
  const node = pod.spec?.nodeName;
  const ip = pod.status?.podIP;
  if (!node || !ip || pod.metadata?.deletionTimestamp) return undefined;
  const ports = pod.spec?.containers.flatMap((c) => c.ports ?? []) ?? [];
  const port = ports.find((p) => p.name === 'api')?.containerPort ?? DEFAULT_HELPER_PORT;
  const health = ports.find((p) => p.name === 'health')?.containerPort ?? HELPER_HEALTH_PORT;
  return {
    node,
    pod: pod.metadata?.name ?? '',
    url: httpURL('https', ip, port),
    healthUrl: httpURL('http', ip, health),
    ready: isPodReady(pod),
  };
}

/** Nodes and helpers as the informers see them now. */
export class ClusterView {
  /**
   * The helper Pod of each node whose /readyz last answered the leader's own probe: after a node heals, the
   * API shows its helper not Ready until the kubelet syncs its status again (10-20 s), while it works.
   */
  private answering = new Map<string, string>();

  constructor(
    private readonly nodes: Pick<Informer<V1Node>, 'get'>,
    private readonly pods: Pick<Informer<V1Pod>, 'list' | 'get'>,
    private readonly operatorNamespace: string,
    /** Whether the operator fenced the node (it concluded the node failed): no target for copies. */
    private readonly fenced: (node: string) => boolean = () => false,
  ) {}

  nodeReady(name: string): boolean {
    return this.nodeReadyIgnoringFence(name) && !this.fenced(name);
  }

  /** Ready as Kubernetes reports it, whether or not the operator fenced it. */
  nodeReadyIgnoringFence(name: string): boolean {
    return isNodeReady(this.nodes.get(name));
  }

  helpers(): Map<string, HelperEndpoint> {
    const out = new Map<string, HelperEndpoint>();
    for (const pod of this.pods.list(this.operatorNamespace)) {
      if (!isHelperPod(pod, this.operatorNamespace)) continue;
      const ep = this.endpoint(pod);
      if (ep && (!out.has(ep.node) || ep.ready)) out.set(ep.node, ep);
    }
    return out;
  }

  /** A helper Pod's endpoint, ready if the API or the leader's last probe of it says so. */
  endpoint(pod: V1Pod): HelperEndpoint | undefined {
    const ep = helperEndpoint(pod);
    if (ep && !ep.ready && this.answering.get(ep.node) === ep.pod) ep.ready = true;
    return ep;
  }

  /** What the leader's probe of a node's helper Pod saw; true if that changes whether it counts as ready. */
  helperProbed(node: string, pod: string, ready: boolean): boolean {
    const was = this.answering.get(node) === pod;
    if (ready) this.answering.set(node, pod);
    else if (was) this.answering.delete(node);
    return was !== ready;
  }

  /** A helper Pod as the API shows it: whether its silence can mean anything depends on its state. */
  helperPod(name: string): V1Pod | undefined {
    return this.pods.get(name, this.operatorNamespace);
  }

  /** Nodes that can take a copy now: Ready, not fenced, with a Ready helper. */
  usableHelpers(): Map<string, HelperEndpoint> {
    const out = new Map<string, HelperEndpoint>();
    for (const [node, ep] of this.helpers()) if (ep.ready && this.nodeReady(node)) out.set(node, ep);
    return out;
  }
}
