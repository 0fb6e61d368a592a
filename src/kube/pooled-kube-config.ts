import { createHash } from 'node:crypto';
import { Agent } from 'node:https';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

/** Agents kept: one per TLS identity; more than a few means the credentials rotated, and old ones can go. */
const MAX_AGENTS = 4;

/**
 * A KubeConfig whose API requests share keep-alive connections. client-node 1.x gives every request a new
 * `https.Agent`, so every request paid a TLS handshake and parsed the CA again: a tenth of the leader's CPU
 * at 100 Pods, for a Lease renewal, an Event or a status patch each. Requests with the same TLS identity
 * (CA, client certificate, server name) now reuse one agent; the bearer token stays a per-request header, so
 * a rotated token still takes effect at once. Proxies and plain HTTP keep client-node's own agents.
 */
export class PooledKubeConfig extends KubeConfig {
  private agents = new Map<string, Agent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!(fresh instanceof Agent) || fresh.constructor !== Agent) return;
    const key = tlsIdentity(fresh.options);
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new Agent({ ...fresh.options, keepAlive: true });
      this.agents.set(key, agent);
      for (const [old, a] of this.agents) {
        if (this.agents.size <= MAX_AGENTS) break;
        a.destroy();
        this.agents.delete(old);
      }
    }
    fresh.destroy();
    context.setAgent(agent);
  }
}

/** What decides which server a connection may be reused for, and as whom. */
export function tlsIdentity(o: Agent['options']): string {
  const h = createHash('sha256');
  for (const part of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized])
    h.update(JSON.stringify(part ?? null)).update('\0');
  return h.digest('hex');
}
