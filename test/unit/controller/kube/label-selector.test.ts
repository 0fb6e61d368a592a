// LabelSelector matching.
import { matchesSelector } from '../../../../src/controller/kube/label-selector.js';

describe('matchesSelector', () => {
  it('applies matchLabels and every operator', () => {
    const labels = { app: 'x', tier: 'db' };
    expect(matchesSelector({ matchLabels: { app: 'x' } }, labels)).toBe(true);
    expect(matchesSelector({ matchLabels: { app: 'y' } }, labels)).toBe(false);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }, labels),
    ).toBe(true);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] }, labels),
    ).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, labels)).toBe(
      true,
    );
    expect(matchesSelector({ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, labels)).toBe(false);
    expect(matchesSelector(undefined, labels)).toBe(false);
  });
});
