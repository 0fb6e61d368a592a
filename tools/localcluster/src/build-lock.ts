// One build of a cache directory at a time: the test run builds Argo CD in the background while the tests
// run, and the GitOps test, which needs it, must wait for that build instead of starting a second one.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 2000;
const REPORT_EVERY_MS = 60_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid written in a lock; undefined while its owner is still writing it (or it is garbage). */
function ownerOf(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${lock}/pid`, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `build` holding `<dir>.lock` (a directory: mkdir is atomic). A lock whose process is gone (a build
 * killed with SIGKILL) is taken over; while another live process holds it, this waits and says so once a
 * minute. `build` should check its cache again: the other process may have built it meanwhile.
 */
export async function withBuildLock<T>(
  dir: string,
  what: string,
  log: (line: string) => void,
  build: () => Promise<T>,
): Promise<T> {
  const lock = `${dir}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  const started = Date.now();
  let lastReport = 0;
  let unowned = 0;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(`${lock}/pid`, `${process.pid}\n`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = ownerOf(lock);
    // No pid for two polls in a row: its owner died between mkdir and writing it.
    if (owner === undefined ? ++unowned >= 2 : !alive(owner)) {
      rmSync(lock, { recursive: true, force: true });
      unowned = 0;
      continue;
    }
    if (owner !== undefined) unowned = 0;
    if (Date.now() - lastReport >= REPORT_EVERY_MS) {
      lastReport = Date.now();
      log(
        `localcluster: waiting for the build of ${what} by process ${owner ?? '?'} (${Math.round((Date.now() - started) / 1000)}s so far)`,
      );
    }
    await sleep(POLL_MS);
  }
  try {
    return await build();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
