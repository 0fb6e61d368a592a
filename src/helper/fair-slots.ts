/**
 * The node's pull slots, shared fairly between namespaces: at most `total` pulls at once, and at most
 * `perNamespace` of them for one namespace, so an app that trickles its answer (holding a slot up to its
 * timeout) or a namespace with many Pods cannot take the slots other namespaces need. Waiting namespaces
 * are served in turn, each in the order its pulls asked.
 */
export class FairSlots {
  private running = 0;
  private readonly runningBy = new Map<string, number>();
  /** Waiting pulls per namespace; a Map keeps the namespaces' turn order (served ones move to the end). */
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(
    private readonly total: number,
    private readonly perNamespace: number,
  ) {}

  /** Resolves when the namespace may start a pull; call `release` with the same namespace when it ends. */
  acquire(namespace: string): Promise<void> {
    if (!this.waiting.has(namespace) && this.mayStart(namespace)) {
      this.take(namespace);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const queue = this.waiting.get(namespace);
      if (queue) queue.push(resolve);
      else this.waiting.set(namespace, [resolve]);
    });
  }

  release(namespace: string): void {
    this.running--;
    const n = (this.runningBy.get(namespace) ?? 1) - 1;
    if (n > 0) this.runningBy.set(namespace, n);
    else this.runningBy.delete(namespace);
    this.dispatch();
  }

  /** Pulls running and waiting now, per namespace (metrics, tests). */
  snapshot(): { running: number; byNamespace: Record<string, { running: number; waiting: number }> } {
    const byNamespace: Record<string, { running: number; waiting: number }> = {};
    for (const [ns, n] of this.runningBy) byNamespace[ns] = { running: n, waiting: 0 };
    for (const [ns, q] of this.waiting) (byNamespace[ns] ??= { running: 0, waiting: 0 }).waiting = q.length;
    return { running: this.running, byNamespace };
  }

  private mayStart(namespace: string): boolean {
    return this.running < this.total && (this.runningBy.get(namespace) ?? 0) < this.perNamespace;
  }

  private take(namespace: string): void {
    this.running++;
    this.runningBy.set(namespace, (this.runningBy.get(namespace) ?? 0) + 1);
  }

  private dispatch(): void {
    let progress = true;
    while (progress && this.running < this.total) {
      progress = false;
      for (const [ns, queue] of this.waiting) {
        if (!this.mayStart(ns)) continue;
        const next = queue.shift()!;
        // Served: its turn moves behind the other waiting namespaces.
        this.waiting.delete(ns);
        if (queue.length > 0) this.waiting.set(ns, queue);
        this.take(ns);
        next();
        progress = true;
        break;
      }
    }
  }
}
