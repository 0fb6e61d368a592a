// A tenant's path as a request target, as the kubelet's Go net/url sends it (the expected values are what Go's
// url.Parse(path).EscapedPath() and RawQuery give for these inputs).
import { requestPath } from '../../../src/runtime/request-path.js';

describe('requestPath', () => {
  it.each([
    ['/state', '/state'],
    ['/', '/'],
    ['/héalth✓', '/h%C3%A9alth%E2%9C%93'],
    ['/中文/路径', '/%E4%B8%AD%E6%96%87/%E8%B7%AF%E5%BE%84'],
    ['/emoji😀', '/emoji%F0%9F%98%80'],
    ['/a b', '/a%20b'],
    ['/a%20b', '/a%20b'],
    ['/a%2fb', '/a%2fb'],
    ['/100%', '/100%25'],
    ['/%zz', '/%25zz'],
    ['/a"b<c>d\\e^f`g{h|i}', '/a%22b%3Cc%3Ed%5Ce%5Ef%60g%7Bh%7Ci%7D'],
    ["/keep-._~!$&'()*+,;=:@[]/", "/keep-._~!$&'()*+,;=:@[]/"],
    ['/healthz?x=1&y=2', '/healthz?x=1&y=2'],
    ['/q?name=é ok', '/q?name=%C3%A9%20ok'],
    ['/q?a?b/c"d', '/q?a?b/c"d'],
    ['/state#frag', '/state'],
    ['/\u00ff', '/%C3%BF'],
    ['/lone\ud83d', '/lone%EF%BF%BD'],
  ])('%j is sent as %j', (raw, want) => {
    expect(requestPath(raw)).toEqual({ ok: true, path: want });
  });

  it.each([
    ['/a\u0000b', 'U+0000 at position 2', '"/a\\u0000b"'],
    ['/a\nb', 'U+000A at position 2', '"/a\\nb"'],
    ['/\tx', 'U+0009 at position 1', '"/\\tx"'],
    ['/del\u007f', 'U+007F at position 4', '"/del\\u007f"'],
    ['/\u202e\u0001', 'U+0001 at position 2', '"/\\u202e\\u0001"'],
    ['state', 'does not start with /', '"state"'],
    ['', 'does not start with /', '""'],
    ['http://evil/x', 'does not start with /', '"http://evil/x"'],
  ])('%j is refused, naming the value and what is allowed', (raw, why, shown) => {
    const r = requestPath(raw);
    expect(r.ok).toBe(false);
    const problem = r.ok ? '' : r.problem;
    expect(problem).toContain(why);
    expect(problem).toContain(`path ${shown} `);
    expect(problem).toMatch(/allowed: a path that starts with \//);
    expect(problem).not.toMatch(/[\x00-\x1f\x7f\u202e]/);
  });

  it('refuses what is not a string, and cuts a long value short in its message', () => {
    expect(requestPath(42)).toMatchObject({ ok: false });
    const r = requestPath(`/${'x'.repeat(5000)}\u0001`);
    expect(r.ok ? '' : r.problem.length).toBeLessThan(400);
  });

  it('gives back its own output unchanged, and only what node can send', () => {
    for (const raw of ['/héalth✓', '/a b%2F%', '/q?é#x', '/lone\ud83d', `/${'✓'.repeat(2000)}`]) {
      const once = requestPath(raw);
      if (!once.ok) throw new Error(once.problem);
      expect(requestPath(once.path)).toEqual(once);
      expect(once.path).toMatch(/^\/[\x21-\x7e]*$/);
    }
  });
});
