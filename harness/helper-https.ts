// Calls to a helper's HTTPS API from outside the cluster (tests, bench): verified against the operator's CA,
// which the controller publishes in a ConfigMap, exactly as the controller and the helpers verify each other.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Agent, fetch } from 'undici';
import { CA_CONFIGMAP_KEY, CA_CONFIGMAP_NAME, OPERATOR_NAMESPACE } from '../src/api/index.js';

const agents = new Map<string, Agent>();

/** The helper CA's certificate (PEM) as published by the controller. */
export async function helperCa(kc: KubeConfig): Promise<string> {
  const cm = await kc
    .makeApiClient(CoreV1Api)
    .readNamespacedConfigMap({ name: CA_CONFIGMAP_NAME, namespace: OPERATOR_NAMESPACE });
  const pem = cm.data?.[CA_CONFIGMAP_KEY];
  if (!pem)
    throw new Error(`ConfigMap ${OPERATOR_NAMESPACE}/${CA_CONFIGMAP_NAME} has no ${CA_CONFIGMAP_KEY}`);
  return pem;
}

/** `fetch` to a helper (`https://<podIP>:9500/...`), trusting only the operator's CA. */
export async function helperFetch(
  kc: KubeConfig,
  url: string,
  init: NonNullable<Parameters<typeof fetch>[1]> = {},
): ReturnType<typeof fetch> {
  const ca = await helperCa(kc);
  let agent = agents.get(ca);
  if (!agent) {
    agent = new Agent({ connect: { ca } });
    agents.set(ca, agent);
  }
  return fetch(url, { ...init, dispatcher: agent });
}
