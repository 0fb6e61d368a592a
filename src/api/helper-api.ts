// The helper's wire contract: what the controller sends and what the helper answers, versioned with the path
// prefix. Both sides import it from here; neither imports the other's code.

/** Path prefix of the helper's API version. */
export const HELPER_API = '/v1';

/** Inventory answer of `GET /v1/blobs`. */
export interface Inventory {
  node: string;
  usedBytes: number;
  quotaBytes: number;
  blobs: BlobMeta[];
}

/** Body of `POST /v1/blobs/:namespace/:podUID/restore`. */
export interface RestoreRequest {
  podIP: string;
  port: number;
  path: string;
  timeoutMs: number;
  /** The generation to restore; the newest when absent. */
  sequence?: number;
  /** The process the state is for: a second request for the same one is answered without a second push. */
  target?: RestoreTargetProcess;
  /** The Pod uses hostNetwork and its policy allows that: only then may `podIP` be the helper's node. */
  hostNetwork?: boolean;
}

/**
 * Body of `POST /v1/probe`: the leader asks a helper to probe the helper of another node (SWIM's indirect
 * probe), so a node is judged lost only when it is silent from more than one vantage point. The helper probes
 * only `GET /readyz` on its own health port at `ip`: the caller picks the address, never port or path.
 */
export interface PeerProbeRequest {
  /** The node whose helper is suspect (for the helper's logs and to refuse probing itself). */
  node: string;
  /** That helper's Pod IP. */
  ip: string;
  timeoutMs?: number;
}

/**
 * Answer of `POST /v1/probe`: what the probe saw (a `ProbeOutcome`). Only `unreachable` is silence; any
 * other value is an answer, or at least an attempt that did not meet silence.
 */
export interface PeerProbeAnswer {
  outcome: string;
}

/** Answer of a restore: the push's result, the generation pushed, and whether it had been pushed before. */
export type RestoreResult = PushResult & {
  sequence: number;
  digest: string;
  sizeBytes: number;
  alreadyRestored?: boolean;
};

/** What the helper knows about one stored state copy (one generation of a Pod's checkpoint). */
export interface BlobMeta {
  /** Stable key of the Pod's checkpoint: `<namespace>_<podUID>`; its generations share it. */
  id: string;
  namespace: string;
  /** The PullStatePolicy that protects the Pod, so an orphaned copy can be matched to a replacement. */
  policy: string;
  /** UID of that policy: a policy deleted and created again under the same name does not inherit copies. */
  policyUID: string;
  pod: string;
  podUID: string;
  /**
   * The Pod's workload (`WORKLOAD_PATTERN`): an orphaned copy goes only into a replacement of the same one.
   * Absent in copies of older versions, which are then restored into no new Pod.
   */
  workload?: string;
  sequence: number;
  /** Container restarts of the Pod when its state was pulled: a higher count later means it restarted since. */
  restartCount?: number;
  /** When the controller sent the GET (ms since the epoch): a copy is from a process started before this. */
  pulledAt?: number;
  /** The app's process identity (`Pull-State-Instance` header), if it sends one. */
  instance?: string;
  sizeBytes: number;
  digest: string;
  contentType: string;
  storedAt: string;
}

/** When a copy's state was read from the app: its pull time, or (copies of older helpers) when it was stored. */
export const pullTime = (m: Pick<BlobMeta, 'pulledAt' | 'storedAt'>): number =>
  m.pulledAt ?? (Date.parse(m.storedAt) || 0);

/** What the controller sends with a copy (the PUT's query). */
export type CopyFields = Pick<
  BlobMeta,
  'namespace' | 'policy' | 'policyUID' | 'pod' | 'podUID' | 'workload' | 'sequence' | 'restartCount'
>;

/** A PUT's answer: the copy, and the generations the helper keeps of the Pod now. */
export type StoredCopy = BlobMeta & { kept?: number[] };

/**
 * The process a restore is meant for: a Pod and which of its starts, by the app's process identity when the
 * controller knows it (a process can restart without the container restarting), else the restart count.
 */
export interface RestoreTargetProcess {
  podUID: string;
  restartCount: number;
  instance?: string;
}

export type PushResult =
  | {
      result: 'Succeeded';
      status: number;
      durationMs: number;
      /** The process identity the app answered with, so the controller knows which process has the state. */
      instance?: string;
    }
  | {
      result: 'Failed';
      reason: 'Unreachable' | 'Rejected' | 'Timeout';
      status?: number;
      message: string;
      durationMs: number;
    };

/**
 * Why a pull stored nothing. Restarted: a new process answered; its (start) state must not replace the copies.
 * StorageFull: every target helper refused the copy for lack of space (its quota or the namespace's share).
 */
export type PullFailureReason =
  | 'PullFailed'
  | 'StateTooLarge'
  | 'HelperUnavailable'
  /** The assignment names no helper to hold the copy: no node but the Pod's own has a Ready one. */
  | 'NoTargetNode'
  | 'StorageFull'
  | 'Restarted';

/** A helper of another node that receives a copy. */
export interface CopyTarget {
  node: string;
  url: string;
}

/**
 * One Pod a node's helper pulls on its own timer (`PUT /v1/assignments` carries all of a node's) or once
 * (`POST /v1/pulls`). The controller decides what is pulled and where the copies go; the bytes stay between
 * the Pod, its node's helper and the target helpers.
 */
export interface PullAssignment {
  namespace: string;
  policy: string;
  policyUID: string;
  pod: string;
  podUID: string;
  /** The Pod's workload (`WORKLOAD_PATTERN`), carried into every copy. */
  workload?: string;
  podIP: string;
  /** The Pod uses hostNetwork and its policy allows that: only then may `podIP` be the helper's node. */
  hostNetwork?: boolean;
  port: number;
  path: string;
  intervalMs: number;
  timeoutMs: number;
  maxBytes: number;
  restartCount: number;
  targets: CopyTarget[];
  /**
   * The process identity of the copies as the controller knows it. A new value is the controller's decision
   * (a restore put another process's state in place) and replaces what the helper learnt from its pulls.
   */
  instance?: string;
  /** The highest sequence the controller has seen: a restarted helper continues above it. */
  lastSequence: number;
  /** Not pulled (nor probed) while true: the Pod's restore is not settled, its state must not overwrite the copies. */
  paused?: boolean;
  /** Fast failover (`http-sf`): the helper probes the Pod and reports a run of failed probes at once. */
  probe?: ProbeSpec;
}

/** How a helper probes a Pod of its node (the Pod's liveness httpGet, else its state path). */
export interface ProbeSpec {
  port: number;
  path: string;
  periodMs: number;
  failureThreshold: number;
}

/** `failures` probes in a row of a Pod that had answered since its start failed: the Pod has failed. */
export interface PodFault {
  namespace: string;
  podUID: string;
  failures: number;
  /** The Pod's restart count as the helper knew it (a restart since then is the kubelet's business). */
  restartCount: number;
  message: string;
}

/** Body of `PUT /v1/assignments`: the complete set for the helper's node (a Pod not in it is not pulled). */
export interface AssignmentSet {
  pods: PullAssignment[];
}

/**
 * A Pod whose copies a helper keeps, and the node whose helper pulls it: the only helper that may send them.
 * The controller sends each helper its complete list (`PUT /v1/holds`); a helper that has one refuses copies
 * of any other Pod, and copies from another node's helper (when the token names its node).
 */
export interface CopyHold {
  namespace: string;
  podUID: string;
  node: string;
}

/** Body of `PUT /v1/holds`. */
export interface HoldSet {
  holds: CopyHold[];
}

/** What one pull did, reported to the controller (metadata only, never state bytes). */
export type PullOutcome =
  | {
      ok: true;
      sizeBytes: number;
      digest: string;
      contentType: string;
      /** The app's process identity, if it sent one. */
      instance?: string;
      stored: { node: string; meta: StoredCopy }[];
      failed: { node: string; message: string }[];
      durationMs: number;
    }
  | {
      ok: false;
      reason: PullFailureReason;
      message: string;
      /** With reason Restarted: the new process's identity. */
      instance?: string;
      failed?: { node: string; message: string }[];
      durationMs: number;
    };

/** A pull's outcome with the Pod and generation it was for and the nodes the copies were sent to. */
export type PullReport = PullOutcome & {
  namespace: string;
  podUID: string;
  sequence: number;
  targets: string[];
  /** When the GET was sent (ms since the epoch). */
  pulledAt: number;
};

/**
 * Answer of `GET /v1/reports?after=<cursor>&boot=<id>&waitMs=<ms>` (a long poll): the reports after the
 * cursor. `boot` changes when the helper restarts (its assignments are gone, the cursor starts again);
 * `missed` counts reports dropped because the caller fell too far behind.
 */
export interface ReportBatch {
  boot: string;
  cursor: number;
  reports: PullReport[];
  /** Pods whose probes failed (always sent at once). */
  faults?: PodFault[];
  missed?: number;
}
