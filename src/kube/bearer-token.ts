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
}

/** A token is renewed after this part of its lifetime, as the kubelet does for projected tokens. */
const RENEW_AT = 0.8;
/** A token this close to its expiry is not sent any more (clocks differ a little). */
const EXPIRY_MARGIN_MS = 10_000;

interface Kept {
  value: string;
  renewAt: number;
  expiresAt: number;
}

/**
 * One token per target helper, each for an audience that only that helper accepts: a token captured at one
 * helper (a compromised node reads what is sent to it) is refused by every other helper and by the API server.
 * Tokens are kept until 80 % of their lifetime, concurrent requests for one node share one TokenRequest, and
 * while the API server cannot issue a new one a kept token is used until shortly before it expires.
 */
export class AudienceTokens implements HelperCredentials {
  private kept = new Map<string, Kept>();
  private inflight = new Map<string, Promise<string>>();
  private readonly now: () => number;

  constructor(private readonly o: AudienceTokensOptions) {
    this.now = o.now ?? Date.now;
  }

  async header(node: string): Promise<string> {
    const audience = this.o.audience(node);
    const kept = this.kept.get(audience);
    if (kept && this.now() < kept.renewAt) return kept.value;
    let pending = this.inflight.get(audience);
    if (!pending) {
      pending = this.issue(audience, kept).finally(() => this.inflight.delete(audience));
      this.inflight.set(audience, pending);
    }
    return await pending;
  }

  private async issue(audience: string, kept: Kept | undefined): Promise<string> {
    const issuedAt = this.now();
    let issued: IssuedToken;
    try {
      issued = await this.o.request(audience);
    } catch (err) {
      if (kept && this.now() < kept.expiresAt - EXPIRY_MARGIN_MS) return kept.value;
      throw new Error(`could not get a token for the audience ${audience}: ${(err as Error).message}`);
    }
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
