// Pure: the configuration files of one real node (containerd, CNI, kubelet, kube-proxy). Every node runs in
// its own network namespace and its own mount namespace, where /run is a private tmpfs and /var/lib and
// /var/log are the node's own directories, so most paths can stay at their defaults.
import { CLUSTER_CIDR } from './addressing.js';

export interface NodeConfigInput {
  name: string;
  ip: string;
  podCidr: string;
  /** Host directory of the node (absolute). */
  dir: string;
  cgroupRoot: string;
  controlPlane: boolean;
  pauseImage: string;
  runtimeBinary: string;
  cniBinDir: string;
  kubeconfig: string;
  /** CA of the client certificate the API server presents for logs, exec, attach and port-forward. */
  kubeletClientCa: string;
}

export function containerdConfig(n: NodeConfigInput): string {
  return `# containerd of node ${n.name}; /run, /var/lib and /var/log are the node's own (private mount namespace).
version = 4
root = '/var/lib/containerd'
state = '/run/containerd'
disabled_plugins = ['io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.blockfile', 'io.containerd.snapshotter.v1.erofs', 'io.containerd.snapshotter.v1.btrfs']

[grpc]
  address = '/run/containerd/containerd.sock'

[ttrpc]
  address = '/run/containerd/containerd.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '${n.pauseImage}'
    [plugins.'io.containerd.cri.v1.images'.registry]
      # Every registry resolves to a closed local port: nothing is pulled from outside this machine, and an
      # unknown image fails with the kubelet's real pull error.
      config_path = '${n.dir}/registry'
  [plugins.'io.containerd.cri.v1.runtime']
    cdi_spec_dirs = []
    # This machine kind denies raising oom_score_adj even to root (no CAP_SYS_RESOURCE).
    restrict_oom_score_adj = true
    # containerd's default (1s) asks every container's shim for cgroup stats each second, for CPU rates the
    # kubelet reads every 10 s: with 100 Pods that alone took half a core of this 2-core machine.
    stats_collect_period = '10s'
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '${n.runtimeBinary}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['${n.cniBinDir}']
      conf_dir = '${n.dir}/cni'
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
  [plugins.'io.containerd.internal.v1.opt']
    path = '/var/lib/containerd-opt'
  [plugins.'io.containerd.nri.v1.nri']
    # kube-network-policies learns a new Pod's IP from NRI before the API has it (kubernetes#85966), so the
    # first packets of a Pod that starts and connects at once are judged as that Pod's.
    disable = false
    socket_path = '/run/nri/nri.sock'
`;
}

/** containerd's hosts.toml for every registry: a closed port on the node's own loopback. */
export function registryHostsToml(): string {
  return `# No registry is reachable from the local cluster; images are imported into every node instead.
server = "http://127.0.0.1:1"
`;
}

export function cniConfList(n: NodeConfigInput): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'localcluster',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: n.podCidr }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: '/var/lib/cni/networks',
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/** Differences from a default kubelet, each with its reason (docs/local-cluster.md lists them too). */
export function kubeletConfig(n: NodeConfigInput): string {
  const taints = n.controlPlane
    ? `registerWithTaints:
  - key: node-role.kubernetes.io/control-plane
    effect: NoSchedule
`
    : '';
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine kind runs cgroup v1 (hybrid); Kubernetes 1.35+ refuses it unless told not to.
failCgroupV1: false
cgroupDriver: cgroupfs
# Each node's Pods live under their own cgroup root, so nodes never see each other's containers.
cgroupRoot: /${n.cgroupRoot}
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: ${n.ip}
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${n.kubeletClientCa}}
authorization:
  mode: Webhook
# No cluster DNS runs here; Pods get no resolv.conf entries from the host.
resolvConf: ""
# A node lease of 8 s (renewed every 2 s) instead of 40 s (renewed every 10 s): the controller manager runs
# with an 8 s node-monitor grace period so a lost node shows within seconds, and a 10 s renewal would flap.
nodeLeaseDurationSeconds: 8
nodeStatusUpdateFrequency: 1s
# The nodes share one disk with everything else on the machine: never evict or collect images for disk use.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
${taints}`;
}

export function kubeProxyConfig(n: NodeConfigInput): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: ${n.kubeconfig}}
hostnameOverride: ${n.name}
clusterCIDR: ${CLUSTER_CIDR}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# A Service reached from a Pod on the endpoint's own node is answered over the node bridge; masquerading
# makes the reply come back through kube-proxy's NAT without br_netfilter.
masqueradeAll: true
# Zero: kube-proxy writes no host-wide conntrack sysctls.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`;
}
