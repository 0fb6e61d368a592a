// Every name the operator shares with the cluster lives here, so a rename is one edit.

export const GROUP = 'pullstate.hitachienergy.com';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'PullStatePolicy';
export const PLURAL = 'pullstatepolicies';
export const CRD_FILE = 'crds/pullstate.hitachienergy.com_pullstatepolicies.yaml';
export const RESTORE_KIND = 'PullStateRestore';
export const RESTORE_PLURAL = 'pullstaterestores';

/** Annotations of the original research prototype (compatibility mode). */
export const ANNOTATION_PREFIX = 'hitachienergy.com/ps_';
export const ANNOTATIONS = {
  mode: 'hitachienergy.com/ps_mode',
  interval: 'hitachienergy.com/ps_interval',
  path: 'hitachienergy.com/ps_path',
  port: 'hitachienergy.com/ps_port',
} as const;
export type AnnotationName = keyof typeof ANNOTATIONS;

/** Workload kinds that may carry the compatibility annotations. */
export const ANNOTATED_KINDS = ['Deployment', 'StatefulSet'] as const;
export type AnnotatedKind = (typeof ANNOTATED_KINDS)[number];

export const LABELS = {
  /** On a PullStatePolicy the controller generated from annotations; the value is the workload kind. */
  managedBy: 'app.kubernetes.io/managed-by',
  managedFrom: `${GROUP}/managed-from`,
  /** On helper Pods, so the controller finds them. */
  component: 'app.kubernetes.io/component',
  name: 'app.kubernetes.io/name',
} as const;
export const MANAGED_BY_VALUE = 'pull-state-operator';
export const HELPER_COMPONENT = 'helper';

/** Pod readiness gate the controller sets True once the Pod's state is restored (or there is none). */
export const READINESS_GATE = `${GROUP}/restored`;

/** Node taint the controller owns while it has concluded a node failed. */
export const FENCE_TAINT = `${GROUP}/unreachable`;

export const CONDITION_TYPES = {
  ready: 'Ready',
  degraded: 'Degraded',
} as const;

export const REASONS = {
  // Ready
  checkpointing: 'Checkpointing',
  noPods: 'NoPodsSelected',
  waitingForCheckpoint: 'WaitingForFirstCheckpoint',
  // Degraded
  asExpected: 'AsExpected',
  invalidAnnotation: 'InvalidAnnotation',
  invalidSpec: 'InvalidSpec',
  pullFailed: 'PullFailed',
  stateTooLarge: 'StateTooLarge',
  /** Every target helper refused the copy for lack of space: the node's quota or the namespace's share. */
  storageFull: 'StorageFull',
  /** No node but the Pod's own has a Ready helper: nothing is checkpointed (policy sameNodeCopy: Never). */
  noTargetNode: 'NoTargetNode',
  /** Checkpoints kept on their Pod's own node (sameNodeCopy: WhenNoOtherNode): lost with that node. */
  sameNodeCopy: 'SameNodeCopy',
  helperUnavailable: 'HelperUnavailable',
  restoreFailed: 'RestoreFailed',
  /** Several containers and none named or listing the state port: the first is taken as the app. */
  appContainerGuessed: 'AppContainerGuessed',
  /** Pods this policy selects are protected by an older policy. */
  conflict: 'Conflict',
  /** Selected Pods use hostNetwork and the policy does not allow it: they stay unprotected. */
  hostNetworkRefused: 'HostNetworkRefused',
  // Readiness gate
  /** The gate of a Pod no policy protects was opened, so the Pod does not lose its traffic for good. */
  noPolicy: 'NoPolicy',
} as const;

export const OPERATOR_NAMESPACE = 'pull-state-operator-system';

/**
 * Response header an app may send with its state: an id that changes with every process start. A pull whose
 * id differs from the last copy's is a restart seen at once, before the API shows it.
 */
export const INSTANCE_HEADER = 'pull-state-instance';
/** What an instance id may be: printable, short (it is stored with every copy). */
export const INSTANCE_PATTERN = /^[\x21-\x7e]{1,128}$/;

/**
 * The workload a protected Pod belongs to, `<Kind>/<name>` in the Pod's namespace (`Deployment/web`,
 * `StatefulSet/db`, `Pod/<name>` for a Pod no controller owns). Copies carry it, and an orphaned copy goes
 * only into a replacement of the same workload: one policy over two Deployments never moves one's state
 * into the other's Pods.
 */
export const WORKLOAD_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,62}\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Base of the audiences of the tokens that call a helper. Each helper accepts only tokens for its own node's
 * audience (`helperAudience`): the API server refuses them, and a token captured at one helper is refused by
 * every other one.
 */
export const HELPER_AUDIENCE = `${GROUP}/helper`;

/** The only audience the helper on `node` accepts, for the audience base `base`. */
export function helperAudience(node: string, base: string = HELPER_AUDIENCE): string {
  return `${base}/node/${node}`;
}

/**
 * Helper serving certificates: each helper asks for one with a CertificateSigningRequest for this signer; the
 * leading controller checks it (the requester is a helper Pod, the IP its own) and signs it with the CA it
 * keeps in the Secret below. Clients trust only that CA, published in the ConfigMap below.
 */
export const HELPER_SIGNER_NAME = `${GROUP}/helper-serving`;
export const CA_SECRET_NAME = 'pull-state-ca';
export const CA_CONFIGMAP_NAME = 'pull-state-ca';
/** Key of the CA certificate in the ConfigMap (as in kube-root-ca.crt). */
export const CA_CONFIGMAP_KEY = 'ca.crt';
/** Plain HTTP port of the helper's /healthz, /readyz and /metrics; the API port (9500) is HTTPS only. */
export const HELPER_HEALTH_PORT = 9501;
