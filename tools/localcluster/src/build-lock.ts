// One build of a cache directory at a time: `npm test` builds the cluster (and Argo CD) in the background
// while the tests run, and `up` (or the GitOps test), which needs it, must wait for that build instead of
// starting a second one.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 2000;
const REPORT_EVERY_MS = 60_000;

/** A process's start time (clock ticks since boot), so a pid reused by another process is not taken for it. */
export function startTime(pid: number): string | undefined {
  try {
    // Field 22; the command name (field 2) may hold spaces and parentheses, so count from its closing one.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The owner a lock names, as `<pid> <start time>`; undefined while it is being written (or garbage). */
function ownerOf(lock: string): { pid: number; started: string } | undefined {
  try {
    const [pid, started] = readFileSync(`${lock}/owner`, 'utf8').trim().split(' ');
    return Number(pid) > 0 && started ? { pid: Number(pid), started } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the lock's owner still runs: the same pid with the same start time (not a pid reused since). */
const holds = (o: { pid: number; started: string }) => startTime(o.pid) === o.started;

/** Removes a stale lock so that only one of several waiters does it (a rename succeeds once). */
function breakLock(lock: string): void {
  const aside = `${lock}.stale-${process.pid}-${Date.now()}`;
  try {
    renameSync(lock, aside);
  } catch {
    return;
  }
  rmSync(aside, { recursive: true, force: true });
}

/**
 * Runs `build` holding `<dir>.lock` (a directory: mkdir is atomic). A lock whose process is gone (killed with
 * SIGKILL, or a pid since reused) is taken over; while another live process holds it, this waits and says so
 * once a minute. SIGTERM and SIGINT release it before the process exits. `build` should check its cache
 * again: the other process may have built it meanwhile.
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
      writeFileSync(`${lock}/owner`, `${process.pid} ${startTime(process.pid) ?? '?'}\n`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = ownerOf(lock);
    // No owner for two polls in a row: it died between mkdir and writing it.
    if (owner === undefined ? ++unowned >= 2 : !holds(owner)) {
      breakLock(lock);
      unowned = 0;
      continue;
    }
    if (owner !== undefined) unowned = 0;
    if (Date.now() - lastReport >= REPORT_EVERY_MS) {
      lastReport = Date.now();
      log(
        `localcluster: waiting for the build of ${what} by process ${owner?.pid ?? '?'} (${Math.round((Date.now() - started) / 1000)}s so far)`,
      );
    }
    await sleep(POLL_MS);
  }
  const release = () => rmSync(lock, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    release();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    return await build();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    release();
  }
}
