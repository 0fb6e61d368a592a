// The in-memory checkpoint book.
import { CheckpointBook } from '../../../../src/controller/checkpoints/checkpoint-book.js';
import { expiredOrphans } from '../../../../src/controller/checkpoints/orphan-collector.js';
import { record } from '../records.js';

/** A generation in a helper's inventory, without its sequence. */
const meta = {
  id: 'ns_u',
  namespace: 'ns',
  policy: 'p',
  policyUID: 'pu',
  pod: 'pod',
  podUID: 'u',
  sizeBytes: 3,
  digest: 'd',
  contentType: 't',
  storedAt: 'x',
};

describe('checkpoint book', () => {
  it('learns helper inventories, keeping the newest copy per node', () => {
    const book = new CheckpointBook();
    book.learnInventory('a', [{ ...meta, sequence: 7 }]);
    book.learnInventory('a', [{ ...meta, sequence: 3 }]);
    book.learnInventory('b', [{ ...meta, sequence: 9 }]);
    const r = book.get('u')!;
    expect(r.copies.get('a')!.sequence).toBe(7);
    expect(r.lastSequence).toBe(9);
    expect(book.loadByNode()).toEqual(
      new Map([
        ['a', 1],
        ['b', 1],
      ]),
    );
  });
  it("learns the Pod's workload from its copies, the newest one's word last", () => {
    const book = new CheckpointBook();
    book.learnInventory('a', [{ ...meta, sequence: 3 }]);
    expect(book.get('u')!.workload).toBeUndefined();
    book.learnInventory('b', [{ ...meta, sequence: 7, workload: 'Deployment/web' }]);
    book.learnInventory('a', [{ ...meta, sequence: 5, workload: 'Deployment/other' }]);
    expect(book.get('u')!.workload).toBe('Deployment/web');
  });

  it('learns no copy pulled after the state went to a replacement (a zombie process after a heal)', () => {
    const book = new CheckpointBook();
    book.learnInventory('a', [{ ...meta, sequence: 7 }]);
    book.get('u')!.sealed = 7;
    book.learnInventory('b', [{ ...meta, sequence: 9 }]);
    const r = book.get('u')!;
    expect([...r.copies.values()].map((c) => c.sequence)).toEqual([7]);
    expect(r.generations.map((c) => c.sequence)).toEqual([7]);
    // Sequences still never go back.
    expect(r.lastSequence).toBe(9);
  });
  it('expires orphans only after the retention', () => {
    const rs = [
      record('a', [], { orphanedSince: 0 }),
      record('b', [], { orphanedSince: 900 }),
      record('c', []),
    ];
    expect(expiredOrphans(rs, 1000, 500).map((r) => r.pod)).toEqual(['a']);
  });
});
