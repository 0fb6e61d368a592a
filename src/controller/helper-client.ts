import type { KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { HELPER_API, type Inventory, type RestoreRequest, type RestoreResult } from '../api/index.js';

/** A helper's restore answer; NotStored: it does not hold that generation (any more). */
export type RestoreAnswer = RestoreResult | { result: 'Failed'; reason: 'NotStored'; message: string };

/** How often the bearer token is re-read (projected ServiceAccount tokens rotate). */
const TOKEN_REFRESH_MS = 60_000;

/** Calls to the helpers' API with the controller's own ServiceAccount token. */
export class HelperClient {
  private token?: { value: string; at: number };

  constructor(private readonly kc: KubeConfig) {}

  async authorization(): Promise<string> {
    if (this.token && Date.now() - this.token.at < TOKEN_REFRESH_MS) return this.token.value;
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const value = (opts.headers as Record<string, string> | undefined)?.Authorization ?? '';
    this.token = { value, at: Date.now() };
    return value;
  }

  private async call(url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
    return fetch(url, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: await this.authorization() },
      signal: AbortSignal.timeout(init.timeoutMs ?? 5000),
    });
  }

  async inventory(base: string): Promise<Inventory> {
    const res = await this.call(`${base}${HELPER_API}/blobs`);
    if (!res.ok) throw new Error(`helper ${base} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Inventory;
  }

  /** Deletes a Pod's copies on a helper: all of them, or only the generations after `newerThan`. */
  async delete(base: string, namespace: string, podUID: string, newerThan?: number): Promise<void> {
    const query = newerThan === undefined ? '' : `?newerThan=${newerThan}`;
    const res = await this.call(`${base}${HELPER_API}/blobs/${namespace}/${podUID}${query}`, {
      method: 'DELETE',
    });
    if (!res.ok && res.status !== 404)
      throw new Error(`helper ${base} answered ${res.status}: ${await res.text()}`);
  }

  /** Asks a helper to push its copy into a Pod; the answer says whether to retry. */
  async restore(
    base: string,
    namespace: string,
    podUID: string,
    target: RestoreRequest,
  ): Promise<RestoreAnswer> {
    const res = await this.call(`${base}${HELPER_API}/blobs/${namespace}/${podUID}/restore`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(target),
      timeoutMs: target.timeoutMs + 2000,
    });
    if (res.status === 200 || res.status === 502) return (await res.json()) as RestoreResult;
    if (res.status === 404) {
      const { error } = (await res.json().catch(() => ({}))) as { error?: string };
      return { result: 'Failed', reason: 'NotStored', message: error ?? `helper ${base} answered 404` };
    }
    throw new Error(`helper ${base} answered ${res.status}: ${await res.text()}`);
  }
}
