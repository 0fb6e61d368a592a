import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';

/** How often the token is re-read (projected ServiceAccount tokens rotate; the kubelet renews them at 80 %). */
const TOKEN_REFRESH_MS = 60_000;

/**
 * The `Authorization` header value of this process's identity, re-read every minute so a rotated token is
 * picked up: from a token file (a projected ServiceAccount token for one audience), or else from the
 * kubeconfig (the API server's audience; helpers that require theirs refuse it).
 */
export class BearerToken {
  private token?: { value: string; at: number };

  constructor(private readonly source: { file: string } | { kubeConfig: KubeConfig }) {}

  async header(): Promise<string> {
    if (this.token && Date.now() - this.token.at < TOKEN_REFRESH_MS) return this.token.value;
    let value: string;
    if ('file' in this.source) value = `Bearer ${(await readFile(this.source.file, 'utf8')).trim()}`;
    else {
      const opts: RequestOptions = {};
      await this.source.kubeConfig.applyToHTTPSOptions(opts);
      value = (opts.headers as Record<string, string> | undefined)?.Authorization ?? '';
    }
    this.token = { value, at: Date.now() };
    return value;
  }
}
