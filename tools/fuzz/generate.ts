// Reproducible random input for the fuzzer: every value comes from the seed the run prints.

export { seededRandom as prng } from '../../harness/seeded-random.js';

export class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  string(max = 40): string {
    const alphabets = [
      'abcdefghijklmnopqrstuvwxyz0123456789-',
      ' \t\r\n"\'\\/?#&=%;:,.{}[]<>*`$',
      '\u0000\u0001\u007f\u00e9\u4e2d\ud83d\ude00\u202e',
    ];
    let s = '';
    for (let i = this.int(max + 1); i > 0; i--) s += this.pick([...this.pick(alphabets)]);
    return s;
  }
  value(depth = 0): unknown {
    switch (this.int(depth > 2 ? 6 : 8)) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1, 1.5, 2 ** 31, 2 ** 53, -(2 ** 63), Number.MAX_VALUE, 65535, 65536]);
      case 3:
        return this.string();
      case 4:
        return this.pick(['http', 'http-sf', 'HTTP', '', '1', '/state', 'true']);
      case 5:
        return this.int(100_000);
      case 6:
        return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
      default: {
        const keys = [
          'port',
          'path',
          'mode',
          'intervalSeconds',
          'selector',
          'copies',
          'failover',
          'x',
          'matchLabels',
        ];
        const o: Record<string, unknown> = {};
        for (let i = this.int(6); i > 0; i--)
          o[this.chance(0.8) ? this.pick(keys) : this.string(10)] = this.value(depth + 1);
        return o;
      }
    }
  }
  /** A tenant's path: mostly plausible, with unicode, escapes, control characters and odd lengths. */
  path(): string {
    const pieces = [
      'state',
      'healthz',
      '/',
      'é',
      '✓',
      '中文',
      '\ud83d\ude00',
      '\ud83d',
      '\u202e',
      '\u00ff',
      ' ',
      '%20',
      '%2F',
      '%',
      '%zz',
      '?',
      'a=b&c',
      '#',
      '"<>\\^`{|}',
    ];
    let s = this.chance(0.95) ? '/' : this.pick(['', 'state', 'http://x/']);
    for (let i = this.int(8); i > 0; i--) s += this.pick(pieces);
    if (this.chance(0.05)) s += this.pick(['x', '✓', '%41']).repeat(500 + this.int(2500));
    if (this.chance(0.15)) {
      const at = this.int(s.length + 1);
      s = s.slice(0, at) + this.pick(['\u0000', '\u0001', '\n', '\r\n', '\t', '\u007f']) + s.slice(at);
    }
    return s;
  }
  /** A port as a tenant or a bug might give one. */
  port(good: number): number {
    return this.chance(0.8)
      ? good
      : this.pick([0, -1, 1.5, 65535, 65536, 70_000, Number.NaN, this.int(70_001), 2 ** 31]);
  }
  /** A header value as an app might send one: printable, Latin-1, UTF-8 bytes, control characters. */
  headerValue(): string {
    return this.pick([
      'application/json',
      'application/octet-stream',
      'text/plain; charset=utf-8',
      `text/${this.string(10)}`,
      'é',
      '✓',
      'a\u0001b',
      '',
      ' padded ',
      'x'.repeat(this.int(3000)),
      this.string(30),
    ]);
  }
}
