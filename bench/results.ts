// What each scenario returns, as it lands in .local/bench/latest.json (tools/readme-figures.ts reads it).
import type { Fault as TrialFault } from '../harness/failover.js';

/** A trial's fault; leader-partition is a partition of the node the controller leader and the app share. */
export type Fault = TrialFault | 'leader-partition';
export const FAULTS: Fault[] = ['crash', 'delete', 'partition', 'leader-partition'];

/** Per fault, each trial's fault-to-Ready time and lost updates, paired by index. */
export type FailoverResults = Record<Fault, { ms: number[]; lost: number[] }>;

/** Per state size (`1KiB`, …): the operator's copy against a raw copy, plain and over TLS. */
export type CheckpointResults = Record<
  string,
  { p50Ms: number; p90Ms: number; rawP50Ms: number; ratio: number; rawTlsP50Ms: number; ratioTls: number }
>;

export interface RaceSample {
  createToReadyMs: number;
  appAnswersMs: number;
  apiRestartMs: number;
  /** > 0: the app answered before the API showed the restart. */
  windowMs: number;
}

export interface ScaleResult {
  pods: number;
  stateBytes: number;
  loadAverage: number;
  cores: number;
  rssMiB: number;
  helperCoresMax: number;
  helperRssMiBMax: number;
  checkpointP50Ms: number;
  checkpointP99Ms: number;
  statusWritesPerPolicyPerMinute: number;
  pullsPerSecond: number;
  failedPullsPerSecond: number;
}
