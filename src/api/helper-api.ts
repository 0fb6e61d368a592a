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
  'namespace' | 'policy' | 'policyUID' | 'pod' | 'podUID' | 'sequence' | 'restartCount'
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
