// Event de-duplication keys on a fake clock.
import { RecentKeys } from '../../../../src/controller/kube/recent-keys.js';
import { FakeClock } from '../../../../harness/fake-clock.js';

describe('RecentKeys', () => {
  it('de-duplicates within the window and forgets after it', () => {
    const clock = new FakeClock();
    const keys = new RecentKeys(1000, 100, clock);
    expect(keys.seenRecently('a')).toBe(false);
    clock.set(500);
    expect(keys.seenRecently('a')).toBe(true);
    clock.set(1500);
    expect(keys.seenRecently('a')).toBe(false);
  });

  it('stays bounded by dropping expired and then the oldest keys, never the recent ones wholesale', () => {
    const clock = new FakeClock();
    const keys = new RecentKeys(60_000, 3, clock);
    for (const k of ['a', 'b', 'c', 'd']) {
      clock.set(clock.monotonic() + 10);
      keys.seenRecently(k);
    }
    expect(keys.size).toBe(3);
    // 'a' was dropped as the oldest; 'b'..'d' are still de-duplicated.
    expect(keys.seenRecently('d')).toBe(true);
    expect(keys.seenRecently('a')).toBe(false);
    clock.set(clock.monotonic() + 120_000);
    keys.seenRecently('e');
    expect(keys.size).toBe(1);
  });
});
