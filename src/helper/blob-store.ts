import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pullTime, type BlobMeta } from '../api/index.js';

export type { BlobMeta };

export type PutInput = Omit<BlobMeta, 'id' | 'sizeBytes' | 'digest' | 'storedAt'> & {
  /** When given, the body must hash to this (sha256:<hex>) or it is refused. */
  expectedDigest?: string;
};

/** Why a copy was refused, for the per-namespace metrics (`pullstate_helper_uploads_refused_total`). */
export type RefusalReason =
  'Invalid' | 'NotNewer' | 'TooLarge' | 'QuotaExceeded' | 'NamespaceShareExceeded' | 'Busy' | 'NamespaceBusy';

/** A refusal with the HTTP status the API maps it to and a message naming what was wrong. */
export class StoreError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 413 | 503 | 507,
    message: string,
    readonly reason: RefusalReason = status === 409 ? 'NotNewer' : status === 413 ? 'TooLarge' : 'Invalid',
  ) {
    super(message);
  }
}

export interface StoreLimits {
  maxBlobBytes: number;
  quotaBytes: number;
  /** Newest generations kept per Pod (default 3): a restore after an unseen restart picks one from before it. */
  generations?: number;
  /**
   * Besides the newest generations, keep one copy pulled at least this long before the newest (default 10 s),
   * so a restart the controller sees later than `generations` pulls still finds state from before it.
   */
  olderCopyMs?: number;
  /**
   * Bodies kept in memory (newest first) so reads and restores skip the disk; 0 turns the cache off. Bodies
   * of uploads still in flight count against it too, so it bounds all the memory copies take here.
   */
  cacheBytes?: number;
  /** Bytes the copies of one namespace may take (default: all of quotaBytes). */
  namespaceQuotaBytes?: number;
  /** Uploads in flight at once; more are refused with 503 (default: no limit). Each holds up to 1 MiB. */
  maxUploads?: number;
  /** Uploads of one namespace in flight at once; more are refused with 503 (default: maxUploads). */
  maxUploadsPerNamespace?: number;
}

/*
 * One file per generation, `<id>@<sequence>.psb` (`<id>.psb` from helpers before generations is read too): a fixed 4 KiB JSON header (padded with spaces) followed by the body. Header
 * and body therefore land together in a single rename, so a crash can never pair a body with another
 * write's metadata.
 */
const HEADER_BYTES = 4096;
/** Bytes gathered before a write to disk; bounds the memory one upload holds besides the cache. */
const WRITE_BATCH_BYTES = 1024 * 1024;
const SUFFIX = '.psb';
const ID_PATTERN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?_[0-9a-f-]{1,64}$/;

export function blobId(namespace: string, podUID: string): string {
  const id = `${namespace}_${podUID}`;
  if (!ID_PATTERN.test(id)) {
    throw new StoreError(
      400,
      `invalid blob id "${id}": namespace must be a DNS label and podUID a UID (hex and dashes)`,
    );
  }
  return id;
}

/**
 * How far ahead of this helper's clock a copy's sequence (the sending helper's epoch milliseconds) may be:
 * far more than any clock skew between nodes, far less than a planted 2^53-1 that would make every later copy
 * of the Pod look older, and so be refused, for ever.
 */
export const MAX_SEQUENCE_AHEAD_MS = 24 * 3600 * 1000;

/** Why a copy's sequence is refused (undefined: it is plausible). */
export function sequenceProblem(sequence: number, now: number): string | undefined {
  const limit = now + MAX_SEQUENCE_AHEAD_MS;
  return sequence > limit
    ? `sequence ${sequence} is more than a day ahead of this helper's clock; allowed: at most ${limit} (sequences are the pulling helper's epoch milliseconds)`
    : undefined;
}

export const DEFAULT_GENERATIONS = 3;
export const DEFAULT_OLDER_COPY_MS = 10_000;

const cacheKey = (m: Pick<BlobMeta, 'id' | 'sequence'>) => `${m.id}@${m.sequence}`;

export class BlobStore {
  /** Generations of each Pod's checkpoint, newest (highest sequence) first. */
  private metas = new Map<string, StoredMeta[]>();
  /** Per-id write chain: sequence checks and renames of one Pod's blob never interleave. */
  private locks = new Map<string, Promise<unknown>>();
  private reservedBytes = 0;
  private reservedByNamespace = new Map<string, number>();
  /** Bytes of the stored generations, in all and per namespace (kept as they change, not summed per chunk). */
  private storedBytes = 0;
  private storedByNamespace = new Map<string, number>();
  private uploads = 0;
  private uploadsByNamespace = new Map<string, number>();
  /** Recently written bodies, oldest first (Map order); with `keptInFlight` within limits.cacheBytes. */
  private cache = new Map<string, Buffer[]>();
  private cachedBytes = 0;
  /** Bodies of uploads in flight held for the cache. */
  private keptInFlight = 0;
  /** Copies dropped when the store opened, for the log: `<id>@<sequence>` with sequences far in the future. */
  readonly droppedAtOpen: string[] = [];

  private constructor(
    readonly dir: string,
    readonly limits: StoreLimits,
  ) {}

  /** Opens the directory, dropping partial writes a crash left behind and loading every complete blob. */
  static async open(dir: string, limits: StoreLimits): Promise<BlobStore> {
    await mkdir(dir, { recursive: true });
    const store = new BlobStore(dir, limits);
    for (const name of await readdir(dir)) {
      if (name.endsWith('.tmp')) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue;
      const meta = await readHeader(join(dir, name)).catch(() => undefined);
      // Planted before helpers bounded sequences: kept, it would make every later copy of the Pod look older.
      // Judged against the clock of the helper that stored it then, not this one's now: a node that boots
      // with its clock a day behind must not throw away every copy it holds.
      if (meta && sequenceProblem(meta.sequence, Date.parse(meta.storedAt)) !== undefined) {
        await rm(join(dir, name), { force: true });
        store.droppedAtOpen.push(`${meta.id}@${meta.sequence}`);
        continue;
      }
      if (meta && (name === store.fileName(meta) || name === `${meta.id}${SUFFIX}`)) {
        store.metas.set(meta.id, [...(store.metas.get(meta.id) ?? []), { ...meta, file: name }]);
        store.account(meta, 1);
      } else await rm(join(dir, name), { force: true });
    }
    for (const [id, gens] of store.metas) {
      gens.sort((a, b) => b.sequence - a.sequence);
      await store.prune(id);
    }
    return store;
  }

  /** Every generation of every Pod. */
  list(): BlobMeta[] {
    return [...this.metas.values()].flat().map(publicMeta);
  }

  /** The newest generation of a Pod's checkpoint, or the one with `sequence`. */
  get(id: string, sequence?: number): BlobMeta | undefined {
    const gens = this.metas.get(id);
    const found = sequence === undefined ? gens?.[0] : gens?.find((m) => m.sequence === sequence);
    return found && publicMeta(found);
  }

  /** Sequences of the generations kept of a Pod, newest first. */
  sequences(id: string): number[] {
    return (this.metas.get(id) ?? []).map((m) => m.sequence);
  }

  usedBytes(): number {
    return this.storedBytes;
  }

  /** Bytes stored per namespace (namespaces with copies here only). */
  usedBytesByNamespace(): ReadonlyMap<string, number> {
    return this.storedByNamespace;
  }

  /** Uploads in flight and bytes held in memory for the cache (metrics; the memory bound's parts). */
  memory(): { uploads: number; cachedBytes: number; keptInFlightBytes: number } {
    return { uploads: this.uploads, cachedBytes: this.cachedBytes, keptInFlightBytes: this.keptInFlight };
  }

  private account(m: Pick<BlobMeta, 'namespace' | 'sizeBytes'>, sign: 1 | -1): void {
    this.storedBytes += sign * m.sizeBytes;
    addTo(this.storedByNamespace, m.namespace, sign * m.sizeBytes);
  }

  /** A generation's body as a stream (the newest unless `sequence` is given), or undefined if there is none. */
  read(id: string, sequence?: number): { meta: BlobMeta; body: Readable } | undefined {
    const gens = this.metas.get(id);
    const meta = sequence === undefined ? gens?.[0] : gens?.find((m) => m.sequence === sequence);
    if (!meta) return undefined;
    const cached = this.cache.get(cacheKey(meta));
    if (cached) return { meta: publicMeta(meta), body: Readable.from(cached) };
    return {
      meta: publicMeta(meta),
      body: createReadStream(join(this.dir, meta.file), { start: HEADER_BYTES }),
    };
  }

  /** Deletes every generation of a Pod's checkpoint. */
  async delete(id: string): Promise<boolean> {
    return (await this.deleteWhere(id, () => true)) > 0;
  }

  /**
   * Deletes the generations newer than `sequence`: they were pulled after the app may have restarted, so
   * they may hold its empty start state. Returns how many went.
   */
  async deleteNewerThan(id: string, sequence: number): Promise<number> {
    return this.deleteWhere(id, (m) => m.sequence > sequence);
  }

  private async deleteWhere(id: string, doomed: (m: StoredMeta) => boolean): Promise<number> {
    return this.locked(id, async () => {
      const gens = this.metas.get(id) ?? [];
      const gone = gens.filter(doomed);
      await this.remove(id, gone);
      return gone.length;
    });
  }

  /** Forgets and deletes some generations of one id; the caller holds the id's lock. */
  private async remove(id: string, gone: readonly StoredMeta[]): Promise<void> {
    if (gone.length === 0) return;
    const kept = (this.metas.get(id) ?? []).filter((m) => !gone.includes(m));
    if (kept.length > 0) this.metas.set(id, kept);
    else this.metas.delete(id);
    for (const m of gone) {
      this.account(m, -1);
      this.uncache(cacheKey(m));
      // unlink, not rm({force}): rm stats first, and pruning runs for every stored pull.
      await unlink(join(this.dir, m.file)).catch(ignoreMissing);
    }
  }

  /** Drops the generations retention does not keep; the caller holds the id's lock (or owns the store). */
  private async prune(id: string): Promise<void> {
    const gens = this.metas.get(id) ?? [];
    const kept = new Set(
      retained(gens, this.generations(), this.limits.olderCopyMs ?? DEFAULT_OLDER_COPY_MS),
    );
    await this.remove(
      id,
      gens.filter((m) => !kept.has(m)),
    );
  }

  private generations(): number {
    return Math.max(1, this.limits.generations ?? DEFAULT_GENERATIONS);
  }

  /**
   * Streams `body` to disk while hashing it. The new generation is added (and the oldest beyond the limit
   * dropped) only if it is complete, within the size cap and the quota, matches `expectedDigest` if given,
   * and has a higher sequence than every stored one: a late write can never pass a newer checkpoint, and a
   * failed one never replaces a good one.
   */
  async put(input: PutInput, body: AsyncIterable<Buffer | string>): Promise<BlobMeta> {
    const id = blobId(input.namespace, input.podUID);
    if (!Number.isSafeInteger(input.sequence) || input.sequence < 0) {
      throw new StoreError(400, `sequence must be a whole number >= 0, got ${input.sequence}`);
    }
    this.assertNewer(id, input.sequence);
    const namespace = input.namespace;
    this.startUpload(namespace);
    let file: FileHandle;
    const tmp = join(this.dir, `${id}.${input.sequence}.${process.pid}.${Date.now()}.tmp`);
    try {
      file = await open(tmp, 'w');
    } catch (err) {
      this.endUpload(namespace);
      throw err;
    }
    const hash = createHash('sha256');
    let size = 0;
    let reserved = 0;
    let kept: Buffer[] | undefined = (this.limits.cacheBytes ?? 0) > 0 ? [] : undefined;
    let keptBytes = 0;
    const dropKept = () => {
      this.keptInFlight -= keptBytes;
      keptBytes = 0;
      kept = undefined;
    };
    // Chunks are written in batches: one write per network chunk (64 KiB) costs a thread-pool round trip
    // each and made a 1 MiB put several times slower.
    let pending: Buffer[] = [Buffer.alloc(HEADER_BYTES, ' ')];
    let pendingBytes = HEADER_BYTES;
    let written = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      await file.writev(pending, written);
      written += pendingBytes;
      pending = [];
      pendingBytes = 0;
    };
    try {
      for await (const chunk of body) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        size += buf.length;
        if (size > this.limits.maxBlobBytes) {
          throw new StoreError(
            413,
            `state is larger than the helper's limit of ${this.limits.maxBlobBytes} bytes`,
          );
        }
        // The generations this one may push out free their bytes (until then both are on disk).
        const need = Math.max(0, size - this.bytesFreedByNext(id)) - reserved;
        if (need > 0) {
          this.reserve(namespace, need);
          reserved += need;
        }
        hash.update(buf);
        if (kept && this.roomInCache(buf.length)) {
          kept.push(buf);
          keptBytes += buf.length;
          this.keptInFlight += buf.length;
        } else if (kept) dropKept();
        pending.push(buf);
        pendingBytes += buf.length;
        if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
      }
      await flush();
      const digest = `sha256:${hash.digest('hex')}`;
      if (input.expectedDigest !== undefined && input.expectedDigest !== digest) {
        throw new StoreError(
          400,
          `body digest ${digest} does not match the declared ${input.expectedDigest}`,
        );
      }
      const meta: BlobMeta = {
        id,
        namespace: input.namespace,
        policy: input.policy,
        policyUID: input.policyUID,
        pod: input.pod,
        podUID: input.podUID,
        ...(input.workload !== undefined ? { workload: input.workload } : {}),
        sequence: input.sequence,
        ...(input.restartCount !== undefined ? { restartCount: input.restartCount } : {}),
        ...(input.pulledAt !== undefined ? { pulledAt: input.pulledAt } : {}),
        ...(input.instance !== undefined ? { instance: input.instance } : {}),
        sizeBytes: size,
        digest,
        contentType: input.contentType,
        storedAt: new Date().toISOString(),
      };
      await writeHeader(file, meta);
      await file.sync();
      await file.close();
      return await this.locked(id, async () => {
        this.assertNewer(id, input.sequence);
        const stored: StoredMeta = { ...meta, file: this.fileName(meta) };
        await rename(tmp, join(this.dir, stored.file));
        this.metas.set(id, [stored, ...(this.metas.get(id) ?? [])]);
        this.account(meta, 1);
        if (kept) {
          // The bytes move from in flight to the cache: the same memory, not a second copy.
          this.keptInFlight -= keptBytes;
          keptBytes = 0;
          this.remember(cacheKey(meta), kept, size);
        }
        await this.prune(id);
        await this.evictForQuota(id);
        return meta;
      });
    } catch (err) {
      await file.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    } finally {
      this.reservedBytes -= reserved;
      addTo(this.reservedByNamespace, namespace, -reserved);
      this.keptInFlight -= keptBytes;
      this.endUpload(namespace);
    }
  }

  /** Counts an upload in, or refuses it (503) when the helper or the namespace has its limit in flight. */
  private startUpload(namespace: string): void {
    const max = this.limits.maxUploads ?? Infinity;
    const perNamespace = Math.min(this.limits.maxUploadsPerNamespace ?? max, max);
    if (this.uploads >= max)
      throw new StoreError(
        503,
        `helper busy: ${this.uploads} uploads in flight (limit ${max}); retry`,
        'Busy',
      );
    const mine = this.uploadsByNamespace.get(namespace) ?? 0;
    if (mine >= perNamespace)
      throw new StoreError(
        503,
        `namespace ${namespace} has ${mine} uploads in flight to this helper (limit ${perNamespace} per namespace); retry`,
        'NamespaceBusy',
      );
    this.uploads++;
    addTo(this.uploadsByNamespace, namespace, 1);
  }

  private endUpload(namespace: string): void {
    this.uploads--;
    addTo(this.uploadsByNamespace, namespace, -1);
  }

  /** Reserves disk for `need` more bytes of a write, or refuses it (507): the node's or the namespace's. */
  private reserve(namespace: string, need: number): void {
    const quota = this.limits.quotaBytes;
    if (this.storedBytes + this.reservedBytes + need > quota)
      throw new StoreError(507, `helper storage quota of ${quota} bytes is exhausted`, 'QuotaExceeded');
    const share = this.limits.namespaceQuotaBytes;
    if (
      share !== undefined &&
      (this.storedByNamespace.get(namespace) ?? 0) + (this.reservedByNamespace.get(namespace) ?? 0) + need >
        share
    )
      throw new StoreError(
        507,
        `namespace ${namespace} has used its share of this helper's storage (${share} bytes of ${quota}); ` +
          'other namespaces keep theirs: store smaller states or fewer copies, or raise --namespace-quota-bytes',
        'NamespaceShareExceeded',
      );
    this.reservedBytes += need;
    addTo(this.reservedByNamespace, namespace, need);
  }

  /** Whether `bytes` more of an upload fit the cache, evicting committed bodies (oldest first) to make room. */
  private roomInCache(bytes: number): boolean {
    const limit = this.limits.cacheBytes ?? 0;
    if (this.keptInFlight + bytes > limit) return false;
    for (const [oldest, chunks] of this.cache) {
      if (this.cachedBytes + this.keptInFlight + bytes <= limit) break;
      this.cache.delete(oldest);
      this.cachedBytes -= byteLength(chunks);
    }
    return this.cachedBytes + this.keptInFlight + bytes <= limit;
  }

  /**
   * Bytes a new generation of `id` may take over: its older generations are a margin for restores after a
   * restart, the newest copy is what matters, so under quota pressure they make room for it.
   */
  private bytesFreedByNext(id: string): number {
    let total = 0;
    for (const m of this.metas.get(id) ?? []) total += m.sizeBytes;
    return total;
  }

  /** After a commit: the oldest generations of `id` go while the store or its namespace is over its quota. */
  private async evictForQuota(id: string): Promise<void> {
    const gens = this.metas.get(id) ?? [];
    const namespace = gens[0]?.namespace ?? '';
    const share = this.limits.namespaceQuotaBytes ?? Infinity;
    const gone: StoredMeta[] = [];
    let used = this.storedBytes;
    let mine = this.storedByNamespace.get(namespace) ?? 0;
    for (const m of [...gens].reverse().slice(0, -1)) {
      if (used <= this.limits.quotaBytes && mine <= share) break;
      gone.push(m);
      used -= m.sizeBytes;
      mine -= m.sizeBytes;
    }
    await this.remove(id, gone);
  }

  private assertNewer(id: string, sequence: number): void {
    const current = this.metas.get(id)?.[0];
    if (current && current.sequence >= sequence) {
      throw new StoreError(409, `sequence ${sequence} is not newer than the stored ${current.sequence}`);
    }
  }

  private remember(id: string, chunks: Buffer[], size: number): void {
    this.cache.set(id, chunks);
    this.cachedBytes += size;
    for (const [oldest, old] of this.cache) {
      if (this.cachedBytes + this.keptInFlight <= (this.limits.cacheBytes ?? 0)) break;
      this.cache.delete(oldest);
      this.cachedBytes -= byteLength(old);
    }
  }

  private uncache(id: string): void {
    const chunks = this.cache.get(id);
    if (!chunks) return;
    this.cache.delete(id);
    this.cachedBytes -= byteLength(chunks);
  }

  private fileName(meta: Pick<BlobMeta, 'id' | 'sequence'>): string {
    return `${meta.id}@${meta.sequence}${SUFFIX}`;
  }

  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    this.locks.set(
      id,
      next.catch(() => undefined),
    );
    return next;
  }
}

/**
 * Which generations to keep (pure; `gens` newest first): the newest `n`, plus two older ones that form a
 * ladder: the newest copy at least `olderMs` older than the newest, and the oldest one younger than that,
 * which becomes the next such copy as time passes. At most n + 2 copies, and one between `olderMs` and about
 * twice that old is always there once the Pod has been pulled for that long.
 */
export function retained<T extends BlobMeta>(gens: readonly T[], n: number, olderMs: number): T[] {
  const newest = gens[0];
  if (!newest || olderMs <= 0) return gens.slice(0, n);
  const rest = gens.slice(n);
  const age = (m: BlobMeta) => pullTime(newest) - pullTime(m);
  const old = rest.find((m) => age(m) >= olderMs);
  const young = rest.filter((m) => age(m) < olderMs);
  const ladder = [young[young.length - 1], old].filter((m): m is T => m !== undefined);
  return [...gens.slice(0, n), ...ladder];
}

/** A generation as the store keeps it: with the file it lives in. */
type StoredMeta = BlobMeta & { file: string };

function publicMeta(m: StoredMeta): BlobMeta {
  const { file: _file, ...meta } = m;
  return meta;
}

async function writeHeader(file: FileHandle, meta: BlobMeta): Promise<void> {
  const json = Buffer.from(JSON.stringify(meta));
  if (json.length >= HEADER_BYTES)
    throw new StoreError(400, 'blob metadata is too long (pod name or content type)');
  await file.write(json, 0, json.length, 0);
}

async function readHeader(path: string): Promise<BlobMeta> {
  const file = await open(path, 'r');
  try {
    const { size } = await stat(path);
    const header = Buffer.alloc(HEADER_BYTES);
    await file.read(header, 0, HEADER_BYTES, 0);
    const meta = JSON.parse(header.toString('utf8').trimEnd()) as BlobMeta;
    if (size - HEADER_BYTES !== meta.sizeBytes) throw new Error(`size mismatch in ${path}`);
    return meta;
  } finally {
    await file.close();
  }
}

const byteLength = (chunks: readonly Buffer[]) => chunks.reduce((n, c) => n + c.length, 0);

/** Adds `delta` to a per-namespace count, forgetting namespaces that reach zero. */
function addTo(counts: Map<string, number>, key: string, delta: number): void {
  const next = (counts.get(key) ?? 0) + delta;
  if (next === 0) counts.delete(key);
  else counts.set(key, next);
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
