import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { BlobStore, StoreError, blobId, retained, type BlobMeta } from '../../../src/helper/blob-store.js';

const uid = '0f4c2a1e-1111-2222-3333-444455556666';
const base = {
  namespace: 'apps',
  policy: 'count',
  policyUID: 'p-1',
  pod: 'count-0',
  podUID: uid,
  contentType: 'application/json',
};
const limits = { maxBlobBytes: 1024, quotaBytes: 4096 };
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
async function* chunks(...parts: string[]) {
  for (const p of parts) yield Buffer.from(p);
}

const meta = (pulledAt: number): BlobMeta => ({
  ...base,
  id: `apps_${uid}`,
  sequence: pulledAt,
  pulledAt,
  sizeBytes: 1,
  digest: 'sha256:',
  storedAt: new Date(pulledAt).toISOString(),
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blobstore-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BlobStore', () => {
  it('stores a streamed body with size, digest and content type, and reads it back', async () => {
    const store = await BlobStore.open(dir, limits);
    const meta = await store.put({ ...base, sequence: 1 }, chunks('{"count":', '42}'));
    expect(meta).toMatchObject({
      id: `apps_${uid}`,
      sequence: 1,
      sizeBytes: 12,
      digest: sha('{"count":42}'),
    });
    const read = store.read(meta.id)!;
    expect(read.meta.contentType).toBe('application/json');
    expect(await text(read.body)).toBe('{"count":42}');
  });

  it('survives a restart: a reopened store serves the same blobs', async () => {
    await (await BlobStore.open(dir, limits)).put({ ...base, sequence: 5 }, chunks('abc'));
    const reopened = await BlobStore.open(dir, limits);
    expect(reopened.list()).toEqual([
      expect.objectContaining({ sequence: 5, sizeBytes: 3, digest: sha('abc') }),
    ]);
    expect(await text(reopened.read(`apps_${uid}`)!.body)).toBe('abc');
  });

  it('never lets an older or equal sequence replace a newer blob', async () => {
    const store = await BlobStore.open(dir, limits);
    await store.put({ ...base, sequence: 7 }, chunks('new'));
    await expect(store.put({ ...base, sequence: 6 }, chunks('old'))).rejects.toMatchObject({
      status: 409,
      message: 'sequence 6 is not newer than the stored 7',
    });
    await expect(store.put({ ...base, sequence: 7 }, chunks('dup'))).rejects.toMatchObject({ status: 409 });
    expect(await text(store.read(`apps_${uid}`)!.body)).toBe('new');
  });

  it('refuses a late write that started before a newer one finished', async () => {
    const store = await BlobStore.open(dir, limits);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow() {
      yield Buffer.from('old');
      await gate;
    }
    const late = store.put({ ...base, sequence: 1 }, slow());
    await store.put({ ...base, sequence: 2 }, chunks('new'));
    release();
    await expect(late).rejects.toMatchObject({ status: 409 });
    expect(store.get(`apps_${uid}`)?.sequence).toBe(2);
  });

  it('keeps the good blob when a body is too large, and leaves no partial file', async () => {
    const store = await BlobStore.open(dir, limits);
    await store.put({ ...base, sequence: 1 }, chunks('good'));
    await expect(
      store.put({ ...base, sequence: 2 }, chunks('x'.repeat(600), 'y'.repeat(600))),
    ).rejects.toMatchObject({
      status: 413,
      message: "state is larger than the helper's limit of 1024 bytes",
    });
    expect(await text(store.read(`apps_${uid}`)!.body)).toBe('good');
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('enforces the total quota with a 507 and frees space on delete', async () => {
    const store = await BlobStore.open(dir, { maxBlobBytes: 1024, quotaBytes: 1500 });
    await store.put({ ...base, sequence: 1 }, chunks('x'.repeat(1000)));
    const other = { ...base, podUID: 'aaaaaaaa-1111-2222-3333-444455556666' };
    const err = await store.put({ ...other, sequence: 1 }, chunks('y'.repeat(1000))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ status: 507, message: 'helper storage quota of 1500 bytes is exhausted' });
    // A new generation may push out the older ones of the same Pod when the quota is short.
    await store.put({ ...base, sequence: 2 }, chunks('z'.repeat(1000)));
    expect(store.sequences(`apps_${uid}`)).toEqual([2]);
    expect(await text(store.read(`apps_${uid}`)!.body)).toBe('z'.repeat(1000));
    expect(await store.delete(`apps_${uid}`)).toBe(true);
    await store.put({ ...other, sequence: 1 }, chunks('y'.repeat(1000)));
    expect(store.usedBytes()).toBe(1000);
  });

  it('keeps the last generations of a Pod (3 by default), each readable by sequence, and drops later ones on request', async () => {
    const store = await BlobStore.open(dir, { ...limits, olderCopyMs: 0 });
    for (const n of [1, 2, 3, 4])
      await store.put({ ...base, sequence: n, pulledAt: 1000 * n, instance: `p${n}` }, chunks(`s${n}`));
    const id = `apps_${uid}`;
    expect(store.sequences(id)).toEqual([4, 3, 2]);
    expect(store.list().map((m) => [m.sequence, m.pulledAt, m.instance])).toEqual(
      expect.arrayContaining([
        [4, 4000, 'p4'],
        [3, 3000, 'p3'],
        [2, 2000, 'p2'],
      ]),
    );
    expect(await text(store.read(id, 3)!.body)).toBe('s3');
    expect(await text(store.read(id)!.body)).toBe('s4');
    expect(store.read(id, 1)).toBeUndefined();
    // The generations survive a restart of the helper, and files of older helpers (`<id>.psb`) are read too.
    const reopened = await BlobStore.open(dir, { ...limits, generations: 2, olderCopyMs: 0 });
    expect(reopened.sequences(id)).toEqual([4, 3]);
    expect(await reopened.deleteNewerThan(id, 3)).toBe(1);
    expect(reopened.sequences(id)).toEqual([3]);
    await expect(reopened.put({ ...base, sequence: 3 }, chunks('again'))).rejects.toMatchObject({
      status: 409,
    });
    expect((await readdir(dir)).sort()).toEqual([`${id}@3.psb`]);
    await rename(join(dir, `${id}@3.psb`), join(dir, `${id}.psb`));
    const old = await BlobStore.open(dir, limits);
    expect(await text(old.read(id)!.body)).toBe('s3');
  });

  it('keeps, besides the newest generations, a ladder of older copies: one is always 10-20 s old', () => {
    // A pull every second for two minutes, retention applied after each as the store does.
    let gens: BlobMeta[] = [];
    for (let t = 0; t <= 120_000; t += 1000) {
      gens = retained([{ ...meta(t) }, ...gens], 3, 10_000);
      expect(gens.length).toBeLessThanOrEqual(5);
      expect(gens.slice(0, 3).map((m) => m.pulledAt)).toEqual([t, t - 1000, t - 2000].filter((x) => x >= 0));
      if (t >= 10_000) {
        const ages = gens.map((m) => t - m.pulledAt!);
        expect(ages.some((a) => a >= 10_000 && a <= 20_000)).toBe(true);
      }
    }
    expect(retained([meta(5), meta(4), meta(3), meta(2)], 3, 0).map((m) => m.pulledAt)).toEqual([5, 4, 3]);
  });

  it('refuses a body whose digest does not match the declared one', async () => {
    const store = await BlobStore.open(dir, limits);
    await expect(
      store.put({ ...base, sequence: 1, expectedDigest: sha('other') }, chunks('abc')),
    ).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/^body digest sha256:[0-9a-f]{64} does not match the declared sha256:/),
    });
    expect(store.list()).toEqual([]);
  });

  it('drops partial and corrupt files left by a crash when it opens', async () => {
    await writeFile(join(dir, `apps_${uid}.3.1.2.tmp`), 'partial');
    await writeFile(join(dir, `apps_${uid}.psb`), 'not a header');
    const store = await BlobStore.open(dir, limits);
    expect(store.list()).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('validates ids and sequences with messages naming the rule', async () => {
    expect(() => blobId('Bad_NS', uid)).toThrow(/invalid blob id "Bad_NS_.*namespace must be a DNS label/);
    expect(() => blobId('apps', '../etc')).toThrow(StoreError);
    const store = await BlobStore.open(dir, limits);
    await expect(store.put({ ...base, sequence: -1 }, chunks('a'))).rejects.toMatchObject({
      status: 400,
      message: 'sequence must be a whole number >= 0, got -1',
    });
  });
});

describe('BlobStore shared by tenants', () => {
  const pod = (namespace: string, n: number) => ({
    ...base,
    namespace,
    pod: `p-${n}`,
    podUID: uid.replace(/6$/, String(n)),
  });
  const body = (bytes: number) => chunks('x'.repeat(bytes));

  it('keeps each namespace within its share: a hog gets 507 naming its share, the others keep theirs', async () => {
    const store = await BlobStore.open(dir, {
      maxBlobBytes: 1024,
      quotaBytes: 4096,
      namespaceQuotaBytes: 2048,
    });
    await store.put({ ...pod('hog', 1), sequence: 1 }, body(1000));
    await store.put({ ...pod('hog', 2), sequence: 1 }, body(1000));
    const refused = await store.put({ ...pod('hog', 3), sequence: 1 }, body(1000)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StoreError);
    expect(refused).toMatchObject({ status: 507, reason: 'NamespaceShareExceeded' });
    expect((refused as Error).message).toMatch(
      /namespace hog has used its share of this helper's storage \(2048 bytes of 4096\)/,
    );
    // The victim still has its half, although the hog asked first.
    await store.put({ ...pod('victim', 1), sequence: 1 }, body(1000));
    await store.put({ ...pod('victim', 2), sequence: 1 }, body(1000));
    expect(Object.fromEntries(store.usedBytesByNamespace())).toEqual({ hog: 2000, victim: 2000 });
    // A Pod's own newer copy replaces its older one within the share (older generations make room).
    await store.put({ ...pod('hog', 1), sequence: 2 }, body(1000));
    expect(store.sequences(`hog_${pod('hog', 1).podUID}`)).toEqual([2]);
    expect(store.usedBytesByNamespace().get('hog')).toBe(2000);
  });

  it('refuses uploads beyond the limits in flight (503), per namespace first, and takes them again after', async () => {
    const store = await BlobStore.open(dir, { ...limits, maxUploads: 3, maxUploadsPerNamespace: 2 });
    // Bodies that wait: the uploads stay in flight until released.
    const gates: (() => void)[] = [];
    async function* held() {
      await new Promise<void>((r) => gates.push(r));
      yield Buffer.from('x');
    }
    const a = store.put({ ...pod('hog', 1), sequence: 1 }, held());
    const b = store.put({ ...pod('hog', 2), sequence: 1 }, held());
    await new Promise((r) => setTimeout(r, 50));
    await expect(store.put({ ...pod('hog', 3), sequence: 1 }, body(1))).rejects.toMatchObject({
      status: 503,
      reason: 'NamespaceBusy',
      message: expect.stringMatching(
        /namespace hog has 2 uploads in flight to this helper \(limit 2 per namespace\)/,
      ),
    });
    const c = store.put({ ...pod('victim', 1), sequence: 1 }, held());
    await new Promise((r) => setTimeout(r, 50));
    await expect(store.put({ ...pod('other', 1), sequence: 1 }, body(1))).rejects.toMatchObject({
      status: 503,
      reason: 'Busy',
    });
    expect(store.memory().uploads).toBe(3);
    for (const g of gates) g();
    await Promise.all([a, b, c]);
    expect(store.memory().uploads).toBe(0);
    await store.put({ ...pod('hog', 3), sequence: 1 }, body(1));
  });

  it('holds at most cacheBytes of bodies in memory, uploads in flight included, and serves evicted ones from disk', async () => {
    const store = await BlobStore.open(dir, { maxBlobBytes: 1000, quotaBytes: 100_000, cacheBytes: 1500 });
    const release: (() => void)[] = [];
    async function* slow(n: number) {
      yield Buffer.from('a'.repeat(500));
      await new Promise<void>((r) => release.push(r));
      yield Buffer.from('b'.repeat(n - 500));
    }
    // Four uploads of 1000 bytes at once: only one fits the 1500 bytes beside the others' first halves.
    const puts = [1, 2, 3, 4].map((n) => store.put({ ...pod('apps', n), sequence: 1 }, slow(1000)));
    await new Promise((r) => setTimeout(r, 50));
    const during = store.memory();
    expect(during.cachedBytes + during.keptInFlightBytes).toBeLessThanOrEqual(1500);
    for (const r of release) r();
    const metas = await Promise.all(puts);
    const after = store.memory();
    expect(after.keptInFlightBytes).toBe(0);
    expect(after.cachedBytes).toBeLessThanOrEqual(1500);
    for (const m of metas) expect(await text(store.read(m.id)!.body)).toBe('a'.repeat(500) + 'b'.repeat(500));
  });
});

describe('BlobStore opened over copies planted before sequences were bounded', () => {
  it('drops a copy whose sequence was more than a day ahead when it was stored, whatever the clock says now', async () => {
    const store = await BlobStore.open(dir, limits);
    await store.put({ ...base, sequence: Number.MAX_SAFE_INTEGER }, chunks('planted'));
    const other = { ...base, podUID: uid.replace(/6$/, '7') };
    // Pulled by a helper whose clock was 20 h ahead of this one: within the bound, kept.
    await store.put({ ...other, sequence: Date.now() + 20 * 3600_000 }, chunks('good'));
    const reopened = await BlobStore.open(dir, limits);
    expect(reopened.droppedAtOpen).toEqual([`apps_${uid}@${Number.MAX_SAFE_INTEGER}`]);
    expect(reopened.list().map((m) => m.podUID)).toEqual([other.podUID]);
    // The Pod's next copy, numbered by the clock, is taken.
    const next = Date.now();
    await reopened.put({ ...base, sequence: next }, chunks('next'));
    expect(reopened.sequences(`apps_${uid}`)).toEqual([next]);
  });
});
