import { execFileSync } from 'node:child_process';

describe('generated types', () => {
  it('match the CRD (npm run generate leaves no diff)', () => {
    // Throws (exit 1) with a message naming the stale file when the CRD changed without regenerating.
    const out = execFileSync(process.execPath, ['tools/generate-types.mjs', '--check'], { encoding: 'utf8' });
    expect(out).toMatch(/is up to date/);
  });
});
