import type { RestoreTargetProcess } from '../api/index.js';

/** Restores the helper carried out recently, bounded: enough to span a controller's retries and takeover. */
const MAX_ENTRIES = 10_000;

/**
 * Makes a restore into one process happen once. A controller that timed out waiting, or a new leader that
 * cannot know what its predecessor did, asks again with the same key: a restore still running is joined,
 * one that succeeded is answered from here without pushing the state a second time (which would roll back
 * what the app did since). A failed one may be tried again.
 */
export class RestoreLedger<T extends { result: string }> {
  private entries = new Map<string, Promise<T>>();

  async run(key: string, push: () => Promise<T>): Promise<{ answer: T; repeated: boolean }> {
    const prior = this.entries.get(key);
    if (prior) {
      const answer = await prior;
      if (answer.result === 'Succeeded') return { answer, repeated: true };
      if (this.entries.get(key) !== prior) return this.run(key, push);
    }
    const running = push();
    this.entries.set(key, running);
    while (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    const answer = await running.catch((err: unknown) => {
      this.entries.delete(key);
      throw err;
    });
    if (answer.result !== 'Succeeded' && this.entries.get(key) === running) this.entries.delete(key);
    return { answer, repeated: false };
  }
}

export const ledgerKey = (namespace: string, t: RestoreTargetProcess): string =>
  `${namespace}/${t.podUID}/${t.instance !== undefined ? `i:${t.instance}` : `r:${t.restartCount}`}`;
