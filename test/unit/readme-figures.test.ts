// tools/readme-figures.ts as a user runs it: in a scratch directory with a README and a bench JSON.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const SCRIPT = resolve('tools/readme-figures.ts');
const TSX = resolve('node_modules/.bin/tsx');

async function figures(cwd: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(TSX, [SCRIPT, ...args], { cwd });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

const bench = {
  date: '2026-12-07T03:37:11.202Z',
  machine: '2 cores, 24 GiB, Node v20.20.2',
  trials: 3,
  failover: { crash: { ms: [1500, 3100, 3300], lost: [0, 3, 9] } },
  baseline: { crash: { ms: [2600, 3200, 3500], lost: [30, 31, 32] } },
  checkpoint: { '1MiB': { p50Ms: 23.8, rawP50Ms: 21.5 } },
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'figures-'));
  writeFileSync(join(dir, 'README.md'), '# x\n\n<!-- figures:start -->\nold\n<!-- figures:end -->\n\nrest\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readme-figures', () => {
  it('renders the table between the markers from the JSON, and --check then agrees', async () => {
    writeFileSync(join(dir, 'b.json'), JSON.stringify(bench));
    expect((await figures(dir, '--json', 'b.json')).code).toBe(0);
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readme).toMatch(
      /container crash \(SIGKILL\)\s*\| Ready with its state after 3\.1 s \(max 3\.3 s\); 3 updates lost \(max 9\)/,
    );
    expect(readme).toContain('state lost; Ready after 3.2 s');
    expect(readme).toContain('23.8 ms');
    expect(readme.endsWith('<!-- figures:end -->\n\nrest\n')).toBe(true);
    expect((await figures(dir, '--json', 'b.json', '--check')).code).toBe(0);
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ ...bench, trials: 5 }));
    const stale = await figures(dir, '--json', 'b.json', '--check');
    expect(stale.code).toBe(1);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toBe(readme);
  });

  it('names the file and the field when the JSON is missing or incomplete, and writes nothing', async () => {
    const none = await figures(dir, '--json', 'nope.json');
    expect(none.code).not.toBe(0);
    expect(none.out).toContain('nope.json: no such file; run `npm run bench` first');
    writeFileSync(
      join(dir, 'b.json'),
      JSON.stringify({ ...bench, failover: { crash: { ms: [1, 2], lost: [1] } } }),
    );
    const short = await figures(dir, '--json', 'b.json');
    expect(short.code).not.toBe(0);
    expect(short.out).toContain(
      'b.json: failover.crash.lost is missing or not a list of 2 numbers (one per trial)',
    );
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('\nold\n');
    const help = await figures(dir, '--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('--json');
  });
});
