import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  freeSlot,
  netnsName,
  nodeIp,
  podIp,
  podMac,
  vethNames,
} from '../../tools/localcluster/src/addressing.js';
import {
  expand,
  imageName,
  resolveCommand,
  resolveEnv,
  restartDelayMs,
  shouldRestart,
} from '../../tools/localcluster/src/container-spec.js';
import { microTime } from '../../src/kube/micro-time.js';

const run = promisify(execFile);
const images = { 'ghcr.io/x/app': { command: ['node', 'dist/app.js'] } };

describe('addressing', () => {
  it('gives each node its own /24 and keeps interface names within 15 characters', () => {
    expect(podIp(0, 1)).toBe('10.244.1.1');
    expect(podIp(3, 254)).toBe('10.244.4.254');
    expect(nodeIp(2)).toBe('10.244.0.12');
    expect(vethNames('10.244.251.254').host.length).toBeLessThanOrEqual(15);
    expect(netnsName('10.244.1.2')).toBe('psop-10-244-1-2');
    expect(() => podIp(0, 255)).toThrow(/slot 255 out of range 1..254/);
  });

  it('derives a locally administered MAC from the Pod IP, so a reused IP keeps its MAC', () => {
    expect(podMac('10.244.2.3')).toBe('0a:58:0a:f4:02:03');
    expect(podMac('10.244.251.254')).toBe('0a:58:0a:f4:fb:fe');
  });

  it('finds the lowest free slot and reports a full node', () => {
    expect(freeSlot(new Set([1, 2, 4]))).toBe(3);
    expect(freeSlot(new Set(Array.from({ length: 254 }, (_, i) => i + 1)))).toBeUndefined();
  });
});

describe('container spec', () => {
  it('strips tags and digests from image names', () => {
    expect(imageName('ghcr.io/x/app:1.2')).toBe('ghcr.io/x/app');
    expect(imageName('localhost:5000/app')).toBe('localhost:5000/app');
    expect(imageName('app@sha256:abc')).toBe('app');
  });

  it('follows Docker semantics for command and args', () => {
    const env = { PORT: '9' };
    expect(
      resolveCommand({ name: 'c', image: 'ghcr.io/x/app:1', args: ['--port=$(PORT)'] }, images, env),
    ).toEqual({
      ok: true,
      argv: ['node', 'dist/app.js', '--port=9'],
    });
    expect(
      resolveCommand({ name: 'c', image: 'ghcr.io/x/app', command: ['sh'], args: ['-c', 'x'] }, images, env),
    ).toEqual({
      ok: true,
      argv: ['sh', '-c', 'x'],
    });
    expect(
      resolveCommand({ name: 'c', image: 'localcluster/exec', command: ['sleep', '1'] }, images, env),
    ).toEqual({
      ok: true,
      argv: ['sleep', '1'],
    });
  });

  it('explains unknown images and exec without a command', () => {
    expect(resolveCommand({ name: 'c', image: 'nginx:1' }, images, {})).toEqual({
      ok: false,
      reason: 'ErrImagePull',
      message:
        'image nginx:1 is not known to the local cluster; known images: localcluster/exec, ghcr.io/x/app',
    });
    expect(resolveCommand({ name: 'c', image: 'localcluster/exec' }, images, {})).toMatchObject({
      ok: false,
      reason: 'CreateContainerConfigError',
    });
  });

  it('expands $(VAR) but not $$(VAR) or unknown names', () => {
    expect(expand('$(A)-$$(A)-$(B)', { A: 'x' })).toBe('x-$(A)-$(B)');
  });

  it('resolves downward-API fieldRefs and rejects unsupported sources by name', () => {
    const pod = { metadata: { name: 'p', namespace: 'n' }, spec: { containers: [] } };
    const facts = { podIP: '10.244.1.1', hostIP: '10.244.0.11', nodeName: 'worker-1' };
    const container = {
      name: 'c',
      env: [
        { name: 'A', value: 'a' },
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      ],
    };
    expect(resolveEnv(container, pod, facts)).toEqual({
      ok: true,
      env: { A: 'a', IP: '10.244.1.1', NODE: 'worker-1' },
    });
    const bad = {
      name: 'c',
      env: [{ name: 'L', valueFrom: { fieldRef: { fieldPath: 'metadata.labels' } } }],
    };
    expect(resolveEnv(bad, pod, facts)).toMatchObject({
      ok: false,
      message: expect.stringMatching(
        /env L: fieldRef metadata.labels is not supported; supported: metadata.name/,
      ),
    });
  });

  it('backs off restarts from 1 s to 60 s and honours restartPolicy', () => {
    expect([1, 2, 3, 7, 20].map(restartDelayMs)).toEqual([1000, 2000, 4000, 60_000, 60_000]);
    expect(shouldRestart('Always', 0)).toBe(true);
    expect(shouldRestart('OnFailure', 0)).toBe(false);
    expect(shouldRestart('OnFailure', 137)).toBe(true);
    expect(shouldRestart('Never', 1)).toBe(false);
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
    for (const command of ['', 'up', 'down', 'status', 'logs', 'fault']) {
      const r = await cli(...(command ? [command] : []), '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^Usage: npm run cluster -- /);
    }
  });

  it.each([
    [['up', '--nodes', 'abc'], /--nodes must be a whole number from 1 to 20, got "abc"/],
    [['up', '--nodes', '0'], /--nodes must be a whole number from 1 to 20, got "0"/],
    [['up', '--bogus'], /unknown option --bogus; allowed: --nodes/],
    [['launch'], /unknown command "launch"; commands: up, down, status, logs, fault/],
    [['fault', 'explode', 'x'], /fault needs one of crash, partition, heal, stop/],
  ])('rejects %j with a clear message and exit code 2', async (args, message) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});
