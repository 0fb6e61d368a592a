import { CopyHolds } from '../../../src/helper/copy-holds.js';

describe('the Pods whose copies a helper keeps', () => {
  it('refuses nothing until the controller has sent a list (a helper just started, an older controller)', () => {
    expect(new CopyHolds().problem('apps', 'u1', 'n1')).toBeUndefined();
    expect(new CopyHolds().list()).toBeUndefined();
  });

  it("then takes copies only of the Pods it names, only from their node's helper", () => {
    const holds = new CopyHolds();
    expect(holds.set([{ namespace: 'apps', podUID: 'u1', node: 'n1' }])).toBe(1);
    expect(holds.problem('apps', 'u1', 'n1')).toBeUndefined();
    expect(holds.problem('apps', 'u2', 'n1')).toBe('this helper was not told to keep copies of Pod apps/u2');
    expect(holds.problem('other', 'u1', 'n1')).toMatch(/not told to keep copies of Pod other\/u1/);
    expect(holds.problem('apps', 'u1', 'n2')).toBe(
      'copies of Pod apps/u1 come from the helper of node n1, not n2',
    );
    // A token that names no node (a cluster before 1.30): the Pod must still be held.
    expect(holds.problem('apps', 'u1', undefined)).toBeUndefined();
    expect(holds.set([])).toBe(0);
    expect(holds.problem('apps', 'u1', 'n1')).toMatch(/not told/);
  });
});
