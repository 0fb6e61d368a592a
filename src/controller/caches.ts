import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type AnnotatedKind, type IPullStatePolicy } from '../api/index.js';
import type { Logger } from '../runtime/logger.js';
import { Informer } from './kube/informer.js';
import type { Workload } from './policies/workload-reconciler.js';

/**
 * The controller's caches of the API: every component reads these, none lists or gets from the API server
 * itself. Started before the election (a standby keeps them warm), stopped with the term.
 */
export class Caches {
  readonly pods: Informer<V1Pod>;
  readonly nodes: Informer<V1Node>;
  readonly policies: Informer<IPullStatePolicy>;
  readonly workloads: Record<AnnotatedKind, Informer<Workload>>;

  constructor(kc: KubeConfig, log: Logger) {
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const informer = <T extends KubernetesObject>(
      name: string,
      path: string,
      list: () => Promise<KubernetesListObject<T>>,
    ) => new Informer<T>({ name, kc, path, log, list });
    this.pods = informer<V1Pod>('pods', '/api/v1/pods', () => core.listPodForAllNamespaces());
    this.nodes = informer<V1Node>('nodes', '/api/v1/nodes', () => core.listNode());
    this.policies = informer<IPullStatePolicy>(PLURAL, `/apis/${GROUP}/${VERSION}/${PLURAL}`, () =>
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }),
    );
    this.workloads = {
      Deployment: informer<Workload>('deployments', '/apis/apps/v1/deployments', () =>
        apps.listDeploymentForAllNamespaces(),
      ),
      StatefulSet: informer<Workload>('statefulsets', '/apis/apps/v1/statefulsets', () =>
        apps.listStatefulSetForAllNamespaces(),
      ),
    };
  }

  async start(): Promise<void> {
    await Promise.all(this.all().map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((i) => i.stop()));
  }

  /** The Pod as the cache holds it, if it still exists with this UID. */
  readonly currentPod = (namespace: string, name: string, uid: string): V1Pod | undefined => {
    const pod = this.pods.get(name, namespace);
    return pod?.metadata?.uid === uid ? pod : undefined;
  };

  /** The Pod as the cache holds it, if it still exists with this UID and is not terminating. */
  readonly livePod = (namespace: string, name: string, uid: string): V1Pod | undefined => {
    const pod = this.currentPod(namespace, name, uid);
    return pod && !pod.metadata?.deletionTimestamp ? pod : undefined;
  };

  /** The node of every scheduled Pod, by UID. */
  readonly podNodes = (): Map<string, string> =>
    new Map(
      this.pods
        .list()
        .filter((p) => p.spec?.nodeName)
        .map((p) => [p.metadata!.uid!, p.spec!.nodeName!]),
    );

  private all(): { start(): Promise<void>; stop(): Promise<void> }[] {
    return [this.nodes, this.pods, this.policies, this.workloads.Deployment, this.workloads.StatefulSet];
  }
}
