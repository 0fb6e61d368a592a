// The token reviewer's rules with a scripted TokenReview and a fake clock (the real API server's reviews are
// exercised by every integration test that calls a helper).
import type { V1TokenReviewStatus } from '@kubernetes/client-node';
import { TokenReviewer, jwtExpiry } from '../../../src/helper/token-reviewer.js';

const CONTROLLER = 'system:serviceaccount:ops:controller';
const jwt = (exp?: number) =>
  `h.${Buffer.from(JSON.stringify(exp === undefined ? {} : { exp })).toString('base64url')}.s`;

function setup(o: { graceMs?: number; maxEntries?: number; reviewTimeoutMs?: number } = {}) {
  let now = 1_000_000;
  let down = false;
  let hang = false;
  const asked: string[] = [];
  const reviewer = new TokenReviewer(undefined, {
    allowedUsers: [CONTROLLER],
    cacheMs: 10_000,
    ...o,
    now: () => now,
    createTokenReview: async (token): Promise<V1TokenReviewStatus> => {
      asked.push(token);
      await new Promise((r) => setTimeout(r, 5));
      if (hang) await new Promise(() => undefined);
      if (down) throw new Error('connect ECONNREFUSED');
      if (token.startsWith('good')) return { authenticated: true, user: { username: CONTROLLER } };
      if (token.startsWith('bound'))
        return {
          authenticated: true,
          user: { username: CONTROLLER, extra: { 'authentication.kubernetes.io/node-name': ['worker-2'] } },
        };
      if (token.startsWith('h.')) return { authenticated: true, user: { username: CONTROLLER } };
      return { authenticated: false, error: 'invalid bearer token' };
    },
  });
  return {
    reviewer,
    asked,
    advance: (ms: number) => void (now += ms),
    setDown: (d: boolean) => void (down = d),
    setHang: (h: boolean) => void (hang = h),
    now: () => now,
  };
}

describe('TokenReviewer', () => {
  it('names the node of the Pod a token is bound to, also from its cache and in its grace', async () => {
    const t = setup();
    expect(await t.reviewer.review('Bearer bound-1')).toEqual({
      ok: true,
      user: CONTROLLER,
      node: 'worker-2',
    });
    expect(await t.reviewer.review('Bearer bound-1')).toEqual({
      ok: true,
      user: CONTROLLER,
      node: 'worker-2',
    });
    t.advance(10_001);
    t.setDown(true);
    expect(await t.reviewer.review('Bearer bound-1')).toEqual({
      ok: true,
      user: CONTROLLER,
      node: 'worker-2',
    });
    expect(await t.reviewer.review('Bearer good-1').catch(() => 'unreachable')).toBe('unreachable');
  });

  it('merges concurrent reviews of one token into one TokenReview, and reuses the answer', async () => {
    const t = setup();
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => t.reviewer.review('Bearer good-1')));
    expect(verdicts.every((v) => v.ok)).toBe(true);
    expect(t.asked).toEqual(['good-1']);
    await t.reviewer.review('Bearer good-1');
    expect(t.asked).toHaveLength(1);
    t.advance(10_001);
    await t.reviewer.review('Bearer good-1');
    expect(t.asked).toHaveLength(2);
  });

  it('random tokens cannot push the operator’s own out of the cache', async () => {
    const t = setup({ maxEntries: 10 });
    expect((await t.reviewer.review('Bearer good-1')).ok).toBe(true);
    for (let i = 0; i < 100; i++) expect((await t.reviewer.review(`Bearer junk-${i}`)).ok).toBe(false);
    t.asked.length = 0;
    expect((await t.reviewer.review('Bearer good-1')).ok).toBe(true);
    expect(t.asked).toEqual([]);
    // The refused side is bounded and keeps the newest.
    await t.reviewer.review('Bearer junk-99');
    await t.reviewer.review('Bearer junk-0');
    expect(t.asked).toEqual(['junk-0']);
  });

  it('keeps admitting a confirmed token for the grace period while the API server is unreachable', async () => {
    const t = setup({ graceMs: 60_000 });
    expect((await t.reviewer.review('Bearer good-1')).ok).toBe(true);
    t.setDown(true);
    t.advance(30_000); // the cache ran out: asked again, the API is down, the grace admits it
    expect(await t.reviewer.review('Bearer good-1')).toEqual({ ok: true, user: CONTROLLER });
    t.advance(31_000); // past the grace, counted from the last confirmation, not from the grace's first use
    await expect(t.reviewer.review('Bearer good-1')).rejects.toThrow(/ECONNREFUSED/);
    // A token never confirmed gets no grace.
    await expect(t.reviewer.review('Bearer good-2')).rejects.toThrow(/ECONNREFUSED/);
    t.setDown(false);
    expect((await t.reviewer.review('Bearer good-1')).ok).toBe(true);
  });

  it('takes a TokenReview that never answers as an unreachable API server: grace, then a clear error', async () => {
    const t = setup({ graceMs: 60_000, reviewTimeoutMs: 50 });
    expect((await t.reviewer.review('Bearer good-1')).ok).toBe(true);
    t.setHang(true);
    t.advance(20_000);
    expect((await t.reviewer.review('Bearer good-1')).ok).toBe(true);
    await expect(t.reviewer.review('Bearer good-2')).rejects.toThrow(/longer than 50 ms/);
  });

  it('gives no grace past the token’s own expiry', async () => {
    const t = setup({ graceMs: 600_000 });
    const token = jwt(Math.floor((t.now() + 20_000) / 1000));
    expect((await t.reviewer.review(`Bearer ${token}`)).ok).toBe(true);
    t.setDown(true);
    t.advance(15_000);
    expect((await t.reviewer.review(`Bearer ${token}`)).ok).toBe(true);
    t.advance(10_000);
    await expect(t.reviewer.review(`Bearer ${token}`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('reads a JWT expiry without trusting anything else about it', () => {
    expect(jwtExpiry(jwt(1700))).toBe(1_700_000);
    expect(jwtExpiry(jwt())).toBe(Infinity);
    expect(jwtExpiry('opaque')).toBe(Infinity);
    expect(jwtExpiry('a.!!!.b')).toBe(Infinity);
  });
});
