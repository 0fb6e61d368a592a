import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Finds a file shipped with the project (the CRD, image maps) from wherever this module runs: `src/` under
 * ts-jest and tsx, `dist/src/` when compiled, `/app/dist/src/` in the image.
 */
export function projectFile(relativePath: string, from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (;;) {
    const candidate = join(dir, relativePath);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`project file ${relativePath} not found above ${fileURLToPath(from)}`);
    dir = parent;
  }
}
