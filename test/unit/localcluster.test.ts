import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { clusterNodeNames, nodeIp, nodeNames, podCidr } from '../../tools/localcluster/src/addressing.js';
import { missingPackages } from '../../tools/localcluster/src/host-packages.js';
import {
  appImageConfigs,
  dockerfileInstruction,
  imageName,
  referencedImages,
} from '../../tools/localcluster/src/images.js';
import { criLogText } from '../../tools/localcluster/src/node.js';
import {
  cniConfList,
  containerdConfig,
  kubeProxyConfig,
  kubeletConfig,
  type NodeConfigInput,
} from '../../tools/localcluster/src/node-config.js';
import { runsFrom } from '../../tools/localcluster/src/processes.js';
import { microTime } from '../../src/kube/micro-time.js';
import { COUNT_APP_IMAGE, OPERATOR_IMAGE } from '../../harness/images.js';

const run = promisify(execFile);

describe('addressing', () => {
  it('gives each node an IP on the host bridge and its own /24 Pod network', () => {
    expect(nodeIp(0)).toBe('10.244.0.10');
    expect(nodeIp(2)).toBe('10.244.0.12');
    expect(podCidr(0)).toBe('10.244.1.0/24');
    expect(podCidr(3)).toBe('10.244.4.0/24');
    expect(() => podCidr(201)).toThrow(/node index 201 out of range 0..200/);
  });

  it('names host objects with one prefix and keeps link names within 15 characters', () => {
    const names = nodeNames(200, 'worker-200');
    expect(names.netns).toBe('psop-worker-200');
    expect(names.cgroup).toBe('psop-worker-200');
    expect(names.link.length).toBeLessThanOrEqual(15);
    expect(clusterNodeNames(2)).toEqual(['control-plane', 'worker-1', 'worker-2']);
  });
});

describe('node configuration', () => {
  const input: NodeConfigInput = {
    name: 'worker-1',
    ip: '10.244.0.11',
    podCidr: '10.244.2.0/24',
    dir: '/x/nodes/worker-1',
    cgroupRoot: 'psop-worker-1',
    controlPlane: false,
    pauseImage: 'docker.io/localcluster/pause:1',
    runtimeBinary: '/cache/bin/runc-shim',
    cniBinDir: '/usr/lib/cni',
    kubeconfig: '/x/nodes/worker-1/kubeconfig',
    kubeletClientCa: '/x/pki/kubelet-client-ca.crt',
  };

  it('points containerd at the runc shim, the pinned pause image, the node CNI dir and a closed registry', () => {
    const toml = containerdConfig(input);
    expect(toml).toContain("BinaryName = '/cache/bin/runc-shim'");
    expect(toml).toContain("sandbox = 'docker.io/localcluster/pause:1'");
    expect(toml).toContain("conf_dir = '/x/nodes/worker-1/cni'");
    expect(toml).toContain("config_path = '/x/nodes/worker-1/registry'");
    expect(toml).toContain('restrict_oom_score_adj = true');
  });

  it("polls container stats every 10 s, in the CRI runtime plugin's own table", () => {
    const toml = containerdConfig(input);
    const table = toml.split("[plugins.'io.containerd.cri.v1.runtime']")[1]!.split('\n    [')[0]!;
    expect(table).toContain("stats_collect_period = '10s'");
  });

  it('gives the CNI bridge the node podCIDR', () => {
    const conf = JSON.parse(cniConfList(input)) as {
      plugins: { ipam?: { ranges: { subnet: string }[][] } }[];
    };
    expect(conf.plugins[0]!.ipam!.ranges[0]![0]!.subnet).toBe('10.244.2.0/24');
  });

  it('runs the kubelet under its own cgroup root with the documented non-defaults; taints only the control plane', () => {
    const worker = parse(kubeletConfig(input)) as Record<string, unknown>;
    expect(worker).toMatchObject({
      cgroupRoot: '/psop-worker-1',
      failCgroupV1: false,
      nodeLeaseDurationSeconds: 8,
      address: '10.244.0.11',
    });
    // The restart back-off stays the kubelet's default (10 s doubling to 5 min): what users get.
    expect(worker).not.toHaveProperty('crashLoopBackOff');
    // The API server's client certificate for logs, exec and port-forward (anonymous stays off).
    expect(worker.authentication).toMatchObject({
      anonymous: { enabled: false },
      x509: { clientCAFile: '/x/pki/kubelet-client-ca.crt' },
    });
    expect(worker).not.toHaveProperty('registerWithTaints');
    const cp = parse(kubeletConfig({ ...input, controlPlane: true })) as Record<string, unknown>;
    expect(cp.registerWithTaints).toEqual([
      { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' },
    ]);
  });

  it('runs kube-proxy in nftables mode for the node without host-wide sysctls', () => {
    const proxy = parse(kubeProxyConfig(input)) as Record<string, unknown>;
    expect(proxy).toMatchObject({
      mode: 'nftables',
      hostnameOverride: 'worker-1',
      clusterCIDR: '10.244.0.0/16',
    });
    expect(proxy.conntrack).toMatchObject({ maxPerCore: 0, min: 0 });
  });
});

describe('host packages', () => {
  it('lists the Debian packages whose files are missing', () => {
    expect(missingPackages(() => true)).toEqual([]);
    expect(missingPackages((f) => f !== '/usr/sbin/runc' && f !== '/usr/sbin/nft')).toEqual([
      'runc',
      'nftables',
    ]);
  });
});

describe('images', () => {
  it('strips tags and digests from image names', () => {
    expect(imageName('ghcr.io/x/app:1.2')).toBe('ghcr.io/x/app');
    expect(imageName('localhost:5000/app')).toBe('localhost:5000/app');
    expect(imageName('app@sha256:abc')).toBe('app');
  });

  it("reads a stage's ENTRYPOINT and CMD from a Dockerfile", () => {
    const dockerfile =
      'FROM a AS one\nENTRYPOINT ["/x", "y"]\nCMD ["--help"]\nFROM b AS two\nENTRYPOINT ["/z"]\n';
    expect(dockerfileInstruction(dockerfile, 'one', 'ENTRYPOINT')).toEqual(['/x', 'y']);
    expect(dockerfileInstruction(dockerfile, 'one', 'CMD')).toEqual(['--help']);
    expect(dockerfileInstruction(dockerfile, 'two', 'CMD')).toBeUndefined();
    expect(() => dockerfileInstruction(dockerfile, 'three', 'CMD')).toThrow(/no stage three/);
  });

  it('assembles every image the install and the examples name, with the Dockerfile entry points', () => {
    const refs = referencedImages();
    expect(refs).toEqual(expect.arrayContaining([OPERATOR_IMAGE, COUNT_APP_IMAGE]));
    const configs = appImageConfigs();
    expect(configs.map((c) => c.ref).sort()).toEqual(refs.filter((r) => r.startsWith('ghcr.io/')).sort());
    const operator = configs.find((c) => c.ref.includes('pull-state-operator'))!;
    expect(operator.entrypoint).toEqual(['/nodejs/bin/node', 'dist/src/main.js']);
    expect(operator.user).toBe('65532:65532');
  });
});

describe('pod logs', () => {
  it('joins CRI log lines, partial ones included, into the program output', () => {
    const raw =
      '2026-11-24T12:00:00.1Z stdout F hello\n2026-11-24T12:00:00.2Z stderr P par\n2026-11-24T12:00:00.3Z stderr F tial\n';
    expect(criLogText(raw)).toBe('hello\npartial\n');
  });
});

describe('microTime', () => {
  it('has exactly six fractional digits, as the API server requires for MicroTime', () => {
    expect(microTime(new Date('2026-11-23T10:00:00.123Z'))).toBe('2026-11-23T10:00:00.123000Z');
  });
});

describe('cluster CLI', () => {
  const cli = (...args: string[]) =>
    run('npx', ['tsx', 'tools/localcluster/src/cli.ts', ...args]).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        out: e.stdout,
        err: e.stderr,
      }),
    );

  it('prints help for every command', async () => {
    for (const command of ['', 'up', 'down', 'status', 'images', 'logs', 'fault']) {
      const r = await cli(...(command ? [command] : []), '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^Usage: npm run cluster -- /);
    }
  });

  it.each([
    [['up', '--nodes', 'abc'], /--nodes must be a whole number from 1 to 20, got "abc"/],
    [['up', '--nodes', '0'], /--nodes must be a whole number from 1 to 20, got "0"/],
    [['up', '--bogus'], /unknown option --bogus; allowed: --nodes/],
    [['launch'], /unknown command "launch"; commands: up, build, down, status, images, logs, fault/],
    [['fault', 'explode', 'x'], /fault needs one of crash, partition, heal, stop, start/],
  ])('rejects %j with a clear message and exit code 2', async (args, message) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});

describe('the processes `down` stops', () => {
  const bin = '/cache/pull-state-operator/localcluster-v1/bin';
  it('are programs of the cluster binary directories, not builds writing next to them', () => {
    expect(runsFrom(`${bin}/kubelet --config /x/kubelet.yaml`, [bin])).toBe(true);
    expect(runsFrom(`containerd --config /x --root ${bin}/y`, [bin])).toBe(true);
    // `npm test` builds in the background while `up` runs `down` first: the build must survive it.
    expect(runsFrom(`go build -v -trimpath -o ${bin}.partial/ ./cmd/...`, [bin])).toBe(false);
    expect(runsFrom('go build -o /cache/argocd-v3/staging/bin/ .', ['/cache/argocd-v3/bin'])).toBe(false);
  });
});
