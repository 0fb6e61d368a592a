// The node's pull slots: a namespace never holds more than its share, and waiting namespaces take turns.
import { FairSlots } from '../../../src/helper/fair-slots.js';

const flush = () => new Promise((r) => setImmediate(r));

describe('FairSlots', () => {
  it('caps one namespace at its share even while slots are free', async () => {
    const slots = new FairSlots(8, 3);
    const started: string[] = [];
    for (let i = 0; i < 6; i++) void slots.acquire('hog').then(() => started.push(`hog${i}`));
    await flush();
    expect(started).toEqual(['hog0', 'hog1', 'hog2']);
    // Another namespace starts at once: the hog left it room.
    await slots.acquire('victim');
    expect(slots.snapshot()).toEqual({
      running: 4,
      byNamespace: { hog: { running: 3, waiting: 3 }, victim: { running: 1, waiting: 0 } },
    });
    slots.release('hog');
    await flush();
    expect(started).toEqual(['hog0', 'hog1', 'hog2', 'hog3']);
  });

  it('serves waiting namespaces in turn when the node is full', async () => {
    const slots = new FairSlots(2, 2);
    await slots.acquire('a');
    await slots.acquire('a');
    const order: string[] = [];
    for (const ns of ['a', 'a', 'a', 'b', 'c']) void slots.acquire(ns).then(() => order.push(ns));
    for (let i = 0; i < 5; i++) {
      slots.release(order.length === 0 ? 'a' : order[order.length - 1]!);
      await flush();
    }
    // b and c do not wait behind all of a's queued pulls.
    expect(order.slice(0, 3)).toEqual(['a', 'b', 'c']);
    expect(order).toHaveLength(5);
  });

  it('never runs more than the total, whatever the namespaces', async () => {
    const slots = new FairSlots(4, 4);
    let started = 0;
    for (let i = 0; i < 20; i++) void slots.acquire(`ns${i}`).then(() => started++);
    await flush();
    expect(started).toBe(4);
    expect(slots.snapshot().running).toBe(4);
  });
});
