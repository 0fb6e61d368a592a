import { execFileSync } from 'node:child_process';

describe('generated types', () => {
  it('match the CRD (npm run generate leaves no diff)', () => {
    // Throws (exit 1) with a message naming the stale file when the CRD changed without regenerating.
    const out = execFileSync(process.execPath, ['tools/generate-types.mjs', '--check'], { encoding: 'utf8' });
    expect(out).toMatch(/is up to date/);
  });

  it('rejects an unknown flag with exit code 2 and the allowed ones', () => {
    const run = () =>
      execFileSync(process.execPath, ['tools/generate-types.mjs', '--wat'], { stdio: 'pipe' });
    expect(run).toThrow(expect.objectContaining({ status: 2, stderr: expect.any(Buffer) }));
    try {
      run();
    } catch (err) {
      expect(String((err as { stderr: Buffer }).stderr)).toBe(
        'generate: unknown argument --wat; allowed: --check, --help\n',
      );
    }
  });
});
