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
    hold: (p: Promise<void> | undefined) => (gate = p),
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

  it('keeps a token until 80 % of its lifetime, then asks for a new one', async () => {
    const api = issuer(now);
    const tokens = make(api);
    const first = await tokens.header('n1');
    now.t += 0.79 * 3_600_000;
    expect(await tokens.header('n1')).toBe(first);
    now.t += 0.02 * 3_600_000;
    expect(await tokens.header('n1')).not.toBe(first);
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
    now.t += 0.1 * 3_600_000 - 5_000; // 5 s before its expiry: too close to send
    await expect(tokens.header('n1')).rejects.toThrow(
      `could not get a token for the audience ${helperAudience('n1')}: connect ECONNREFUSED`,
    );
    await expect(tokens.header('n2')).rejects.toThrow('ECONNREFUSED');
    api.setDown(false);
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
