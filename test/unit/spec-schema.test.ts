import { parseSpec, validateSpec, validateStatus } from '../../src/api/index.js';

const selector = { matchLabels: { app: 'a' } };

describe('parseSpec (ajv compiled from the CRD)', () => {
  it('applies every default of the design brief', () => {
    const result = parseSpec({ selector });
    expect(result).toEqual({
      ok: true,
      value: {
        selector,
        mode: 'http-sf',
        intervalSeconds: 10,
        path: '/state',
        port: 8080,
        restorePath: '/state',
        timeoutSeconds: 5,
        maxStateBytes: 16777216,
        copies: 1,
        sameNodeCopy: 'Never',
        allowHostNetwork: false,
        failover: { periodMilliseconds: 1000, failureThreshold: 3 },
      },
    });
  });

  it('derives restorePath from path and caps the timeout default at the interval', () => {
    const result = parseSpec({ selector, intervalSeconds: 2, path: '/s' });
    expect(result.ok && [result.value.restorePath, result.value.timeoutSeconds]).toEqual(['/s', 2]);
  });

  it('keeps explicit values', () => {
    const result = parseSpec({ selector, restorePath: '/restore', timeoutSeconds: 7, intervalSeconds: 30 });
    expect(result.ok && [result.value.restorePath, result.value.timeoutSeconds]).toEqual(['/restore', 7]);
  });

  it('does not mutate its input', () => {
    const input = { selector };
    parseSpec(input);
    expect(input).toEqual({ selector });
  });

  const bad: [string, unknown, RegExp][] = [
    ['missing selector', {}, /spec.selector is required/],
    ['bad mode', { selector, mode: 'push' }, /spec.mode must be one of: http, http-sf/],
    ['interval too large', { selector, intervalSeconds: 3601 }, /spec.intervalSeconds must be <= 3600/],
    ['fractional interval', { selector, intervalSeconds: 2.5 }, /spec.intervalSeconds must be integer/],
    ['copies 0', { selector, copies: 0 }, /spec.copies must be >= 1/],
    ['maxStateBytes 2 GiB', { selector, maxStateBytes: 2 ** 31 }, /spec.maxStateBytes must be <= 1073741824/],
    ['relative restorePath', { selector, restorePath: 'x' }, /spec.restorePath must match/],
    ['container not a DNS label', { selector, container: 'App_1' }, /spec.container must match/],
    ['empty container', { selector, container: '' }, /spec.container must NOT have fewer than 1 characters/],
    [
      'bad operator',
      { selector: { matchExpressions: [{ key: 'a', operator: 'Is' }] } },
      /operator must be one of/,
    ],
    [
      'probe period too short',
      { selector, failover: { periodMilliseconds: 10 } },
      /periodMilliseconds must be >= 100/,
    ],
  ];
  it.each(bad)('rejects %s with a message naming the field', (_name, input, message) => {
    const result = validateSpec(input);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.errors.join('\n')).toMatch(message);
  });
});

describe('validateStatus', () => {
  it('accepts a complete status', () => {
    const status = {
      observedGeneration: 2,
      protectedPods: 1,
      lastCheckpointTime: '2026-11-23T10:00:00.123Z',
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Checkpointing',
          message: 'ok',
          lastTransitionTime: '2026-11-23T10:00:00Z',
        },
      ],
      checkpoints: [
        {
          pod: 'p',
          podUID: 'u',
          node: 'n',
          sizeBytes: 4,
          timestamp: '2026-11-23T10:00:00Z',
          sequence: 3,
          digest: `sha256:${'a'.repeat(64)}`,
        },
      ],
    };
    expect(validateStatus(status)).toEqual({ ok: true, value: status });
  });

  it('rejects a malformed digest and timestamp', () => {
    const result = validateStatus({
      checkpoints: [
        {
          pod: 'p',
          podUID: 'u',
          node: 'n',
          sizeBytes: 1,
          timestamp: 'yesterday',
          sequence: 1,
          digest: 'md5:x',
        },
      ],
    });
    expect(!result.ok && result.errors.join('\n')).toMatch(
      /timestamp must match format "date-time"[\s\S]*digest must match/,
    );
  });
});

describe('tenant paths no request can carry', () => {
  it('refuses a path or restorePath with a control character, naming the field and the character', () => {
    expect(parseSpec({ selector, path: '/state\u0001' })).toEqual({
      ok: false,
      errors: ['spec.path contains the control character U+0001 at position 6'],
    });
    expect(parseSpec({ selector, restorePath: '/re\u007f', port: 0 })).toMatchObject({
      ok: false,
      errors: [
        expect.stringMatching(/^spec\.port /),
        'spec.restorePath contains the control character U+007F at position 3',
      ],
    });
  });

  it('admits every other path the CRD admits: the helpers send it percent-encoded', () => {
    expect(parseSpec({ selector, path: '/héalth✓', restorePath: '/100%' }).ok).toBe(true);
  });
});
