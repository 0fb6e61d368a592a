import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CGROUP_FS = '/sys/fs/cgroup';

/** The cgroup hierarchies the kubelet uses: every v1 controller it needs, and the unified one in hybrid mode. */
function hierarchies(): string[] {
  if (!existsSync(CGROUP_FS)) return [];
  return readdirSync(CGROUP_FS)
    .map((h) => join(CGROUP_FS, h))
    .filter((h) => existsSync(join(h, 'cgroup.procs')));
}

/** The kubelet requires its cgroupRoot to exist in every hierarchy; cpuset needs its cpus and mems set. */
export function createCgroupRoot(name: string): void {
  for (const h of hierarchies()) mkdirSync(join(h, name), { recursive: true });
  const cpuset = join(CGROUP_FS, 'cpuset');
  if (existsSync(join(cpuset, 'cpuset.cpus'))) {
    for (const f of ['cpuset.cpus', 'cpuset.mems'])
      writeFileSync(join(cpuset, name, f), readFileSync(join(cpuset, f), 'utf8'));
  }
}

/** Every process in the node's cgroups, in any hierarchy. */
export function cgroupPids(name: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    try {
      for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n'))
        if (p.trim()) pids.add(Number(p));
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    } catch {
      // Removed while walking.
    }
  };
  for (const h of hierarchies()) walk(join(h, name));
  return [...pids];
}

/** Removes the node's cgroup trees, deepest first; a cgroup with processes left stays, and is reported. */
export function removeCgroupRoot(name: string): string[] {
  const left: string[] = [];
  const remove = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) remove(join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch {
      left.push(dir);
    }
  };
  for (const h of hierarchies()) remove(join(h, name));
  return left;
}

/** Every cgroup root the local cluster made (for `down` after a crashed run). */
export function cgroupRoots(prefix: string): string[] {
  const names = new Set<string>();
  for (const h of hierarchies())
    for (const e of readdirSync(h, { withFileTypes: true }))
      if (e.isDirectory() && e.name.startsWith(prefix)) names.add(e.name);
  return [...names];
}
