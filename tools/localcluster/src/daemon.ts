// The long-running side of `npm run cluster -- up`: owns the control plane processes and the simulated
// kubelets, and takes fault and status requests from the CLI over a loopback HTTP port.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { BRIDGE_IP, nodeIp } from './addressing.js';
import { startControlPlane, stopControlPlane, kubeconfigYaml, type ControlPlane } from './controlplane.js';
import { Kubelet } from './kubelet.js';
import { addNodeAddress, cleanupNetwork, createBridge } from './network.js';
import { clusterDir, daemonStatePath, kubeconfigPath, repoRoot } from './paths.js';
import { PidFile } from './processes.js';
import type { ImageMap } from './container-spec.js';

export interface DaemonOptions {
  nodes: number;
  nodeMonitorGracePeriodSeconds: number;
  tolerationSeconds: number;
}

export interface DaemonState {
  pid: number;
  port: number;
  server: string;
  kubeconfig: string;
  ready: boolean;
}

export const pidFile = new PidFile(join(clusterDir, 'pids'));

function log(line: string): void {
  console.log(`${new Date().toISOString()} ${line}`);
}

export function nodeNames(workers: number): string[] {
  return ['control-plane', ...Array.from({ length: workers }, (_, i) => `worker-${i + 1}`)];
}

async function main(options: DaemonOptions): Promise<void> {
  mkdirSync(clusterDir, { recursive: true });
  await cleanupNetwork();
  await createBridge();
  const cp: ControlPlane = await startControlPlane({
    dir: clusterDir,
    address: BRIDGE_IP,
    nodeMonitorGracePeriodSeconds: options.nodeMonitorGracePeriodSeconds,
    tolerationSeconds: options.tolerationSeconds,
    pids: pidFile,
    log,
  });
  const ca = readFileSync(cp.caFile);
  writeFileSync(kubeconfigPath, kubeconfigYaml(cp.server, ca, cp.token), { mode: 0o600 });
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const images = JSON.parse(
    readFileSync(join(repoRoot, 'tools', 'localcluster', 'images.json'), 'utf8'),
  ) as ImageMap;

  const kubelets = new Map<string, Kubelet>();
  const names = nodeNames(options.nodes);
  for (const [index, name] of names.entries()) {
    await addNodeAddress(nodeIp(index));
    const kubelet = new Kubelet({
      name,
      index,
      ip: nodeIp(index),
      controlPlane: index === 0,
      kubeconfig: kc,
      server: cp.server,
      ca,
      dir: join(clusterDir, 'nodes', name),
      images,
      onPid: (pid) => pidFile.add(pid),
      log,
    });
    kubelets.set(name, kubelet);
  }
  // The API server may need a moment before it accepts Node writes from every kubelet.
  for (const k of kubelets.values()) {
    for (let attempt = 0; ; attempt++) {
      try {
        await k.start();
        break;
      } catch (err) {
        if (attempt > 30) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
  log(`localcluster: ${names.length} nodes registered`);

  let shuttingDown = false;
  const shutdown = async () => {
    if (shuttingDown) return;
    shuttingDown = true;
    log('localcluster: shutting down');
    await Promise.all([...kubelets.values()].map((k) => k.stop().catch(() => undefined)));
    await stopControlPlane(cp);
    await cleanupNetwork();
    pidFile.killAll();
    rmSync(daemonStatePath, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
  // A dying control-plane process makes the cluster useless; say so in the log instead of hanging.
  for (const p of cp.processes) {
    void p.exited.then(
      (code) => !shuttingDown && log(`localcluster: ${p.name} exited unexpectedly (code ${code})`),
    );
  }

  const core = kc.makeApiClient(CoreV1Api);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/status') {
      const apiNodes = await core.listNode().catch(() => undefined);
      const nodes = [...kubelets.values()].map((k) => {
        const apiNode = apiNodes?.items.find((n) => n.metadata?.name === k.o.name);
        const ready = apiNode?.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
        return { name: k.o.name, ip: k.o.ip, state: k.state, ready, pods: k.podList() };
      });
      return reply(200, { server: cp.server, kubeconfig: kubeconfigPath, nodes });
    }
    if (req.method === 'POST' && url.pathname === '/fault') {
      const action = url.searchParams.get('action') ?? '';
      const target = url.searchParams.get('target') ?? '';
      if (action === 'crash') {
        const [namespace, name] = target.includes('/') ? target.split('/', 2) : ['default', target];
        for (const k of kubelets.values()) {
          const runtime = k.runtimeOf(namespace!, name!);
          if (runtime) {
            const ok = runtime.crash(url.searchParams.get('container') ?? undefined);
            return ok
              ? reply(200, { message: `killed ${namespace}/${name} on ${k.o.name}` })
              : reply(409, { message: `${namespace}/${name} has no running container to crash` });
          }
        }
        return reply(404, { message: `pod ${namespace}/${name} is not running on any node` });
      }
      const kubelet = kubelets.get(target);
      if (!kubelet) return reply(404, { message: `unknown node ${target}; nodes: ${names.join(', ')}` });
      if (action === 'partition') await kubelet.partition();
      else if (action === 'heal') await kubelet.heal();
      else if (action === 'stop') await kubelet.stop();
      else return reply(400, { message: `unknown fault ${action}; allowed: crash, partition, heal, stop` });
      return reply(200, { message: `${action} ${target}: node is now ${kubelet.state}` });
    }
    if (req.method === 'POST' && url.pathname === '/shutdown') {
      reply(200, { message: 'shutting down' });
      setImmediate(() => void shutdown());
      return;
    }
    reply(404, { message: `no such endpoint ${req.method} ${url.pathname}` });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: String(err) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const state: DaemonState = {
    pid: process.pid,
    port,
    server: cp.server,
    kubeconfig: kubeconfigPath,
    ready: true,
  };
  writeFileSync(daemonStatePath, JSON.stringify(state, null, 2));
  log(`localcluster: ready; control port ${port}`);
}

const options = JSON.parse(process.argv[2] ?? '{}') as DaemonOptions;
main(options).catch(async (err: unknown) => {
  log(`localcluster: daemon failed: ${err instanceof Error ? err.stack : String(err)}`);
  pidFile.killAll();
  await cleanupNetwork().catch(() => undefined);
  process.exit(1);
});
