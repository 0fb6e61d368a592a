import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type KubernetesListObject,
} from '@kubernetes/client-node';
import type { Logger } from '../../runtime/logger.js';
import { backoffDelay } from '../../runtime/backoff.js';

export type ChangeHandler<T> = (obj: T, kind: 'add' | 'update' | 'delete') => void;

export interface InformerOptions<T extends KubernetesObject> {
  name: string;
  kc: KubeConfig;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  log: Logger;
  /** A watch that delivered nothing for this long is restarted (half-open connections stall silently). */
  idleRestartMs?: number;
}

/**
 * A cache kept current by list + watch. `start` resolves only once a list has succeeded (controller-runtime's
 * "wait for cache sync"): a controller must never act on an empty cache it takes for the truth.
 * client-node's ListWatch relists by itself after 410 Gone and resumes from its resourceVersion when a watch
 * ends, but stops for good on any other error: this wrapper restarts it with backoff (1 s doubling to 30 s)
 * and restarts watches that went quiet for too long.
 */
export class Informer<T extends KubernetesObject> {
  private lw: ListWatch<T>;
  private handlers: ChangeHandler<T>[] = [];
  private failures = 0;
  private lastEvent = Date.now();
  private restartTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  /** An idle watch is being ended on purpose; set until its end arrives (or a second passed). */
  private restarting?: NodeJS.Timeout;
  private stopped = false;
  /** A list has succeeded at least once: the cache has been filled from the API. */
  private listed = false;
  private markSynced!: () => void;
  private readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));

  constructor(private readonly o: InformerOptions<T>) {
    // ListWatch reports a failed list through its error event and still resolves start(): remember
    // whether the list itself succeeded, so a failed first list never counts as a synced cache.
    const list = async () => {
      const result = await o.list();
      this.listed = true;
      return result;
    };
    this.lw = new ListWatch<T>(o.path, new Watch(o.kc), list, false, o.labelSelector);
    const emit = (kind: 'add' | 'update' | 'delete') => (obj: T) => {
      this.lastEvent = Date.now();
      this.failures = 0;
      for (const h of this.handlers) h(obj, kind);
    };
    this.lw.on('add', emit('add'));
    this.lw.on('update', emit('update'));
    this.lw.on('delete', emit('delete'));
    this.lw.on('connect', () => {
      this.lastEvent = Date.now();
    });
    // The end of a watch we aborted ourselves arrives as an AbortError after ListWatch.stop() resolved. Only
    // then may the next watch start: ListWatch aborts its current request on every end, so a watch started
    // earlier would be aborted by the old one's end, and that end again restart and abort the next.
    this.lw.on('error', (err: unknown) => {
      if (this.restarting && isAbort(err)) this.finishRestart();
      else this.restartLater(err);
    });
  }

  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  async start(): Promise<void> {
    this.stopped = false;
    const idle = this.o.idleRestartMs ?? 5 * 60_000;
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastEvent > idle && !this.restarting && !this.restartTimer) {
          this.o.log.info('watch idle, restarting', { informer: this.o.name });
          this.lastEvent = Date.now();
          // No request open (between a failure and its retry): no abort will arrive.
          this.restarting = setTimeout(() => this.finishRestart(), 1000);
          this.restarting.unref();
          void this.lw.stop().catch((err: unknown) => this.restartLater(err));
        }
      },
      Math.min(idle, 30_000),
    );
    this.watchdog.unref();
    await this.startListWatch();
    await this.synced;
  }

  private async startListWatch(): Promise<void> {
    try {
      await this.lw.start();
      if (this.listed) this.markSynced();
    } catch (err) {
      this.restartLater(err);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.restarting);
    this.restarting = undefined;
    clearInterval(this.watchdog);
    await this.lw.stop();
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  private finishRestart(): void {
    if (!this.restarting) return;
    clearTimeout(this.restarting);
    this.restarting = undefined;
    if (!this.stopped) void this.startListWatch();
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    this.failures++;
    const delay = Math.min(30_000, backoffDelay(this.failures, { baseMs: 1000, maxMs: 30_000 }));
    this.o.log.warn('watch failed, restarting', {
      informer: this.o.name,
      error: String(err),
      retryInMs: delay,
    });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      void this.startListWatch();
    }, delay);
    this.restartTimer.unref();
  }
}

const isAbort = (err: unknown): boolean => (err as { name?: string } | undefined)?.name === 'AbortError';
