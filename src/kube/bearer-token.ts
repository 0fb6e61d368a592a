import type { KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';

/** How often the bearer token is re-read (projected ServiceAccount tokens rotate). */
const TOKEN_REFRESH_MS = 60_000;

/**
 * The `Authorization` header value of this process's own identity (its ServiceAccount token in a cluster),
 * re-read from the kubeconfig's source every minute so a rotated token is picked up.
 */
export class BearerToken {
  private token?: { value: string; at: number };

  constructor(private readonly kc: KubeConfig) {}

  async header(): Promise<string> {
    if (this.token && Date.now() - this.token.at < TOKEN_REFRESH_MS) return this.token.value;
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const value = (opts.headers as Record<string, string> | undefined)?.Authorization ?? '';
    this.token = { value, at: Date.now() };
    return value;
  }
}
