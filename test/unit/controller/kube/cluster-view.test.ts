// Which helpers the leader counts as ready: the API's view, or its own last probe while the API lags.
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { ClusterView } from '../../../../src/controller/kube/cluster-view.js';
import { HELPER_COMPONENT, LABELS, MANAGED_BY_VALUE } from '../../../../src/api/constants.js';

const NS = 'ops';
const helperPod = (name: string, node: string, ready: boolean): V1Pod => ({
  metadata: {
    name,
    namespace: NS,
    labels: { [LABELS.component]: HELPER_COMPONENT, [LABELS.name]: MANAGED_BY_VALUE },
  },
  spec: { nodeName: node, containers: [{ name: 'helper' }] },
  status: { podIP: '10.0.0.9', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});
const node = (name: string): V1Node => ({
  metadata: { name },
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

function view(pods: V1Pod[]): ClusterView {
  const nodes = [node('n1')];
  return new ClusterView(
    { get: (n: string) => nodes.find((x) => x.metadata!.name === n) },
    { list: () => pods, get: (n: string) => pods.find((x) => x.metadata!.name === n) },
    NS,
  );
}

describe('ClusterView', () => {
  it("counts a helper the API shows not Ready as ready once the leader's probe found it ready", () => {
    const v = view([helperPod('h1', 'n1', false)]);
    expect(v.usableHelpers().has('n1')).toBe(false);
    expect(v.helperProbed('n1', 'h1', true)).toBe(true);
    expect(v.helpers().get('n1')?.ready).toBe(true);
    expect(v.usableHelpers().has('n1')).toBe(true);
    expect(v.helperProbed('n1', 'h1', true)).toBe(false);
    expect(v.helperProbed('n1', 'h1', false)).toBe(true);
    expect(v.usableHelpers().has('n1')).toBe(false);
  });

  it("applies a probe only to the helper Pod it was made of (a replaced helper starts from the API's view)", () => {
    const v = view([helperPod('h2', 'n1', false)]);
    v.helperProbed('n1', 'h1', true);
    expect(v.helpers().get('n1')?.ready).toBe(false);
  });

  it("keeps a helper the API shows Ready whatever the leader's probe says", () => {
    const v = view([helperPod('h1', 'n1', true)]);
    expect(v.helperProbed('n1', 'h1', false)).toBe(false);
    expect(v.usableHelpers().has('n1')).toBe(true);
  });
});
