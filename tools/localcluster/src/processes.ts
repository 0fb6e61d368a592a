import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';

/**
 * Starts a long-running process that outlives the CLI: its own session, output appended to `logFile`, pid
 * written to `pidFile` so `down` and faults can find it.
 */
export function spawnDetached(
  command: string,
  args: string[],
  logFile: string,
  pidFile: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): number {
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], ...options });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  writeFileSync(pidFile, `${child.pid}\n`);
  return child.pid;
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    // A zombie answers signal 0; it is dead for every purpose here.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopPid(pid: number | undefined, graceMs = 5000): Promise<void> {
  if (!alive(pid)) return;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
  signal(pid, 'SIGKILL');
  while (alive(pid)) await sleep(20);
}

/** The namespace inode a process is in (`net`, `mnt`), or undefined once it is gone. */
export function namespaceOf(pid: number | string, kind: 'net' | 'mnt'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** Every pid on the machine that `match` selects. */
export function findPids(match: (pid: number) => boolean): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid !== process.pid && match(pid)) pids.push(pid);
  }
  return pids;
}

/**
 * Whether a command line runs a program of one of `dirs` (or names one of its files). With the slash: a build
 * writing to `<cache>/bin.partial/` or `<cache>/staging/bin/` (\`npm test\` runs one in the background while
 * \`up\` runs its \`down\`) is no process of the cluster, and \`down\` must not kill it.
 */
export function runsFrom(cmd: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => cmd.includes(`${d}/`));
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}
