import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { helperAudience } from '../api/constants.js';

/** The `Authorization` header value to send to the helper of one node. */
export interface HelperCredentials {
  header(node: string): Promise<string>;
}

/** How often the kubeconfig's token is re-read (an exec plugin or a rotated file may change it). */
const KUBECONFIG_REFRESH_MS = 60_000;

/**
 * The kubeconfig's own credentials, the same for every helper: for a process running outside the cluster
 * (development). It is a token for the API server, which helpers that require their audience refuse.
 */
export class KubeconfigCredentials implements HelperCredentials {
  private token?: { value: string; at: number };

  constructor(private readonly kc: KubeConfig) {}

  async header(): Promise<string> {
    if (this.token && Date.now() - this.token.at < KUBECONFIG_REFRESH_MS) return this.token.value;
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const value = (opts.headers as Record<string, string> | undefined)?.Authorization ?? '';
    this.token = { value, at: Date.now() };
    return value;
  }
}

/** A token the API server issued: its value and when it expires (ms since the epoch). */
export interface IssuedToken {
  token: string;
  expiresAt: number;
}

export interface AudienceTokensOptions {
  /** The audience that only the helper of `node` accepts. */
  audience: (node: string) => string;
  /** Asks the API server for a token for one audience (a TokenRequest). */
  request: (audience: string) => Promise<IssuedToken>;
  now?: () => number;
  /** Nodes whose token is remembered at once (the oldest are dropped first). */
  maxEntries?: number;
  /** Longest wait for one TokenRequest (default 5 s): a caller without a usable token waits at most this. */
  timeoutMs?: number;
}

/** A token is renewed after this part of its lifetime, as the kubelet does for projected tokens. */
const RENEW_AT = 0.8;
/** A token this close to its expiry is not sent any more (clocks differ a little). */
const EXPIRY_MARGIN_MS = 10_000;
const REQUEST_TIMEOUT_MS = 5000;
/** After a failed TokenRequest, the next one waits 1 s, doubling up to a minute. */
const RETRY_MS = 1000;
const MAX_RETRY_MS = 60_000;

interface Kept {
  value: string;
  renewAt: number;
  expiresAt: number;
}

/**
 * One token per target helper, each for an audience that only that helper accepts: a token captured at one
 * helper (a compromised node reads what is sent to it) is refused by every other helper and by the API server.
 * A token is renewed in the background from 80 % of its lifetime, so callers wait for the API server only when
 * they have no usable token, and then at most `timeoutMs`; concurrent requests for one node share one
 * TokenRequest, and after a failure the next waits (1 s, doubling to a minute), so an unreachable API server
 * is not asked once per call.
 */
export class AudienceTokens implements HelperCredentials {
  private kept = new Map<string, Kept>();
  private inflight = new Map<string, Promise<string>>();
  private failed = new Map<string, { error: Error; retryAt: number; failures: number }>();
  private readonly now: () => number;

  constructor(private readonly o: AudienceTokensOptions) {
    this.now = o.now ?? Date.now;
  }

  async header(node: string): Promise<string> {
    const audience = this.o.audience(node);
    const kept = this.kept.get(audience);
    const now = this.now();
    if (kept && now < kept.renewAt) return kept.value;
    const failed = this.failed.get(audience);
    const waiting = failed !== undefined && now < failed.retryAt;
    if (kept && now < kept.expiresAt - EXPIRY_MARGIN_MS) {
      if (!waiting) this.renew(audience).catch(() => undefined);
      return kept.value;
    }
    if (waiting) throw failed.error;
    return await this.renew(audience);
  }

  private renew(audience: string): Promise<string> {
    let pending = this.inflight.get(audience);
    if (!pending) {
      pending = this.issue(audience).finally(() => this.inflight.delete(audience));
      this.inflight.set(audience, pending);
    }
    return pending;
  }

  private async issue(audience: string): Promise<string> {
    const issuedAt = this.now();
    let issued: IssuedToken;
    try {
      issued = await withTimeout(this.o.request(audience), this.o.timeoutMs ?? REQUEST_TIMEOUT_MS);
    } catch (err) {
      const failures = (this.failed.get(audience)?.failures ?? 0) + 1;
      const error = new Error(
        `could not get a token for the audience ${audience}: ${(err as Error).message}`,
      );
      this.failed.set(audience, {
        error,
        failures,
        retryAt: this.now() + Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** (failures - 1)),
      });
      while (this.failed.size > (this.o.maxEntries ?? 10_000))
        this.failed.delete(this.failed.keys().next().value!);
      throw error;
    }
    this.failed.delete(audience);
    const value = `Bearer ${issued.token}`;
    this.kept.delete(audience);
    this.kept.set(audience, {
      value,
      renewAt: issuedAt + (issued.expiresAt - issuedAt) * RENEW_AT,
      expiresAt: issued.expiresAt,
    });
    const max = this.o.maxEntries ?? 10_000;
    while (this.kept.size > max) this.kept.delete(this.kept.keys().next().value!);
    return value;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e as Error)),
    );
  });
}

/** The ServiceAccount and Pod a process runs as: its tokens are bound to the Pod and die with it. */
export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
  pod: { name: string; uid: string };
}

/** Lifetime asked for; the API server may shorten it (`--service-account-max-token-expiration`). */
const TOKEN_SECONDS = 3600;

/**
 * TokenRequests for this Pod's own ServiceAccount, bound to the Pod: the API server adds the Pod's node
 * (`authentication.kubernetes.io/node-name`), which a helper checks against where a copy comes from.
 */
export function podTokenRequest(kc: KubeConfig, id: PodIdentity): (audience: string) => Promise<IssuedToken> {
  const core = kc.makeApiClient(CoreV1Api);
  return async (audience) => {
    const answer = await core.createNamespacedServiceAccountToken({
      name: id.serviceAccount,
      namespace: id.namespace,
      body: {
        spec: {
          audiences: [audience],
          expirationSeconds: TOKEN_SECONDS,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: id.pod.name, uid: id.pod.uid },
        },
      },
    });
    const token = answer.status?.token;
    if (!token) throw new Error('the TokenRequest answer has no token');
    const expires = answer.status?.expirationTimestamp;
    return { token, expiresAt: expires ? new Date(expires).getTime() : Date.now() + TOKEN_SECONDS * 1000 };
  };
}

/**
 * What a process sends to the helpers: per-node tokens bound to its Pod when it runs in one and the helpers
 * require an audience (`base`), else the kubeconfig's credentials.
 */
export function helperCredentials(
  kc: KubeConfig,
  base: string,
  id: PodIdentity | undefined,
): HelperCredentials {
  if (!base || !id) return new KubeconfigCredentials(kc);
  return new AudienceTokens({
    audience: (node) => helperAudience(node, base),
    request: podTokenRequest(kc, id),
  });
}
