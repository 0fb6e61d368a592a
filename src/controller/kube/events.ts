import { CoreV1Api, type KubeConfig, type V1ObjectReference } from '@kubernetes/client-node';
import type { Logger } from '../../runtime/logger.js';
import { RecentKeys } from './recent-keys.js';
import { systemClock, type Clock } from './clock.js';

const COMPONENT = 'pull-state-operator';
/** The same event for the same object is not repeated within this window (no Event storms at 1 s). */
const REPEAT_WINDOW_MS = 5 * 60_000;
const MAX_REMEMBERED = 10_000;

export type EventType = 'Normal' | 'Warning';

/** Writes core/v1 Events, de-duplicated per object, reason and message. Failures are logged, never thrown. */
export class EventRecorder {
  private api: CoreV1Api;
  private recent: RecentKeys;

  constructor(
    kc: KubeConfig,
    private readonly log: Logger,
    private readonly host = process.env.POD_NAME ?? 'controller',
    private readonly clock: Clock = systemClock,
  ) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.recent = new RecentKeys(REPEAT_WINDOW_MS, MAX_REMEMBERED, clock);
  }

  record(object: V1ObjectReference, type: EventType, reason: string, message: string): void {
    const key = `${object.uid ?? `${object.namespace}/${object.name}`}|${reason}|${message}`;
    if (this.recent.seenRecently(key)) return;
    const namespace = object.namespace ?? 'default';
    const at = new Date(this.clock.now());
    this.api
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${object.name ?? 'object'}.`, namespace },
          involvedObject: object,
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: COMPONENT, host: this.host },
          reportingComponent: COMPONENT,
          reportingInstance: this.host,
          firstTimestamp: at,
          lastTimestamp: at,
          count: 1,
        },
      })
      .catch((err: unknown) => this.log.warn('could not write Event', { reason, error: String(err) }));
  }
}
