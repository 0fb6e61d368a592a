// Which nodes hold a Pod's copies.
import { chooseTargets } from '../../../../src/controller/checkpoints/target-nodes.js';

describe('chooseTargets', () => {
  const candidates = [
    { node: 'a', load: 0 },
    { node: 'b', load: 5 },
    { node: 'c', load: 1 },
  ];
  it("never picks the Pod's own node and prefers the least loaded", () => {
    expect(chooseTargets({ podNode: 'a', copies: 1, current: [], candidates, key: 'x' })).toEqual(['c']);
    expect(chooseTargets({ podNode: 'a', copies: 2, current: [], candidates, key: 'x' })).toEqual(['c', 'b']);
  });
  it('keeps a valid current target (sticky) and replaces one that went away', () => {
    expect(chooseTargets({ podNode: 'a', copies: 1, current: ['b'], candidates, key: 'x' })).toEqual(['b']);
    expect(chooseTargets({ podNode: 'c', copies: 1, current: ['gone'], candidates, key: 'x' })).toEqual([
      'a',
    ]);
  });
  it('returns fewer nodes than asked when there are not enough, and none when only the own node is left', () => {
    expect(chooseTargets({ podNode: 'a', copies: 5, current: [], candidates, key: 'x' })).toHaveLength(2);
    expect(
      chooseTargets({ podNode: 'a', copies: 1, current: [], candidates: [{ node: 'a', load: 0 }], key: 'x' }),
    ).toEqual([]);
  });
  it('spreads Pods with equal loads over different nodes', () => {
    const equal = ['n1', 'n2', 'n3', 'n4'].map((node) => ({ node, load: 0 }));
    const picks = new Set(
      Array.from(
        { length: 40 },
        (_, i) =>
          chooseTargets({ podNode: 'x', copies: 1, current: [], candidates: equal, key: `pod-${i}` })[0],
      ),
    );
    expect(picks.size).toBeGreaterThan(2);
  });

  it("keeps the copy on the Pod's own node only when the policy allows it and no other node can", () => {
    const alone = [{ node: 'a', load: 0 }];
    expect(chooseTargets({ podNode: 'a', copies: 1, current: [], candidates: alone, key: 'x' })).toEqual([]);
    expect(
      chooseTargets({
        podNode: 'a',
        copies: 2,
        current: [],
        candidates: alone,
        key: 'x',
        sameNodeWhenAlone: true,
      }),
    ).toEqual(['a']);
    // The own node's helper is not usable either: nowhere.
    expect(
      chooseTargets({
        podNode: 'a',
        copies: 1,
        current: [],
        candidates: [],
        key: 'x',
        sameNodeWhenAlone: true,
      }),
    ).toEqual([]);
    // Once another node can hold it, the copy leaves the Pod's node, even if it was there before.
    const two = [...alone, { node: 'b', load: 5 }];
    expect(
      chooseTargets({
        podNode: 'a',
        copies: 1,
        current: ['a'],
        candidates: two,
        key: 'x',
        sameNodeWhenAlone: true,
      }),
    ).toEqual(['b']);
  });
});
