import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** A child process whose output goes to a log file and whose pid is recorded so `down` can reap leftovers. */
export interface Managed {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export function startLogged(
  name: string,
  command: string,
  args: string[],
  logFile: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Managed {
  mkdirSync(dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      log.write(`localcluster: failed to start ${command}: ${err.message}\n`);
      resolve(null);
    });
    child.on('exit', (code, signal) => {
      log.write(`localcluster: ${name} exited (code ${code}, signal ${signal})\n`);
      resolve(code);
    });
  });
  return { name, child, exited };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(p: Managed, graceMs = 5000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** Pid registry, so a later `up` or `down` can kill what a crashed daemon left behind. */
export class PidFile {
  constructor(private readonly path: string) {}

  read(): number[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8')
      .split('\n')
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
  }

  add(pid: number | undefined): void {
    if (pid === undefined) return;
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileSync(this.path, [...this.read(), pid].join('\n') + '\n');
  }

  killAll(): void {
    for (const pid of this.read()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (existsSync(this.path)) writeFileSync(this.path, '');
  }
}
