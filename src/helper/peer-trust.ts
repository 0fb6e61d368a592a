import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { CA_CONFIGMAP_KEY, CA_CONFIGMAP_NAME } from '../api/constants.js';
import { errorMessage, type Logger } from '../runtime/logger.js';

const REFRESH_MS = 60_000;
const WAIT_LOG_MS = 30_000;

/**
 * The CA that signs the helpers' serving certificates, read from the ConfigMap the controller publishes, and a
 * keep-alive HTTPS agent that trusts only it (for the copies this helper streams to the other helpers). Read
 * again every minute, so a replaced CA is picked up without a restart.
 */
export class PeerTrust {
  private pem?: string;
  private httpsAgent?: Agent;
  private timer?: NodeJS.Timeout;
  private readonly core: CoreV1Api;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly log: Logger,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Resolves once the CA is known; until then the controller has not run yet (it makes the CA). */
  async start(signal: AbortSignal): Promise<void> {
    let lastLog = 0;
    while (!signal.aborted && !(await this.refresh())) {
      if (Date.now() - lastLog > WAIT_LOG_MS) {
        lastLog = Date.now();
        this.log.info('waiting for the helper CA (the controller publishes it)', {
          configMap: `${this.namespace}/${CA_CONFIGMAP_NAME}`,
        });
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.httpsAgent?.destroy();
  }

  caPem(): string | undefined {
    return this.pem;
  }

  /** An agent for HTTPS calls to other helpers, verifying their certificates against the CA. */
  agent(): Agent | undefined {
    return this.httpsAgent;
  }

  private async refresh(): Promise<boolean> {
    try {
      const cm = await this.core.readNamespacedConfigMap({
        name: CA_CONFIGMAP_NAME,
        namespace: this.namespace,
      });
      const pem = cm.data?.[CA_CONFIGMAP_KEY];
      if (!pem) return false;
      if (pem !== this.pem) {
        const old = this.httpsAgent;
        this.pem = pem;
        this.httpsAgent = new Agent({
          keepAlive: true,
          maxSockets: 256,
          maxFreeSockets: 64,
          timeout: 60_000,
          // One parsed context for all connections: with `ca` the agent parsed the PEM for each new socket.
          secureContext: createSecureContext({ ca: pem }),
        });
        // Let calls in flight finish on the old agent; its idle sockets go.
        setTimeout(() => old?.destroy(), 60_000).unref();
        this.log.info('helper CA loaded', { configMap: `${this.namespace}/${CA_CONFIGMAP_NAME}` });
      }
      return true;
    } catch (err) {
      this.log.warn('could not read the helper CA', { error: errorMessage(err) });
      return false;
    }
  }
}
