import type { Logger } from './logger.js';

/**
 * Runs `stop` once on SIGTERM or SIGINT (Kubernetes sends SIGTERM, then SIGKILL after the grace period), then
 * exits; a second signal or a stop slower than `timeoutMs` exits at once.
 */
export function onShutdown(log: Logger, stop: () => Promise<void>, timeoutMs = 20_000): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info('shutting down', { signal });
    setTimeout(() => process.exit(1), timeoutMs).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
