import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTime, withBuildLock } from '../../tools/localcluster/src/build-lock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'build-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const quiet = () => undefined;

describe('one build of a cache directory at a time', () => {
  it('runs a second build only after the first ended, and releases the lock', async () => {
    const cache = join(dir, 'argocd');
    const steps: string[] = [];
    const build = (name: string) => async () => {
      steps.push(`${name} start`);
      await new Promise((r) => setTimeout(r, 300));
      steps.push(`${name} end`);
    };
    await Promise.all([
      withBuildLock(cache, 'x', quiet, build('a')),
      withBuildLock(cache, 'x', quiet, build('b')),
    ]);
    expect(steps).toEqual(['a start', 'a end', 'b start', 'b end']);
    expect(existsSync(`${cache}.lock`)).toBe(false);
  }, 20_000);

  it('releases the lock when the build fails', async () => {
    const cache = join(dir, 'argocd');
    await expect(
      withBuildLock(cache, 'x', quiet, async () => {
        throw new Error('go build exit 1');
      }),
    ).rejects.toThrow('go build exit 1');
    expect(existsSync(`${cache}.lock`)).toBe(false);
  });

  it('takes over the lock of a build whose process is gone', async () => {
    const cache = join(dir, 'argocd');
    // The pid of a process that has exited.
    const gone = spawnSync('true').pid;
    mkdirSync(`${cache}.lock`);
    writeFileSync(`${cache}.lock/owner`, `${gone} 12345\n`);
    expect(await withBuildLock(cache, 'x', quiet, async () => 'built')).toBe('built');
  });

  it('takes over a lock that names a pid now used by another process (a different start time)', async () => {
    const cache = join(dir, 'argocd');
    mkdirSync(`${cache}.lock`);
    writeFileSync(`${cache}.lock/owner`, `${process.pid} 1\n`);
    expect(await withBuildLock(cache, 'x', quiet, async () => 'built')).toBe('built');
  });

  it('waits for a live holder and says whom it waits for', async () => {
    const cache = join(dir, 'argocd');
    const holder = spawn('sleep', ['30']);
    await new Promise((r) => setTimeout(r, 100));
    mkdirSync(`${cache}.lock`);
    writeFileSync(`${cache}.lock/owner`, `${holder.pid} ${startTime(holder.pid!)}\n`);
    const lines: string[] = [];
    let built = false;
    const waiting = withBuildLock(
      cache,
      'Argo CD',
      (l) => lines.push(l),
      async () => {
        built = true;
      },
    );
    await new Promise((r) => setTimeout(r, 2500));
    expect(built).toBe(false);
    expect(lines[0]).toMatch(`waiting for the build of Argo CD by process ${holder.pid}`);
    holder.kill('SIGKILL');
    await waiting;
    expect(built).toBe(true);
  }, 20_000);
});
