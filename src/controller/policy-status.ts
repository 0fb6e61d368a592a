import {
  CONDITION_TYPES,
  REASONS,
  type PullStatePolicyCheckpoint,
  type PullStatePolicyStatus,
} from '../api/index.js';
import { newestCopy, type CheckpointRecord } from './checkpoint-book.js';
import { setCondition } from './conditions.js';

export interface StatusInput {
  generation: number;
  previous: PullStatePolicyStatus | undefined;
  /** UIDs of the Pods the policy protects now. */
  protectedUIDs: ReadonlySet<string>;
  records: readonly CheckpointRecord[];
  /** A problem with the policy itself (invalid spec or annotations): Degraded, and not Ready if it stops work. */
  problem?: { reason: string; message: string; blocking: boolean };
  now: Date;
}

const MAX_LISTED_FAILURES = 3;

function checkpointOf(r: CheckpointRecord, orphaned: boolean): PullStatePolicyCheckpoint | undefined {
  const newest = newestCopy(r);
  if (!newest) return undefined;
  const nodes = [...r.copies.values()]
    .filter((c) => c.sequence === newest.sequence)
    .map((c) => c.node)
    .sort();
  return {
    pod: r.pod,
    podUID: r.podUID,
    node: newest.node,
    nodes,
    sizeBytes: newest.sizeBytes,
    timestamp: newest.storedAt,
    sequence: newest.sequence,
    digest: newest.digest,
    ...(orphaned ? { orphaned: true } : {}),
  };
}

/** The status a policy should have, from what the controller knows now (pure, so it is easy to test). */
export function buildStatus(i: StatusInput): PullStatePolicyStatus {
  const checkpoints = i.records
    .map((r) => checkpointOf(r, !i.protectedUIDs.has(r.podUID)))
    .filter((c): c is PullStatePolicyCheckpoint => c !== undefined)
    .sort((a, b) => a.pod.localeCompare(b.pod) || a.podUID.localeCompare(b.podUID));
  const protectedRecords = i.records.filter((r) => i.protectedUIDs.has(r.podUID));
  const done = protectedRecords.filter((r) => r.copies.size > 0).length;
  const total = i.protectedUIDs.size;
  const failures = protectedRecords.filter((r) => r.lastFailure).sort((a, b) => a.pod.localeCompare(b.pod));

  let conditions = i.previous?.conditions ?? [];
  const set = (type: string, status: 'True' | 'False', reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message }, i.generation, i.now);
  };
  if (i.problem?.blocking) set(CONDITION_TYPES.ready, 'False', i.problem.reason, i.problem.message);
  else if (total === 0)
    set(CONDITION_TYPES.ready, 'True', REASONS.noPods, 'no running Pod matches the selector');
  else if (done === total)
    set(CONDITION_TYPES.ready, 'True', REASONS.checkpointing, `${done} of ${total} Pods have a checkpoint`);
  else
    set(
      CONDITION_TYPES.ready,
      'False',
      REASONS.waitingForCheckpoint,
      `${done} of ${total} Pods have a checkpoint`,
    );

  if (i.problem) set(CONDITION_TYPES.degraded, 'True', i.problem.reason, i.problem.message);
  else if (failures.length > 0) {
    const listed = failures
      .slice(0, MAX_LISTED_FAILURES)
      .map((r) => `Pod ${r.pod}: ${r.lastFailure!.message}`);
    const more =
      failures.length > MAX_LISTED_FAILURES ? ` (and ${failures.length - MAX_LISTED_FAILURES} more)` : '';
    set(
      CONDITION_TYPES.degraded,
      'True',
      failures[0]!.lastFailure!.reason,
      `${listed.join('; ')}${more}; last good checkpoints are kept`,
    );
  } else set(CONDITION_TYPES.degraded, 'False', REASONS.asExpected, 'every checkpoint is current');

  const latest = checkpoints.reduce<string | undefined>(
    (m, c) => (!m || c.timestamp > m ? c.timestamp : m),
    undefined,
  );
  return {
    observedGeneration: i.generation,
    protectedPods: total,
    ...(latest ? { lastCheckpointTime: latest } : {}),
    conditions,
    checkpoints,
    ...(i.previous?.lastRestore ? { lastRestore: i.previous.lastRestore } : {}),
  };
}
