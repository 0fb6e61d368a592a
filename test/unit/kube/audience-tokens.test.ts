import { describe, expect, it } from '@jest/globals';
import { AudienceTokens, type IssuedToken } from '../../../src/kube/bearer-token.js';
import { HELPER_AUDIENCE, helperAudience } from '../../../src/api/index.js';

/** A fake API server's TokenRequest: tokens named after their audience and a counter, one hour long. */
function issuer(now: { t: number }) {
  const asked: string[] = [];
  let n = 0;
  let down = false;
  let gate: Promise<void> | undefined;
  return {
    asked,
    setDown: (v: boolean) => (down = v),
    hold: (p: Promise<void> | undefined) => {
      gate = p;
    },
    request: async (audience: string): Promise<IssuedToken> => {
      asked.push(audience);
      if (gate) await gate;
      if (down) throw new Error('connect ECONNREFUSED');
      return { token: `${audience}#${++n}`, expiresAt: now.t + 3_600_000 };
    },
  };
}

describe('AudienceTokens', () => {
  const now = { t: 1_000_000 };
  const make = (api: ReturnType<typeof issuer>, maxEntries?: number) =>
    new AudienceTokens({
      audience: (node) => helperAudience(node),
      request: api.request,
      now: () => now.t,
      ...(maxEntries ? { maxEntries } : {}),
    });

  it('sends each helper a token for its own node only', async () => {
    const api = issuer(now);
    const tokens = make(api);
    expect(await tokens.header('n1')).toBe(`Bearer ${HELPER_AUDIENCE}/node/n1#1`);
    expect(await tokens.header('n2')).toBe(`Bearer ${HELPER_AUDIENCE}/node/n2#2`);
    expect(api.asked).toEqual([helperAudience('n1'), helperAudience('n2')]);
  });

  it('keeps a token until 80 % of its lifetime, then renews it without making a caller wait', async () => {
    const api = issuer(now);
    const tokens = make(api);
    const first = await tokens.header('n1');
    now.t += 0.79 * 3_600_000;
    expect(await tokens.header('n1')).toBe(first);
    expect(api.asked).toHaveLength(1);
    now.t += 0.02 * 3_600_000;
    // Still valid: this caller gets it, and the renewal runs behind it.
    expect(await tokens.header('n1')).toBe(first);
    await new Promise((r) => setImmediate(r));
    expect(api.asked).toHaveLength(2);
    expect(await tokens.header('n1')).not.toBe(first);
  });

  it('waits at most its timeout for the API server, then backs off instead of asking per call', async () => {
    const api = issuer(now);
    api.hold(new Promise<void>(() => undefined)); // the API server never answers
    const tokens = new AudienceTokens({
      audience: (node) => helperAudience(node),
      request: api.request,
      now: () => now.t,
      timeoutMs: 50,
    });
    await expect(tokens.header('n1')).rejects.toThrow(
      `could not get a token for the audience ${helperAudience('n1')}: no answer within 50 ms`,
    );
    await expect(tokens.header('n1')).rejects.toThrow('no answer within 50 ms');
    expect(api.asked).toHaveLength(1);
    now.t += 1001;
    api.hold(undefined);
    expect(await tokens.header('n1')).toBe(`Bearer ${helperAudience('n1')}#1`);
    expect(api.asked).toHaveLength(2);
  });

  it('asks once for concurrent calls to one node', async () => {
    const api = issuer(now);
    let open!: () => void;
    api.hold(new Promise<void>((r) => (open = r)));
    const tokens = make(api);
    const all = Promise.all([tokens.header('n1'), tokens.header('n1'), tokens.header('n1')]);
    open();
    const answers = await all;
    expect(new Set(answers).size).toBe(1);
    expect(api.asked).toHaveLength(1);
  });

  it('uses a kept token while the API server is down, until shortly before it expires', async () => {
    const api = issuer(now);
    const tokens = make(api);
    const kept = await tokens.header('n1');
    api.setDown(true);
    now.t += 0.9 * 3_600_000;
    expect(await tokens.header('n1')).toBe(kept);
    await new Promise((r) => setImmediate(r));
    now.t += 0.1 * 3_600_000 - 5_000; // 5 s before its expiry: too close to send
    await expect(tokens.header('n1')).rejects.toThrow(
      `could not get a token for the audience ${helperAudience('n1')}: connect ECONNREFUSED`,
    );
    await expect(tokens.header('n2')).rejects.toThrow('ECONNREFUSED');
    api.setDown(false);
    now.t += 2_000; // past the back-off of the last failure
    expect(await tokens.header('n1')).not.toBe(kept);
  });

  it('remembers a bounded number of nodes, dropping the oldest', async () => {
    const api = issuer(now);
    const tokens = make(api, 2);
    await tokens.header('n1');
    await tokens.header('n2');
    await tokens.header('n3');
    await tokens.header('n3');
    await tokens.header('n2');
    expect(api.asked).toHaveLength(3);
    await tokens.header('n1');
    expect(api.asked).toHaveLength(4);
  });
});
