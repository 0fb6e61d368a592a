import { ANNOTATIONS, formatProblems, mapAnnotations } from '../../src/api/index.js';

const selector = { matchLabels: { app: 'count' } };
const good = {
  [ANNOTATIONS.mode]: 'http-sf',
  [ANNOTATIONS.interval]: '1',
  [ANNOTATIONS.path]: '/state',
  [ANNOTATIONS.port]: '8080',
};

describe('mapAnnotations', () => {
  it('ignores a workload without ps_* annotations', () => {
    expect(mapAnnotations({ 'other.io/x': '1' }, selector)).toEqual({ kind: 'absent' });
    expect(mapAnnotations(undefined, selector)).toEqual({ kind: 'absent' });
  });

  it('maps the four annotations and fills the CRD defaults', () => {
    const result = mapAnnotations(good, selector);
    expect(result).toEqual({
      kind: 'valid',
      warnings: [],
      spec: {
        selector,
        mode: 'http-sf',
        intervalSeconds: 1,
        path: '/state',
        port: 8080,
        maxStateBytes: 16 * 1024 * 1024,
        copies: 1,
        sameNodeCopy: 'Never',
        allowHostNetwork: false,
        failover: { periodMilliseconds: 1000, failureThreshold: 3 },
      },
    });
  });

  it('accepts mode http and defaults the optional three', () => {
    const result = mapAnnotations({ [ANNOTATIONS.mode]: 'http' }, selector);
    expect(result.kind).toBe('valid');
    if (result.kind !== 'valid') return;
    expect(result.spec).toMatchObject({ mode: 'http', intervalSeconds: 10, path: '/state', port: 8080 });
  });

  // Each bad value must name the annotation, echo the value, and say what is allowed.
  const bad: [string, string, string, RegExp][] = [
    ['mode push', ANNOTATIONS.mode, 'push', /must be one of: http, http-sf/],
    ['mode empty', ANNOTATIONS.mode, '', /is empty; allowed: one of http, http-sf/],
    [
      'interval abc',
      ANNOTATIONS.interval,
      'abc',
      /not a whole number; allowed: a whole number from 1 to 3600/,
    ],
    ['interval 0', ANNOTATIONS.interval, '0', /must be >= 1; allowed: a whole number from 1 to 3600/],
    ['interval -5', ANNOTATIONS.interval, '-5', /not a whole number; allowed: a whole number from 1 to 3600/],
    [
      'interval 1e9',
      ANNOTATIONS.interval,
      '1e9',
      /not a whole number; allowed: a whole number from 1 to 3600/,
    ],
    ['interval huge', ANNOTATIONS.interval, '1000000000', /must be <= 3600/],
    ['interval 2.5', ANNOTATIONS.interval, '2.5', /not a whole number/],
    ['port 0', ANNOTATIONS.port, '0', /must be >= 1; allowed: a whole number from 1 to 65535/],
    ['port 70000', ANNOTATIONS.port, '70000', /must be <= 65535; allowed: a whole number from 1 to 65535/],
    ['port http', ANNOTATIONS.port, 'http', /named ports are not supported.*from 1 to 65535/],
    [
      'path state',
      ANNOTATIONS.path,
      'state',
      /must match .*allowed: a path that starts with \/ \(for example \/state\)/,
    ],
    ['path with space', ANNOTATIONS.path, '/my state', /allowed: a path that starts with \//],
    [
      'path with a control character',
      ANNOTATIONS.path,
      '/state\u0001',
      /contains the control character U\+0001 at position 6; allowed: a path that starts with \//,
    ],
  ];
  it.each(bad)('rejects %s', (_name, annotation, value, message) => {
    const result = mapAnnotations({ ...good, [annotation]: value }, selector);
    expect(result.kind).toBe('invalid');
    if (result.kind !== 'invalid') return;
    expect(result.problems).toHaveLength(1);
    const [problem] = result.problems;
    expect(problem).toMatchObject({ annotation, value });
    expect(problem!.message).toMatch(message);
    // Quoted and escaped: a tenant's control character must not reach an Event or a log line as it is.
    expect(formatProblems(result.problems)).toContain(`${annotation}=${JSON.stringify(value)}`);
    expect(formatProblems(result.problems)).not.toMatch(/[\x00-\x1f\x7f]/);
  });

  it('requires ps_mode when other ps_* annotations are present', () => {
    const { [ANNOTATIONS.mode]: _omit, ...rest } = good;
    const result = mapAnnotations(rest, selector);
    expect(result.kind).toBe('invalid');
    if (result.kind !== 'invalid') return;
    expect(formatProblems(result.problems)).toBe(
      'hitachienergy.com/ps_mode is missing; it opts the workload in and must be one of http, http-sf',
    );
  });

  it('reports every bad annotation at once', () => {
    const result = mapAnnotations(
      { ...good, [ANNOTATIONS.port]: 'x', [ANNOTATIONS.interval]: '0' },
      selector,
    );
    expect(result.kind === 'invalid' && result.problems.map((p) => p.annotation).sort()).toEqual([
      ANNOTATIONS.interval,
      ANNOTATIONS.port,
    ]);
  });

  it('warns about unknown ps_* keys without rejecting the workload', () => {
    const result = mapAnnotations({ ...good, 'hitachienergy.com/ps_retries': '3' }, selector);
    expect(result.kind).toBe('valid');
    expect(result.kind === 'valid' && result.warnings).toEqual([
      expect.stringMatching(
        /unknown annotation hitachienergy.com\/ps_retries is ignored; known annotations: .*ps_mode/,
      ),
    ]);
  });
});
