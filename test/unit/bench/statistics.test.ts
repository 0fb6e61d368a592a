import { median, quantile } from '../../../bench/statistics.js';

describe('quantile', () => {
  it('picks the sorted value at rank floor(q·n), never an interpolation', () => {
    const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    expect(quantile(xs, 0)).toBe(1);
    expect(quantile(xs, 0.5)).toBe(6);
    expect(quantile(xs, 0.9)).toBe(10);
    expect(quantile(xs, 0.95)).toBe(10);
    expect(quantile([3.5, 1.25], 0.25)).toBe(1.25);
  });
  it('holds q = 1 to the largest value', () => {
    expect(quantile([4, 2, 3], 1)).toBe(4);
  });
  it('is NaN without values, and leaves its input in order', () => {
    expect(quantile([], 0.5)).toBeNaN();
    const xs = [3, 1, 2];
    quantile(xs, 0.5);
    expect(xs).toEqual([3, 1, 2]);
  });
  it('sorts numerically, not as text', () => {
    expect(quantile([100, 9, 20], 0)).toBe(9);
  });
});

describe('median', () => {
  it('is the middle of an odd count and the upper middle of an even one', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(3);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });
});
