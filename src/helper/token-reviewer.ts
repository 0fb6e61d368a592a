import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';

export type Verdict = { ok: true; user: string } | { ok: false; status: 401 | 403; message: string };

export interface TokenReviewerOptions {
  /** The identities let in, `system:serviceaccount:<namespace>:<name>`. */
  allowedUsers: string[];
  /** The audience a token must be for; absent: the API server's own (any token it accepts). */
  audience?: string;
  /** How long an answer is reused; the API server is asked again after that. */
  cacheMs: number;
  /** Upper bound of cached answers, so garbage tokens cannot grow memory without limit. */
  maxEntries?: number;
}

/**
 * Checks bearer tokens with the TokenReview API and admits only the operator's own ServiceAccounts. Answers are
 * cached briefly by a hash of the token (never the token itself), so a pull every second does not mean a
 * TokenReview every second.
 */
export class TokenReviewer {
  private cache = new Map<string, { verdict: Verdict; expires: number }>();
  private api: AuthenticationV1Api;

  constructor(
    kc: KubeConfig,
    private readonly o: TokenReviewerOptions,
  ) {
    this.api = kc.makeApiClient(AuthenticationV1Api);
  }

  async review(authorization: string | undefined): Promise<Verdict> {
    const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) return { ok: false, status: 401, message: 'missing "Authorization: Bearer <token>" header' };
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.cache.get(key);
    if (hit && hit.expires > Date.now()) return hit.verdict;
    const verdict = await this.ask(token);
    if (this.cache.size >= (this.o.maxEntries ?? 1000)) this.cache.clear();
    this.cache.set(key, { verdict, expires: Date.now() + this.o.cacheMs });
    return verdict;
  }

  private async ask(token: string): Promise<Verdict> {
    const audiences = this.o.audience ? [this.o.audience] : undefined;
    const review = await this.api.createTokenReview({
      body: { spec: { token, ...(audiences ? { audiences } : {}) } },
    });
    const status = review.status;
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
    return { ok: true, user };
  }
}
