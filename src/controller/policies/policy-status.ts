import {
  CONDITION_TYPES,
  REASONS,
  type PullStatePolicyCheckpoint,
  type PullStatePolicyStatus,
} from '../../api/index.js';
import { newestCopy, type CheckpointRecord } from '../checkpoints/checkpoint-book.js';
import { setCondition } from '../kube/conditions.js';

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
/** Checkpoints listed in status (the CRD's maxItems): a policy over thousands of Pods stays far below etcd's limit. */
export const MAX_LISTED_CHECKPOINTS = 50;

/**
 * Which records the status lists when there are more than it may hold (pure): failing Pods first (someone
 * should look), then gone ones (waiting for a replacement), then the oldest checkpoints, each by name.
 */
function worthALook(
  records: readonly CheckpointRecord[],
  protectedUIDs: ReadonlySet<string>,
): CheckpointRecord[] {
  // Keys computed once per record, not per comparison: the status is computed up to ten times a second for
  // a policy over hundreds of Pods, and the comparator ran newestCopy and Date.parse n log n times each.
  const keyed = records.map((r) => {
    const newest = newestCopy(r);
    return {
      r,
      rank: r.lastFailure ? 0 : !protectedUIDs.has(r.podUID) ? 1 : 2,
      time: newest ? Date.parse(newest.storedAt) || 0 : 0,
    };
  });
  return keyed
    .sort((a, b) => a.rank - b.rank || a.time - b.time || a.r.pod.localeCompare(b.r.pod))
    .slice(0, MAX_LISTED_CHECKPOINTS)
    .map((k) => k.r);
}

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

/** Every copy of the newest checkpoint is on the Pod's own node (sameNodeCopy: WhenNoOtherNode). */
function onOwnNodeOnly(r: CheckpointRecord): boolean {
  const newest = newestCopy(r);
  return (
    newest !== undefined &&
    r.podNode !== undefined &&
    [...r.copies.values()].filter((c) => c.sequence === newest.sequence).every((c) => c.node === r.podNode)
  );
}

/** The status a policy should have, from what the controller knows now (pure, so it is easy to test). */
export function buildStatus(i: StatusInput): PullStatePolicyStatus {
  const withCopies = i.records.filter((r) => newestCopy(r));
  const checkpoints = worthALook(withCopies, i.protectedUIDs)
    .map((r) => checkpointOf(r, !i.protectedUIDs.has(r.podUID)))
    .filter((c): c is PullStatePolicyCheckpoint => c !== undefined)
    .sort((a, b) => a.pod.localeCompare(b.pod) || a.podUID.localeCompare(b.podUID));
  const protectedRecords = i.records.filter((r) => i.protectedUIDs.has(r.podUID));
  const done = protectedRecords.filter((r) => r.copies.size > 0).length;
  const total = i.protectedUIDs.size;
  const failures = protectedRecords.filter((r) => r.lastFailure).sort((a, b) => a.pod.localeCompare(b.pod));
  const orphaned = withCopies.filter((r) => !i.protectedUIDs.has(r.podUID)).length;
  const sameNode = protectedRecords.filter(onOwnNodeOnly).sort((a, b) => a.pod.localeCompare(b.pod));

  let conditions = i.previous?.conditions ?? [];
  const set = (type: string, status: 'True' | 'False', reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message }, i.generation, i.now);
  };
  if (i.problem?.blocking) set(CONDITION_TYPES.ready, 'False', i.problem.reason, i.problem.message);
  else if (total === 0)
    set(
      CONDITION_TYPES.ready,
      'True',
      REASONS.noPods,
      i.problem?.reason === REASONS.conflict
        ? 'no Pod to protect: every running Pod it selects is protected by an older policy'
        : 'no running Pod matches the selector',
    );
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
  } else if (sameNode.length > 0) {
    const names = sameNode.slice(0, MAX_LISTED_FAILURES).map((r) => `${r.pod} on ${r.podNode}`);
    const more =
      sameNode.length > MAX_LISTED_FAILURES ? ` and ${sameNode.length - MAX_LISTED_FAILURES} more` : '';
    set(
      CONDITION_TYPES.degraded,
      'True',
      REASONS.sameNodeCopy,
      `${sameNode.length} of ${total} Pods have their checkpoint on their own node only (${names.join(', ')}${more}): ` +
        'no other node has a Ready helper; a crash or deletion of the Pod is restored, the loss of its node is not',
    );
  } else set(CONDITION_TYPES.degraded, 'False', REASONS.asExpected, 'every checkpoint is current');

  // Over every record, not only the listed ones (those are the oldest when there are many).
  const latest = withCopies.reduce<string | undefined>((m, r) => {
    const at = newestCopy(r)!.storedAt;
    return !m || at > m ? at : m;
  }, undefined);
  return {
    observedGeneration: i.generation,
    protectedPods: total,
    ...(latest ? { lastCheckpointTime: latest } : {}),
    conditions,
    checkpointSummary: {
      pods: withCopies.length + (total - done),
      current: done - failures.filter((r) => r.copies.size > 0).length,
      failing: failures.length,
      withoutCheckpoint: total - done,
      orphaned,
      listed: checkpoints.length,
    },
    checkpoints,
    ...(i.previous?.lastRestore ? { lastRestore: i.previous.lastRestore } : {}),
  };
}
