// A checkpoint record with copies (node, sequence) for the pure-logic tests.
import type { CheckpointRecord } from '../../../src/controller/checkpoints/checkpoint-book.js';
import { addCopy } from '../../../src/controller/checkpoints/checkpoint-book.js';

export function record(
  pod: string,
  copies: [string, number][],
  extra: Partial<CheckpointRecord> = {},
): CheckpointRecord {
  const r: CheckpointRecord = {
    namespace: 'ns',
    policy: 'p',
    pod,
    podUID: `uid-${pod}`,
    workload: 'Deployment/app',
    copies: new Map(),
    generations: [],
    lastSequence: 0,
    ...extra,
  };
  for (const [node, sequence] of copies)
    addCopy(r, {
      node,
      sequence,
      digest: `sha256:${'a'.repeat(64)}`,
      sizeBytes: 10,
      storedAt: new Date(sequence).toISOString(),
    });
  return r;
}
