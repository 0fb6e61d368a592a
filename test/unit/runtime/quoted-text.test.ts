import { quotedText } from '../../../src/runtime/quoted-text.js';

describe('quotedText', () => {
  it('shows control characters as escapes, so an app cannot drive the terminal of whoever reads its status', () => {
    expect(quotedText('\u001b[2J\u001b]0;pwned\u0007ok')).toBe('\\u001b[2J\\u001b]0;pwned\\u0007ok');
    expect(quotedText('a\r\nb\tc\u007fd\u009be')).toBe('a\\u000d\\u000ab\\u0009c\\u007fd\\u009be');
  });

  it('shows the separators and bidirectional overrides that would reorder or break what is shown', () => {
    expect(quotedText('safe\u202egnp.exe\u2028x')).toBe('safe\\u202egnp.exe\\u2028x');
  });

  it('keeps printable text, including non-Latin scripts, as it is', () => {
    expect(quotedText('Zustand ungültig: état – 状態')).toBe('Zustand ungültig: état – 状態');
  });

  it('cuts long text at a character boundary and says so', () => {
    expect(quotedText('😀'.repeat(10), 4)).toBe('😀😀😀😀… (cut)');
    expect(quotedText('abc', 3)).toBe('abc');
    // Cut before escaping: an escape is never cut in two.
    expect(quotedText('ab\u001b', 3)).toBe('ab\\u001b');
    expect(quotedText('abc', 3, true)).toBe('abc… (cut)');
  });
});
