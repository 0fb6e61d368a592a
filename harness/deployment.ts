// The Deployments tests, demo and bench create: one replica set of Pods labelled `app: <name>`.
import type { V1Deployment, V1PodSpec } from '@kubernetes/client-node';

export function appDeployment(
  name: string,
  namespace: string,
  replicas: number,
  pod: V1PodSpec,
): V1Deployment {
  return {
    metadata: { name, namespace },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: pod },
    },
  };
}
