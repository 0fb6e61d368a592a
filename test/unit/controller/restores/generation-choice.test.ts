import type { Copy } from '../../../../src/controller/checkpoints/checkpoint-book.js';
import { chooseGeneration } from '../../../../src/controller/restores/generation-choice.js';

const copy = (sequence: number, node = 'n1', pulledAt: number | undefined = sequence): Copy => ({
  node,
  sequence,
  ...(pulledAt !== undefined ? { pulledAt } : {}),
  digest: `sha256:${'0'.repeat(64)}`,
  sizeBytes: 10,
  storedAt: new Date(sequence + 5).toISOString(),
});

// Three generations on two nodes (copies: 2) and an older ladder copy on one.
const gens = [
  copy(3000, 'n1'),
  copy(3000, 'n2'),
  copy(2000, 'n1'),
  copy(2000, 'n2'),
  copy(1000, 'n1'),
  copy(100, 'n1'),
];

describe('chooseGeneration', () => {
  it('takes the newest by default', () => {
    expect(chooseGeneration(gens, {})).toEqual({ copy: gens[0] });
    expect(chooseGeneration(gens, { from: 'Newest' })).toEqual({ copy: gens[0] });
  });

  it('counts a generation held on several nodes once', () => {
    expect(chooseGeneration(gens, { from: 'Index', index: 1 })).toMatchObject({ copy: { sequence: 2000 } });
    expect(chooseGeneration(gens, { from: 'Index', index: 3 })).toMatchObject({ copy: { sequence: 100 } });
  });

  it('names the allowed range for an index past the oldest', () => {
    expect(chooseGeneration(gens, { from: 'Index', index: 4 })).toEqual({
      error: 'index 4 is past the oldest stored generation; allowed: 0 to 3',
    });
  });

  it('takes the newest pulled strictly before a time, by pull time (storage time for older copies)', () => {
    const before = (ms: number) => ({ from: 'Before' as const, before: new Date(ms).toISOString() });
    expect(chooseGeneration(gens, before(2500))).toMatchObject({ copy: { sequence: 2000 } });
    expect(chooseGeneration(gens, before(2000))).toMatchObject({ copy: { sequence: 1000 } });
    expect(chooseGeneration([copy(500, 'n1', undefined)], before(506))).toMatchObject({
      copy: { sequence: 500 },
    });
    expect(chooseGeneration(gens, before(50))).toEqual({
      error:
        'no generation was pulled before 1970-01-01T00:00:00.050Z; the oldest stored is from 1970-01-01T00:00:00.100Z',
    });
  });

  it('says when nothing is stored', () => {
    expect(chooseGeneration([], {})).toEqual({
      error: 'no generation is stored on a node whose helper is Ready',
    });
  });
});
