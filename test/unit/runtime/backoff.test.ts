// Backoff delays and jitter.
import { backoffDelay, jittered } from '../../../src/runtime/backoff.js';

describe('backoff', () => {
  it('doubles from the base up to the cap, and jitter stays within its fraction', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, { baseMs: 5, maxMs: 30 }))).toEqual([5, 10, 20, 30]);
    expect(backoffDelay(0)).toBe(0);
    expect(backoffDelay(1000)).toBe(1_000_000);
    expect(jittered(1000, 0.05, () => 0)).toBe(950);
    expect(jittered(1000, 0.05, () => 1)).toBe(1050);
  });
});
