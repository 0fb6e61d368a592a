import { hostname } from 'node:os';
import { PooledKubeConfig } from '../kube/pooled-kube-config.js';
import Fastify from 'fastify';
import { HELPER_AUDIENCE, OPERATOR_NAMESPACE, helperAudience } from '../api/constants.js';
import { helperCredentials } from '../kube/bearer-token.js';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../cli/flags.js';
import { createLogger, errorMessage } from '../runtime/logger.js';
import { registerProbes } from '../runtime/probes.js';
import { IP_ADDRESS, wildcardAddress } from '../runtime/ip-address.js';
import { onShutdown } from '../runtime/shutdown.js';
import { handleProcessErrors } from '../runtime/process-errors.js';
import {
  LEADER_ELECTION_DEFAULTS,
  LEADER_ELECTION_RULE,
  LeaderElector,
  leaderElectionTimingsError,
} from './kube/leader-election.js';
import { Manager } from './manager.js';
import { ensureCertificateAuthority, readCertificateAuthority } from './certificates/ca-keeper.js';
import type { CertificateAuthority } from '../tls/pki.js';
import { createControllerMetrics } from './metrics.js';

/**
 * How long a stopping leader waits for its work in flight before it releases the Lease. Under the shutdown
 * hook's own 20 s limit (runtime/shutdown.ts), itself under the Pod's 30 s termination grace period: a
 * leader whose work did not end exits holding the Lease, which then expires by the standby's clock.
 */
const SHUTDOWN_DRAIN_MS = 15_000;

export const CONTROLLER_FLAGS = {
  'metrics-port': {
    kind: 'int',
    min: 1,
    max: 65535,
    default: 9090,
    env: 'METRICS_PORT',
    help: 'port of /metrics, /healthz and /readyz',
  },
  namespace: {
    kind: 'string',
    default: OPERATOR_NAMESPACE,
    env: 'POD_NAMESPACE',
    pattern: { test: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, allowed: 'a namespace name (DNS label)' },
    help: 'namespace of the operator: its Lease and its helper DaemonSet',
  },
  identity: {
    kind: 'string',
    default: hostname(),
    env: 'POD_NAME',
    help: "this replica's name in the leader Lease",
  },
  'leader-elect': {
    kind: 'bool',
    default: true,
    help: 'run leader election (turn off only with a single replica)',
  },
  'lease-name': { kind: 'string', default: 'pull-state-operator-leader', help: 'name of the leader Lease' },
  'lease-duration-seconds': {
    kind: 'int',
    min: 2,
    max: 600,
    default: LEADER_ELECTION_DEFAULTS.leaseDurationMs / 1000,
    help: `a standby takes over this long after the leader last renewed: what a node loss under the leader costs on top of any other (${LEADER_ELECTION_RULE})`,
  },
  'renew-deadline-ms': {
    kind: 'int',
    min: 100,
    max: 600_000,
    default: LEADER_ELECTION_DEFAULTS.renewDeadlineMs,
    help: 'the leader steps down (and exits) when it could not renew for this long: also the longest Lease update a loaded API server may take',
  },
  'retry-period-ms': {
    kind: 'int',
    min: 100,
    max: 600_000,
    default: LEADER_ELECTION_DEFAULTS.retryPeriodMs,
    help: 'how often the leader renews and a standby looks at the Lease',
  },
  'helper-token-audience': {
    kind: 'string',
    default: HELPER_AUDIENCE,
    env: 'HELPER_TOKEN_AUDIENCE',
    pattern: {
      test: /^\S{0,200}$/,
      allowed: "an audience without spaces, or empty for the kubeconfig's token",
    },
    help: `base of the helpers' token audiences, as their --token-audience: each call carries a token for "<base>/node/<node>", good at that node's helper only (${helperAudience('<node>')}); empty: the kubeconfig's token`,
  },
  'service-account': {
    kind: 'string',
    default: 'pull-state-controller',
    env: 'SERVICE_ACCOUNT_NAME',
    pattern: { test: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, allowed: 'a ServiceAccount name' },
    help: "this Pod's ServiceAccount (in --namespace): the helper tokens are requested for it",
  },
  'pod-uid': {
    kind: 'string',
    default: '',
    env: 'POD_UID',
    pattern: { test: /^[0-9a-f-]{36}$/, allowed: 'a Pod UID' },
    help: 'UID of this Pod (named by --identity): the helper tokens are bound to it and die with it; required unless --helper-token-audience is empty',
  },
  'pod-ip': {
    kind: 'string',
    default: '',
    env: 'POD_IP',
    pattern: {
      test: { test: (v: string) => v === '' || IP_ADDRESS.test(v) },
      allowed: 'an IPv4 or IPv6 address',
    },
    help: "this Pod's IP (status.podIP): its family decides whether the metrics port listens on IPv4 or IPv6 (IPv4 when empty)",
  },
  workers: { kind: 'int', min: 1, max: 100, default: 4, help: 'reconciles running at once' },
  'helper-service-account': {
    kind: 'string',
    default: 'pull-state-helper',
    env: 'HELPER_SERVICE_ACCOUNT',
    pattern: { test: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, allowed: 'a ServiceAccount name' },
    help: "the helpers' ServiceAccount (in --namespace): only its serving certificate requests are signed",
  },
  'helper-cert-seconds': {
    kind: 'int',
    min: 30,
    max: 366 * 86_400,
    default: 86_400,
    env: 'HELPER_CERT_SECONDS',
    help: "validity of the helpers' serving certificates; each helper renews at two thirds of it",
  },
  'orphan-retention-seconds': {
    kind: 'int',
    min: 1,
    max: 30 * 86_400,
    default: 3600,
    env: 'ORPHAN_RETENTION_SECONDS',
    help: 'how long copies of a vanished Pod are kept for a replacement',
  },
} satisfies FlagSpecs;

export const CONTROLLER_HELP = helpText(
  'pull-state-operator controller [flags]',
  "Watches PullStatePolicies (and annotated Deployments/StatefulSets), checkpoints the selected Pods' state to\nhelpers on other nodes, writes status and Events. Two replicas: one leads, one stands by.",
  CONTROLLER_FLAGS,
);

export async function runController(args: string[]): Promise<void> {
  const flags = parseFlags(args, CONTROLLER_FLAGS, process.env);
  const timings = {
    leaseDurationMs: flags['lease-duration-seconds'] * 1000,
    renewDeadlineMs: flags['renew-deadline-ms'],
    retryPeriodMs: flags['retry-period-ms'],
  };
  const unsafe = leaderElectionTimingsError(timings);
  if (unsafe)
    throw new UsageError(`--lease-duration-seconds, --renew-deadline-ms, --retry-period-ms: ${unsafe}`);
  // Never a silent fallback to the kubeconfig's token: that one opens the API server, not just the helpers.
  if (flags['helper-token-audience'] && !flags['pod-uid'])
    throw new UsageError(
      "--pod-uid (POD_UID) is needed: helper tokens are bound to this Pod; outside a Pod, set --helper-token-audience '' (and the helpers' --token-audience '')",
    );
  const log = createLogger('controller');
  handleProcessErrors(log);
  const metrics = createControllerMetrics();
  const kc = new PooledKubeConfig();
  kc.loadFromDefault();
  // The manager once built (a standby's too), and whether this replica leads; the probes and the shutdown
  // hook read them.
  const state: { manager?: Manager; leading: boolean } = { leading: false };
  const app = Fastify({ logger: false });
  registerProbes(app, metrics.registry, {
    healthy: () => true,
    // A standby is ready (it serves probes and waits); a leader once its caches are synced.
    notReadyBecause: () => (state.leading && !state.manager?.synced ? 'caches are syncing' : undefined),
  });
  await app.listen({ host: wildcardAddress(flags['pod-ip'] || undefined), port: flags['metrics-port'] });
  log.info('controller started', {
    identity: flags.identity,
    namespace: flags.namespace,
    metricsPort: flags['metrics-port'],
  });

  const elector = new LeaderElector({
    kc,
    namespace: flags.namespace,
    name: flags['lease-name'],
    identity: flags.identity,
    log,
    ...timings,
  });
  onShutdown(log, async () => {
    const drained = (await state.manager?.stop(SHUTDOWN_DRAIN_MS)) ?? true;
    if (drained) await elector.release();
    else
      log.warn('work of this term still in flight: the Lease is left to expire, not released', {
        waitedMs: SHUTDOWN_DRAIN_MS,
      });
    await app.close();
  });
  if (!flags['helper-token-audience'])
    log.warn("calling the helpers with the kubeconfig's token: only helpers without an audience accept it");
  const credentials = helperCredentials(
    kc,
    flags['helper-token-audience'],
    flags['helper-token-audience']
      ? {
          namespace: flags.namespace,
          serviceAccount: flags['service-account'],
          pod: { name: flags.identity, uid: flags['pod-uid'] },
        }
      : undefined,
  );
  const fail = (what: string) => (err: unknown) => {
    log.error(what, { error: errorMessage(err) });
    process.exit(1);
  };
  const build = (ca: CertificateAuthority) =>
    new Manager({
      kc,
      ca,
      helperUser: `system:serviceaccount:${flags.namespace}:${flags['helper-service-account']}`,
      helperCertValidityMs: flags['helper-cert-seconds'] * 1000,
      helperCredentials: credentials,
      log,
      metrics,
      operatorNamespace: flags.namespace,
      identity: flags.identity,
      workers: flags.workers,
      orphanRetentionMs: flags['orphan-retention-seconds'] * 1000,
      mayAct: () => !flags['leader-elect'] || elector.isLeading(),
    });
  // Before anything calls a helper: helpers are verified against this CA, and their certificates come from it.
  // Read (or, on a first install, created by whichever replica comes first) before the election, so a standby
  // is warm: caches synced and helpers probed when it takes over. Only the leader replaces or publishes it.
  const ca = await readCertificateAuthority(kc, flags.namespace, log).catch(
    fail('could not create or read the helper CA'),
  );
  let manager = build(ca);
  state.manager = manager;
  await manager.warm().catch(fail('controller failed to start'));
  if (flags['leader-elect']) {
    log.info('standing by: caches synced, helpers probed', { lease: flags['lease-name'] });
    await elector.run(() => {
      // As controller-runtime does: a replica that lost the Lease exits and comes back as a clean standby.
      log.error('leadership lost, exiting');
      process.exit(1);
    });
  }
  state.leading = true;
  metrics.leader.set(1);
  // The leader's own: replaced if near its end, published; the previous leader may have replaced it while this
  // replica stood by.
  const current = await ensureCertificateAuthority(kc, flags.namespace, log).catch(
    fail('could not create or read the helper CA'),
  );
  if (current.certPem !== ca.certPem) {
    log.info('the helper CA changed while standing by: starting again with the new one');
    await manager.stop();
    manager = build(current);
    state.manager = manager;
    await manager.warm().catch(fail('controller failed to start'));
  }
  await manager.lead().catch(fail('controller failed to start'));
}
