import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig, type V1TokenReviewStatus } from '@kubernetes/client-node';

/**
 * `node`: the node of the Pod the token is bound to (TokenReview's `authentication.kubernetes.io/node-name`,
 * Kubernetes 1.30+), when the token names one.
 */
export type Verdict =
  { ok: true; user: string; node?: string } | { ok: false; status: 401 | 403; message: string };

/** The extra TokenReview field that names the node of the Pod a token is bound to. */
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

export interface TokenReviewerOptions {
  /** The identities let in, `system:serviceaccount:<namespace>:<name>`. */
  allowedUsers: string[];
  /** The audience a token must be for; absent: the API server's own (any token it accepts). */
  audience?: string;
  /** How long an answer is reused; the API server is asked again after that. */
  cacheMs: number;
  /** Upper bound of remembered tokens of each kind (admitted, refused), so garbage cannot grow memory. */
  maxEntries?: number;
  /**
   * How long after its last successful review a token that was admitted stays admitted while the API server
   * cannot be asked (never past the token's own `exp`). Copies matter most exactly when the control plane
   * is in trouble; a refused or unknown token gets no grace.
   */
  graceMs?: number;
  /** The TokenReview call; tests pass their own. */
  createTokenReview?: (
    token: string,
    audiences: string[] | undefined,
  ) => Promise<V1TokenReviewStatus | undefined>;
  now?: () => number;
  /** Longest wait for one TokenReview (default REVIEW_TIMEOUT_MS). */
  reviewTimeoutMs?: number;
}

interface Admitted {
  user: string;
  node?: string;
  /** Reused without asking until then. */
  expires: number;
  /** When the API server last confirmed it: the grace counts from there. */
  reviewedAt: number;
  /** The token's own expiry (JWT `exp`), if it has one. */
  tokenExpires: number;
}

const DEFAULT_GRACE_MS = 5 * 60_000;
/**
 * A TokenReview that takes longer counts as the API server unreachable: a control plane cut off by dropped
 * packets never answers, and every request with that token would wait on the one merged review.
 */
export const REVIEW_TIMEOUT_MS = 5000;

/**
 * Checks bearer tokens with the TokenReview API and admits only the operator's own ServiceAccounts. Answers are
 * cached briefly by a hash of the token (never the token itself), so a pull every second does not mean a
 * TokenReview every second. Admitted and refused tokens are kept apart, each bounded with the oldest
 * dropped first: random tokens fill only the refused side and cannot push out the operator's own. Concurrent
 * requests with one token share one review.
 */
export class TokenReviewer {
  private admitted = new Map<string, Admitted>();
  private refused = new Map<string, { verdict: Verdict; expires: number }>();
  private inflight = new Map<string, Promise<Verdict>>();
  private readonly create: NonNullable<TokenReviewerOptions['createTokenReview']>;
  private readonly now: () => number;

  constructor(
    kc: KubeConfig | undefined,
    private readonly o: TokenReviewerOptions,
  ) {
    this.now = o.now ?? Date.now;
    if (o.createTokenReview) this.create = o.createTokenReview;
    else {
      if (!kc) throw new Error('TokenReviewer needs a KubeConfig or createTokenReview');
      const api = kc.makeApiClient(AuthenticationV1Api);
      this.create = async (token, audiences) =>
        (await api.createTokenReview({ body: { spec: { token, ...(audiences ? { audiences } : {}) } } }))
          .status;
    }
  }

  async review(authorization: string | undefined): Promise<Verdict> {
    const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) return { ok: false, status: 401, message: 'missing "Authorization: Bearer <token>" header' };
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.now();
    const known = this.admitted.get(key);
    if (known && known.expires > now && known.tokenExpires > now) return admittedVerdict(known);
    const no = this.refused.get(key);
    if (no && no.expires > now) return no.verdict;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.reviewNow(key, token).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return await pending;
  }

  private async reviewNow(key: string, token: string): Promise<Verdict> {
    let verdict: Verdict;
    try {
      verdict = await withTimeout(this.ask(token), this.o.reviewTimeoutMs ?? REVIEW_TIMEOUT_MS);
    } catch (err) {
      // The API server cannot be asked: a token it confirmed lately keeps working for a bounded time.
      const known = this.admitted.get(key);
      const now = this.now();
      if (known && now - known.reviewedAt < (this.o.graceMs ?? DEFAULT_GRACE_MS) && known.tokenExpires > now)
        return admittedVerdict(known);
      throw err;
    }
    const now = this.now();
    if (verdict.ok) {
      this.refused.delete(key);
      remember(this.admitted, key, this.o.maxEntries, {
        user: verdict.user,
        ...(verdict.node !== undefined ? { node: verdict.node } : {}),
        expires: now + this.o.cacheMs,
        reviewedAt: now,
        tokenExpires: jwtExpiry(token),
      });
    } else {
      this.admitted.delete(key);
      remember(this.refused, key, this.o.maxEntries, { verdict, expires: now + this.o.cacheMs });
    }
    return verdict;
  }

  private async ask(token: string): Promise<Verdict> {
    const audiences = this.o.audience ? [this.o.audience] : undefined;
    const status = await this.create(token, audiences);
    if (!status?.authenticated) {
      const why = this.o.audience ? ` (a token for the audience ${this.o.audience} is needed)` : '';
      return {
        ok: false,
        status: 401,
        message: `token rejected${status?.error ? `: ${status.error}` : ''}${why}`,
      };
    }
    if (this.o.audience && !(status.audiences ?? []).includes(this.o.audience)) {
      return { ok: false, status: 401, message: `token is not for the audience ${this.o.audience}` };
    }
    const user = status.user?.username ?? '';
    if (!this.o.allowedUsers.includes(user)) {
      return {
        ok: false,
        status: 403,
        message: `${user} may not use the helper; only ${this.o.allowedUsers.join(' and ')} may`,
      };
    }
    const node = status.user?.extra?.[NODE_NAME_EXTRA]?.[0];
    return node ? { ok: true, user, node } : { ok: true, user };
  }
}

const admittedVerdict = (a: Admitted): Verdict =>
  a.node !== undefined ? { ok: true, user: a.user, node: a.node } : { ok: true, user: a.user };

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`TokenReview took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Adds an entry, dropping the oldest first when full (a Map iterates in insertion order). */
function remember<V>(map: Map<string, V>, key: string, max = 1000, value: V): void {
  map.delete(key);
  while (map.size >= max) map.delete(map.keys().next().value as string);
  map.set(key, value);
}

/**
 * The `exp` of a JWT in milliseconds, read without checking the signature (the API server checked it): only
 * to bound the grace. Infinity when the token is no JWT or has no `exp`.
 */
export function jwtExpiry(token: string): number {
  const payload = token.split('.')[1];
  if (!payload) return Infinity;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : Infinity;
  } catch {
    return Infinity;
  }
}
