import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** What the helper knows about one stored state copy. */
export interface BlobMeta {
  /** Stable key: `<namespace>_<podUID>`. */
  id: string;
  namespace: string;
  /** The PullStatePolicy that protects the Pod, so an orphaned copy can be matched to a replacement. */
  policy: string;
  /** UID of that policy: a policy deleted and created again under the same name does not inherit copies. */
  policyUID: string;
  pod: string;
  podUID: string;
  sequence: number;
  /** Container restarts of the Pod when its state was pulled: a higher count later means it restarted since. */
  restartCount?: number;
  sizeBytes: number;
  digest: string;
  contentType: string;
  storedAt: string;
}

export type PutInput = Omit<BlobMeta, 'id' | 'sizeBytes' | 'digest' | 'storedAt'> & {
  /** When given, the body must hash to this (sha256:<hex>) or it is refused. */
  expectedDigest?: string;
};

/** A refusal with the HTTP status the API maps it to and a message naming what was wrong. */
export class StoreError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 413 | 507,
    message: string,
  ) {
    super(message);
  }
}

export interface StoreLimits {
  maxBlobBytes: number;
  quotaBytes: number;
  /** Bodies kept in memory (newest first) so reads and restores skip the disk; 0 turns the cache off. */
  cacheBytes?: number;
}

/*
 * One file per blob, `<id>.psb`: a fixed 4 KiB JSON header (padded with spaces) followed by the body. Header
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

export class BlobStore {
  private metas = new Map<string, BlobMeta>();
  /** Per-id write chain: sequence checks and renames of one Pod's blob never interleave. */
  private locks = new Map<string, Promise<unknown>>();
  private reservedBytes = 0;
  /** Recently written bodies, oldest first (Map order), within limits.cacheBytes. */
  private cache = new Map<string, Buffer>();
  private cachedBytes = 0;

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
      if (meta && `${meta.id}${SUFFIX}` === name) store.metas.set(meta.id, meta);
      else await rm(join(dir, name), { force: true });
    }
    return store;
  }

  list(): BlobMeta[] {
    return [...this.metas.values()];
  }

  get(id: string): BlobMeta | undefined {
    return this.metas.get(id);
  }

  usedBytes(): number {
    let total = 0;
    for (const m of this.metas.values()) total += m.sizeBytes;
    return total;
  }

  /** The body of a stored blob as a stream, or undefined when the blob does not exist. */
  read(id: string): { meta: BlobMeta; body: Readable } | undefined {
    const meta = this.metas.get(id);
    if (!meta) return undefined;
    const cached = this.cache.get(id);
    if (cached) return { meta, body: Readable.from([cached]) };
    return { meta, body: createReadStream(this.path(id), { start: HEADER_BYTES }) };
  }

  async delete(id: string): Promise<boolean> {
    return this.locked(id, async () => {
      if (!this.metas.delete(id)) return false;
      this.uncache(id);
      await rm(this.path(id), { force: true });
      return true;
    });
  }

  /**
   * Streams `body` to disk while hashing it. The new blob replaces the stored one only if it is complete,
   * within the size cap and the quota, matches `expectedDigest` if given, and has a higher sequence: a late
   * write can never replace a newer checkpoint, and a failed one never replaces a good one.
   */
  async put(input: PutInput, body: AsyncIterable<Buffer | string>): Promise<BlobMeta> {
    const id = blobId(input.namespace, input.podUID);
    if (!Number.isSafeInteger(input.sequence) || input.sequence < 0) {
      throw new StoreError(400, `sequence must be a whole number >= 0, got ${input.sequence}`);
    }
    this.assertNewer(id, input.sequence);
    const tmp = join(this.dir, `${id}.${input.sequence}.${process.pid}.${Date.now()}.tmp`);
    const file = await open(tmp, 'w');
    const hash = createHash('sha256');
    let size = 0;
    let reserved = 0;
    const cacheLimit = this.limits.cacheBytes ?? 0;
    let kept: Buffer[] | undefined = cacheLimit > 0 ? [] : undefined;
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
        const previous = this.metas.get(id)?.sizeBytes ?? 0;
        const need = Math.max(0, size - previous) - reserved;
        if (need > 0) {
          if (this.usedBytes() + this.reservedBytes + need > this.limits.quotaBytes) {
            throw new StoreError(507, `helper storage quota of ${this.limits.quotaBytes} bytes is exhausted`);
          }
          this.reservedBytes += need;
          reserved += need;
        }
        hash.update(buf);
        if (kept && size <= cacheLimit) kept.push(buf);
        else kept = undefined;
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
        sequence: input.sequence,
        ...(input.restartCount !== undefined ? { restartCount: input.restartCount } : {}),
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
        await rename(tmp, this.path(id));
        this.metas.set(id, meta);
        this.uncache(id);
        if (kept) this.remember(id, Buffer.concat(kept, size));
        return meta;
      });
    } catch (err) {
      await file.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    } finally {
      this.reservedBytes -= reserved;
    }
  }

  private assertNewer(id: string, sequence: number): void {
    const current = this.metas.get(id);
    if (current && current.sequence >= sequence) {
      throw new StoreError(409, `sequence ${sequence} is not newer than the stored ${current.sequence}`);
    }
  }

  private remember(id: string, body: Buffer): void {
    this.cache.set(id, body);
    this.cachedBytes += body.length;
    for (const [oldest, buf] of this.cache) {
      if (this.cachedBytes <= (this.limits.cacheBytes ?? 0)) break;
      this.cache.delete(oldest);
      this.cachedBytes -= buf.length;
    }
  }

  private uncache(id: string): void {
    const buf = this.cache.get(id);
    if (!buf) return;
    this.cache.delete(id);
    this.cachedBytes -= buf.length;
  }

  private path(id: string): string {
    return join(this.dir, `${id}${SUFFIX}`);
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
