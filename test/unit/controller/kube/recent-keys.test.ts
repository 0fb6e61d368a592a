// Event de-duplication keys on a fake clock.
import { RecentKeys } from '../../../../src/controller/kube/recent-keys.js';

describe('RecentKeys', () => {
  it('de-duplicates within the window and forgets after it', () => {
    let now = 0;
    const keys = new RecentKeys(1000, 100, () => now);
    expect(keys.seenRecently('a')).toBe(false);
    now = 500;
    expect(keys.seenRecently('a')).toBe(true);
    now = 1500;
    expect(keys.seenRecently('a')).toBe(false);
  });

  it('stays bounded by dropping expired and then the oldest keys, never the recent ones wholesale', () => {
    let now = 0;
    const keys = new RecentKeys(60_000, 3, () => now);
    for (const k of ['a', 'b', 'c', 'd']) {
      now += 10;
      keys.seenRecently(k);
    }
    expect(keys.size).toBe(3);
    // 'a' was dropped as the oldest; 'b'..'d' are still de-duplicated.
    expect(keys.seenRecently('d')).toBe(true);
    expect(keys.seenRecently('a')).toBe(false);
    now += 120_000;
    keys.seenRecently('e');
    expect(keys.size).toBe(1);
  });
});
